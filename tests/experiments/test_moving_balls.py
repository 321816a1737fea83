"""Moving-balls experiment: readout, losses, and the command end to end (--quick)."""

import json
from dataclasses import replace

import pytest
import torch

from probssl.critics import build_critic
from probssl.data.moving_balls import moving_balls
from probssl.errors import UserError
from probssl.experiments.moving_balls import (
    QUICK,
    critic_loss,
    fit_readout,
    matched_distances,
    run_experiment,
    supervised_loss,
    train_encoder,
)
from probssl.experiments.moving_balls.readout import (
    critic_coordinates,
    detector_distances,
    fit_detector_readout,
)
from probssl.experiments.moving_balls.summary import curves_figure, summary_table
from probssl.experiments.moving_balls.windows import make_windows
from probssl.runs.checkpoint import list_checkpoints, load_latest
from probssl.train.loop import Callback
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
    for name in ("table.md", "metrics.json", "fig1.png", "curves.png"):
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


class _Killed(Exception):
    pass


class _KillAtStep(Callback):
    """Stands in for a kill: raises at the end of the n-th step, before that step's
    checkpoint could be written."""

    def __init__(self, n: int) -> None:
        self.n, self.seen = n, 0

    def on_step_end(self, trainer, out):
        self.seen += 1
        if self.seen == self.n:
            raise _Killed


@pytest.mark.parametrize("method,negatives", [("bilinear", "batch"), ("supervised", "batch"),
                                              ("rbf", "bank"), ("bilinear", "bank"),
                                              ("ring", "bank"), ("bilinear", "hard"),
                                              ("ring", "batch")])
def test_a_run_stopped_mid_epoch_resumes_exactly_on_the_one_trainer(tmp_path, method,
                                                                     negatives):
    torch.set_num_threads(1)
    # 127 pairs / 20: 7 steps per epoch
    cfg = replace(QUICK, epochs=2, checkpoint_every=3, negatives=negatives)
    v = moving_balls(cfg.frames, cfg.size, cfg.n_balls, cfg.diameter, seed=0, coloured=True)
    win = make_windows(v.frames, v.centres, cfg.diameter)
    whole = train_encoder(method, 0, cfg, win, v.centres.float(), run_dir=tmp_path / "whole")
    cut = tmp_path / "cut"
    with pytest.raises(_Killed):  # killed at step 12 = epoch 2, step 5
        train_encoder(method, 0, cfg, win, v.centres.float(), run_dir=cut,
                      callbacks=[_KillAtStep(12)])
    newest = list_checkpoints(cut)[-1][1].name
    assert newest == "epoch-0001-step-000003.pt"  # mid-epoch: epoch 2 after 3 of its steps
    steps = _KillAtStep(10 ** 9)  # counts the steps the resumed run takes
    resumed = train_encoder(method, 0, cfg, win, v.centres.float(), run_dir=cut,
                            callbacks=[steps])
    assert steps.seen == 2 * 7 - (7 + 3)  # only what the checkpoint had not done
    a, b = whole.encoder.state_dict(), resumed.encoder.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    if whole.critic is not None:
        assert all(torch.equal(x, y) for x, y in zip(whole.critic.state_dict().values(),
                                                     resumed.critic.state_dict().values(),
                                                     strict=True))
    assert resumed.losses == whole.losses and len(whole.losses) == 2


def test_detector_readout_finds_which_ball_each_detector_follows():
    g = torch.Generator().manual_seed(0)
    centres = torch.rand(200, 3, 2, generator=g) * 256
    follows = [2, 0, 1]  # detector d reports ball follows[d], scaled and shifted
    z = torch.cat([centres[:, b] * 0.5 + 7 for b in follows], dim=1)
    maps, assignment = fit_detector_readout(z, centres)
    assert assignment.tolist() == follows
    assert detector_distances(maps, assignment, z, centres).max() < 1e-3  # float32 z
    # detectors that report the balls' mean follow no ball: the full readout cannot tell
    # (it sees a code), the per-detector readout can
    mixed = centres.mean(1).repeat(1, 3)
    maps, assignment = fit_detector_readout(mixed, centres)
    assert detector_distances(maps, assignment, mixed, centres).mean() > 30


def test_critic_coordinates_and_which_critic_centring_changes():
    z = torch.tensor([[0.0, 256.0], [128.0, 64.0]])
    assert torch.equal(critic_coordinates(z, 256, "raw"), z)
    assert torch.equal(critic_coordinates(z, 256, "centred"), z - 128)
    assert torch.equal(critic_coordinates(z, 256, "unit"), (z - 128) / 128)
    g = torch.Generator().manual_seed(1)
    zb, zt = torch.rand(8, 6, generator=g) * 256, torch.rand(8, 6, generator=g) * 256
    rbf = build_critic("rbf", 6, length_scale=40.0)
    assert torch.allclose(critic_loss(rbf, zb, zt, 256, "raw"),
                          critic_loss(rbf, zb, zt, 256, "centred"))
    bilinear = build_critic("bilinear", 6)
    with torch.no_grad():
        bilinear.W.copy_(torch.eye(6) * 1e-3)
    assert not torch.allclose(critic_loss(bilinear, zb, zt, 256, "raw"),
                              critic_loss(bilinear, zb, zt, 256, "centred"))


def test_critic_loss_with_bank_and_hard_negatives_is_the_loop_formula():
    g = torch.Generator().manual_seed(2)
    b, m, h, d = 4, 5, 3, 6
    zb, zt = torch.randn(b, d, generator=g) * 20, torch.randn(b, d, generator=g) * 20
    bank, own = torch.randn(m, d, generator=g) * 20, torch.randn(b, h, d, generator=g) * 20
    bank_mask = torch.rand(b, m, generator=g) < 0.3
    own_mask = torch.rand(b, h, generator=g) < 0.3
    critic = build_critic("rbf", d, length_scale=15.0)
    got = critic_loss(critic, zb, zt, 256, "raw", shared=bank, shared_mask=bank_mask,
                      own=own, own_mask=own_mask)
    ref = 0.0
    with torch.no_grad():
        for i in range(b):
            pos = float(critic(zb[i:i + 1], zt[i:i + 1])[0, 0])
            terms = [float(critic(zb[i:i + 1], zt[j:j + 1])[0, 0]) for j in range(b)]
            terms += [float(critic(zb[i:i + 1], bank[j:j + 1])[0, 0]) for j in range(m)
                      if not bank_mask[i, j]]
            terms += [float(critic(zb[i:i + 1], own[i, k:k + 1])[0, 0]) for k in range(h)
                      if not own_mask[i, k]]
            ref -= pos - float(torch.logsumexp(torch.tensor(terms, dtype=torch.float64), 0))
    assert float(got) == pytest.approx(ref / b, rel=1e-5)


def test_memory_bank_holds_every_training_frame_after_one_epoch(tmp_path):
    torch.set_num_threads(1)
    cfg = replace(QUICK, epochs=1, negatives="bank")
    v = moving_balls(cfg.frames, cfg.size, cfg.n_balls, cfg.diameter, seed=0, coloured=True)
    win = make_windows(v.frames, v.centres, cfg.diameter)
    train_encoder("rbf", 0, cfg, win, v.centres.float(), run_dir=tmp_path / "r")
    state = load_latest(tmp_path / "r")["model"]
    # the targets t+1 of every pair: frames 1 … n_train − 1, each once
    assert sorted(state["bank_frame"].tolist()) == list(range(1, cfg.n_train))
    assert state["bank"].abs().sum() > 0


def test_ring_critic_is_its_formula_and_peaks_one_step_away():
    critic = build_critic("ring", 6, radius=8.0, width=2.0)
    g = torch.Generator().manual_seed(4)
    z, zp = torch.randn(5, 6, generator=g) * 10, torch.randn(7, 6, generator=g) * 10
    m = critic(z, zp)
    for i in range(5):
        for j in range(7):
            ref = -sum((float((z[i, 2 * k:2 * k + 2] - zp[j, 2 * k:2 * k + 2]).norm()) - 8.0) ** 2
                       for k in range(3)) / (2 * 2.0 ** 2)
            assert float(m[i, j]) == pytest.approx(ref, rel=1e-5, abs=1e-5)
    torch.testing.assert_close(critic.paired(z, zp[:5]), torch.diagonal(critic(z, zp[:5])))
    # the prior over the next position: highest one step (the radius) away, not at rest
    here = torch.zeros(1, 6)
    at_rest, one_step = here.clone(), here.clone()
    one_step[0, 0] = 8.0
    assert float(critic(here, one_step)[0, 0]) > float(critic(here, at_rest)[0, 0])


def test_a_diverged_run_is_recorded_as_diverged_and_the_grid_goes_on(tmp_path):
    """At lr 1e4 every RBF run's loss becomes NaN in epoch 1, while the untrained encoder
    cannot diverge: the grid records the diverged runs, leaves them out of the means, says so
    in table.md, writes standard JSON and does not retrain them when resumed. (Whether a
    trained critic survives lr 1e4 depends on float rounding: none is used as the survivor.)"""
    cfg = replace(QUICK, methods=("random", "rbf"), epochs=2, lr=1e4)
    out = tmp_path / "mb"
    metrics = run_experiment(cfg, out, progress=False)
    rbf, bil = metrics["summary"]["rbf"], metrics["summary"]["random"]
    assert rbf["diverged_seeds"] == [0, 1] and rbf["diverged_epochs"] == [1, 1]
    assert rbf["per_seed"] == [None, None] and rbf["detector_mean_px"] != rbf["detector_mean_px"]
    assert bil["diverged_seeds"] == [] and all(x is not None for x in bil["per_seed"])
    table = (out / "table.md").read_text()
    assert "all diverged" in table and "NaN at ep. 1" in table and "2 run(s) diverged" in table
    on_disk = json.loads((out / "metrics.json").read_text(),
                         parse_constant=lambda c: pytest.fail(f"non-standard JSON {c}"))
    assert on_disk["summary"]["rbf"]["mean_px"] is None
    assert [r.get("diverged", False) for r in on_disk["runs"]] == [False, True, False, True]
    again = run_experiment(cfg, out, progress=False)
    assert again["trained_now"] == 0
    assert again["summary"]["rbf"]["diverged_seeds"] == [0, 1]
    # the cross-reading table reads it back: diverged runs named, settings stated
    table = summary_table({"lr 1e4": out})
    assert curves_figure({"lr 1e4": out}, tmp_path / "c.png").stat().st_size > 0
    assert "| lr 1e4 | InfoNCE, Gaussian (RBF) critic | all diverged | all diverged | 2 of 2 |" \
        in table and "lr 10000, 2 epochs" in table


def test_results_saved_before_a_setting_existed_are_still_found(tmp_path):
    """A run recorded before `negatives`/`optimizer` existed (its key lacks them) is the run
    of their defaults: reused, not retrained; with Adam it is another run."""
    cfg = replace(QUICK, methods=("random",), seeds=(0,))
    out = tmp_path / "mb"
    run_experiment(cfg, out, progress=False)
    rec = out / "runs" / "random-seed0.json"
    data = json.loads(rec.read_text())
    for k in ("negatives", "optimizer"):
        data["key"].pop(k)
    rec.write_text(json.dumps(data))
    assert run_experiment(cfg, out, progress=False)["trained_now"] == 0
    assert run_experiment(replace(cfg, optimizer="adam"), out, progress=False)["trained_now"] == 1
    with pytest.raises(UserError, match="optimizer must be one of sgd, adam"):
        replace(cfg, optimizer="lbfgs")


def test_summary_of_a_folder_that_is_not_a_result_is_one_line(tmp_path):
    from probssl.errors import UserError

    for text in ('{"config": {}}', "[1, 2]", "\xff not json"):
        (tmp_path / "metrics.json").write_text(text, encoding="latin-1")
        with pytest.raises(UserError, match="not a moving-balls result"):
            summary_table({"x": tmp_path})
        with pytest.raises(UserError, match="not a moving-balls result"):
            curves_figure({"x": tmp_path}, tmp_path / "c.png")
