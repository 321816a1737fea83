"""Moving-balls experiment: readout, losses, and the command end to end (--quick)."""

import json

import torch

from probssl.critics import build_critic
from probssl.experiments.moving_balls import (
    QUICK,
    critic_loss,
    fit_readout,
    matched_distances,
    run_experiment,
    supervised_loss,
)
from tests.test_cli import run_cli


def test_matched_distances_pick_the_best_assignment():
    true = torch.tensor([[[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]])
    pred = true[:, [2, 0, 1]] + torch.tensor([[[1.0, 0.0], [0.0, 0.0], [0.0, 2.0]]])
    d, perm = matched_distances(pred, true)
    assert perm.tolist() == [[2, 0, 1]]
    assert torch.allclose(d, torch.tensor([[1.0, 0.0, 2.0]]))


def test_readout_recovers_a_linear_code_with_shuffled_balls():
    g = torch.Generator().manual_seed(0)
    n, k = 300, 3
    centres = torch.rand(n, k, 2, generator=g, dtype=torch.float64) * 200 + 20
    # the code sees the balls in a random order per frame, through a fixed affine map
    order = torch.stack([torch.randperm(k, generator=g) for _ in range(n)])
    shuffled = centres[torch.arange(n)[:, None], order].reshape(n, 2 * k)
    a_true = torch.randn(2 * k, 2 * k, generator=g, dtype=torch.float64) * 0.1 + \
        torch.eye(2 * k, dtype=torch.float64)
    z = shuffled @ a_true + 3.0
    a = fit_readout(z, centres)
    pred = (torch.cat([z, torch.ones(n, 1, dtype=z.dtype)], 1) @ a).view(n, k, 2)
    d, _ = matched_distances(pred, centres)
    assert d.max() < 1e-6


def test_supervised_loss_is_zero_at_truth_in_any_ball_order():
    centres = torch.tensor([[[10.0, 20.0], [100.0, 50.0], [200.0, 220.0]]])
    z = centres[:, [1, 2, 0]].reshape(1, 6)
    assert supervised_loss(z, centres, 256).item() == 0.0
    assert supervised_loss(z + 2.0, centres, 256).item() > 0


def test_critic_loss_prefers_matching_targets():
    critic = build_critic("rbf", 6, length_scale=5.0)
    z = torch.rand(8, 6) * 200
    near = critic_loss(critic, z, z + 1.0, 256)
    shuffled = critic_loss(critic, z, z.roll(1, 0), 256)
    assert near < 0.1 < shuffled


def test_quick_experiment_writes_table_metrics_figure_and_resumes(tmp_path):
    out = tmp_path / "mb"
    p = run_cli("experiment", "moving-balls", "--quick", "--n-seeds", "2", "--out", out,
                "--no-progress")
    assert p.returncode == 0, p.stderr
    for name in ("table.md", "metrics.json", "fig1.png"):
        assert (out / name).stat().st_size > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["trained_now"] == 8 and len(metrics["runs"]) == 8
    table = (out / "table.md").read_text()
    assert "supervised" in table and "Wall time" in table and "Command: `probssl" in table
    for r in metrics["runs"]:  # quick frames are 64 px: any sane readout is well inside that
        assert 0 <= r["test_distance_px"] < 64
    # a second invocation trains nothing and reproduces the same numbers
    again = run_experiment(QUICK, out, progress=False)
    assert again["trained_now"] == 0
    assert again["summary"] == metrics["summary"]
