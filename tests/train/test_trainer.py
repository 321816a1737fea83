"""The trainer: run directory, exact resume, refusal to overwrite, NaN guard, DDP."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from probssl.config import TrainConfig
from probssl.errors import TrainingDiverged, UserError
from probssl.evaluate import EvalConfig, evaluate_run
from probssl.methods import Method, MethodConfig
from probssl.nn import build_encoder
from probssl.runs.checkpoint import list_checkpoints, load_latest
from probssl.runs.format import load_run, read_metrics
from probssl.train import train
from tests.conftest import ROOT, subprocess_env
from tests.ddp_launch import launch_two_ranks


def _cfg(**kw):
    base = dict(method="vae", dataset="digits", epochs=2, batch_size=128, seed=0,
                device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def test_run_directory_records_everything(tmp_path):
    train(_cfg(), tmp_path / "r", progress=False, verbose=False)
    run = tmp_path / "r"
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["train"]["method"] == "vae" and cfg["train"]["augmentation"] == "digits"
    assert cfg["method"]["latent_dim"] == 10 and cfg["method"]["arch"] == "mlp"
    meta = json.loads((run / "meta.json").read_text())
    assert meta["seed"] == 0 and meta["torch_version"] == torch.__version__
    assert "probssl_version" in meta
    rows = read_metrics(run)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert {"loss", "elbo", "kl", "views_per_s"} <= set(rows[0])
    assert rows[-1]["loss"] < rows[0]["loss"]
    assert [e for e, _ in list_checkpoints(run)] == [1, 2]  # keep_checkpoints = 2
    assert not list((run / "checkpoints").glob(".*"))  # no temp files left


def test_resume_is_exact(tmp_path):
    straight = train(_cfg(epochs=4), tmp_path / "a", progress=False, verbose=False)
    train(_cfg(epochs=2), tmp_path / "b", progress=False, verbose=False)
    resumed = train(_cfg(epochs=4), tmp_path / "b", resume=True, progress=False,
                    verbose=False)
    for (k, v), (_, w) in zip(straight.method.state_dict().items(),
                              resumed.method.state_dict().items(), strict=True):
        assert torch.equal(v, w), k
    assert [r["epoch"] for r in read_metrics(tmp_path / "b")] == [1, 2, 3, 4]


def test_existing_run_is_never_overwritten(tmp_path):
    train(_cfg(epochs=1), tmp_path / "r", progress=False, verbose=False)
    before = (tmp_path / "r" / "config.json").read_text()
    with pytest.raises(UserError, match="already holds a run"):
        train(_cfg(epochs=1), tmp_path / "r", progress=False, verbose=False)
    with pytest.raises(UserError, match="different settings.*lr"):
        train(_cfg(epochs=3, lr=0.5), tmp_path / "r", resume=True, progress=False)
    assert (tmp_path / "r" / "config.json").read_text() == before


def test_corrupt_latest_checkpoint_falls_back_to_previous(tmp_path, capsys):
    train(_cfg(epochs=2), tmp_path / "r", progress=False, verbose=False)
    latest = list_checkpoints(tmp_path / "r")[-1][1]
    latest.write_bytes(latest.read_bytes()[:1000])
    state = load_latest(tmp_path / "r")
    assert state["epoch"] == 1
    assert "epoch-0002.pt" in capsys.readouterr().err


@dataclass
class _NaNConfig(MethodConfig):
    bad_epoch: int = 2


class _NaNAfter(Method):
    """Finite loss until ``bad_epoch``, then NaN: exercises the divergence guard."""

    def __init__(self, config, image_shape):
        super().__init__(config)
        self.encoder = build_encoder("mlp", image_shape, 2, "deterministic")
        self.calls = 0

    def forward(self, views):
        self.calls += 1
        z, _ = self.encoder(views.flatten(0, 1))
        loss = z.pow(2).mean()
        if self.calls > 12 * (self.config.bad_epoch - 1) + 1:  # 12 steps per digits epoch
            loss = loss * float("nan")
        return loss, {}


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, temp_method):
    temp_method("nan-test", _NaNConfig, _NaNAfter)
    with pytest.raises(TrainingDiverged, match=r"nan at epoch 2, step 2;.*epoch 1"):
        train(_cfg(method="nan-test", epochs=5), tmp_path / "r", progress=False,
              verbose=False)
    assert load_latest(tmp_path / "r")["epoch"] == 1


def test_vae_beats_random_encoder_on_digits(tmp_path, trained_vae_digits):
    train(_cfg(method="random"), tmp_path / "rnd", progress=False, verbose=False)
    ev = EvalConfig(probe_epochs=20, gmm_n_init=1, mlp_probe=False)
    vae = evaluate_run(load_run(trained_vae_digits), ev)
    rnd = evaluate_run(load_run(tmp_path / "rnd"), ev)
    assert vae["knn"]["best"] > rnd["knn"]["best"] + 0.04
    assert load_run(tmp_path / "rnd").epoch == 0


def _ddp_train(out, *args, torchrun: bool = False):
    """tests/train/ddp_worker.py as ranks 0 and 1 of a gloo job, started by torchrun or
    directly (tests/ddp_launch.py: the env:// rendezvous torchrun sets up, without its agent's
    start-up); both ranks' weights."""
    worker = [str(ROOT / "tests" / "train" / "ddp_worker.py"), str(out), *map(str, args)]
    if torchrun:
        proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                               "--nnodes=1", "--nproc_per_node=2", *worker], cwd=ROOT,
                              env=subprocess_env(), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
    else:
        for rank, proc in enumerate(launch_two_ranks(worker, timeout=300)):
            assert proc.returncode == 0, f"rank {rank}: {proc.stderr[-3000:]}"
    return [torch.load(out / f"rank{r}.pt") for r in (0, 1)]


def test_ddp_two_gloo_processes_identical_weights_and_exact_resume(tmp_path):
    # the uninterrupted run under torchrun (how users launch DDP); the split one started
    # directly, so the launcher's own start-up is paid once
    w0, w1 = _ddp_train(tmp_path / "ddp", 2, torchrun=True)
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k
    init = torch.load(list_checkpoints(tmp_path / "ddp")[0][1], weights_only=False)["model"]
    assert any(not torch.equal(init[k], w0[k]) for k in w0)  # training happened
    meta = json.loads((tmp_path / "ddp" / "meta.json").read_text())
    assert meta["world_size"] == 2
    assert [r["epoch"] for r in read_metrics(tmp_path / "ddp")] == [1, 2]
    # 1 epoch, then resume to 2: the same weights as the uninterrupted DDP run
    _ddp_train(tmp_path / "split", 1)
    r0, r1 = _ddp_train(tmp_path / "split", 2, "resume")
    for k in w0:
        assert torch.equal(r0[k], w0[k]) and torch.equal(r1[k], w0[k]), k


class _RecordViews(Method):
    """Records the views the trainer feeds it (to check next-frame pairing)."""

    seen: list = []

    def __init__(self, config, image_shape):
        super().__init__(config)
        self.encoder = build_encoder("mlp", image_shape, 2, "deterministic")

    def forward(self, views):
        _RecordViews.seen.append(views.detach().clone())
        z, _ = self.encoder(views.flatten(0, 1))
        return z.pow(2).mean(), {}


def test_next_frame_views_are_consecutive_frames(tmp_path, temp_method):
    frames = np.repeat(np.arange(50, dtype=np.uint8)[:, None, None], 6, 1).repeat(6, 2)
    np.savez(tmp_path / "seq.npz", x=frames)  # frame t has every pixel = t
    temp_method("record", MethodConfig, _RecordViews)
    _RecordViews.seen = []
    cfg = TrainConfig(method="record", dataset=f"npz:{tmp_path / 'seq.npz'}", epochs=1,
                      batch_size=8, views="next-frame", augmentation="none",
                      params={"n_views": 3}, device="cpu")
    train(cfg, tmp_path / "r", progress=False, verbose=False)
    views = torch.cat(_RecordViews.seen)  # (items, 3, 1, 6, 6)
    t = (views[:, :, 0, 0, 0] * 255).round()
    assert torch.equal(t[:, 1] - t[:, 0], torch.ones(len(t)))
    assert torch.equal(t[:, 2] - t[:, 1], torch.ones(len(t)))
    # 40 training frames (contiguous 80 %), 38 start frames, each seen once per epoch
    assert sorted(t[:, 0].tolist()) == list(range(38))


def test_compiled_training_matches_eager(tmp_path):
    """--compile (torch.compile of the training forward) traces the method without graph
    breaks that fail, and learns the same thing as eager mode up to round-off."""
    eager = train(_cfg(epochs=1), tmp_path / "eager", progress=False, verbose=False)
    compiled = train(_cfg(epochs=1, compile=True), tmp_path / "compiled", progress=False,
                     verbose=False)
    a, b = eager.history[0]["loss"], compiled.history[0]["loss"]
    assert abs(a - b) < 1e-4 * abs(a)
