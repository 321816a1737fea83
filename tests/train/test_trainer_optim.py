"""The trainer builds its optimiser and learning-rate schedule from the config
(TrainConfig.optimizer, momentum, weight_decay, schedule, warmup_epochs, final_lr_ratio),
steps the schedule per optimiser step, and resumes it exactly."""

from __future__ import annotations

import json
import math

import pytest
import torch

from probssl.cli import main
from probssl.config import TrainConfig
from probssl.methods import Method, MethodConfig
from probssl.runs import checkpoint as ckpt
from probssl.runs.checkpoint import list_checkpoints, load_checkpoint_file, load_latest
from probssl.train import train
from probssl.train.loop import Trainer, train_step
from probssl.train.optim import build_optimizer, build_schedule


class _UnitGradient(Method):
    """loss = w (one float64 weight): every SGD step (momentum 0) moves w by exactly -lr, so
    the weights it records after each step give the learning rate of each step."""

    values: list[float] = []

    def __init__(self, config, image_shape):
        super().__init__(config)
        self.w = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, views):
        return self.w + 0 * views.mean().double(), {}

    def after_step(self):
        _UnitGradient.values.append(float(self.w.detach()))


def _expected_lr(s: int, base: float, total: int, warmup: int, r: float) -> float:
    if s < warmup:
        return base * (s + 1) / warmup
    progress = min((s - warmup) / (total - warmup), 1.0)
    return base * (r + (1 - r) * 0.5 * (1 + math.cos(math.pi * progress)))


def test_warmup_cosine_lr_per_step_follows_the_formula(tmp_path, temp_method):
    temp_method("unit-gradient", MethodConfig, _UnitGradient)
    _UnitGradient.values = []
    cfg = TrainConfig(method="unit-gradient", dataset="digits", epochs=4, batch_size=256,
                      device="cpu", optimizer="sgd", momentum=0.0, lr=0.1,
                      schedule="warmup-cosine", warmup_epochs=1, final_lr_ratio=0.1,
                      tensorboard=False)
    train(cfg, tmp_path / "r", progress=False, verbose=False)
    w = [0.0, *_UnitGradient.values]
    lrs = [a - b for a, b in zip(w, w[1:], strict=False)]
    spe = len(lrs) // 4
    assert len(lrs) == 4 * spe and spe > 1
    for s, lr in enumerate(lrs):
        assert lr == pytest.approx(_expected_lr(s, 0.1, 4 * spe, spe, 0.1), rel=1e-9), s
    # the schedule's state is in every checkpoint: 4 epochs of steps taken
    state = load_latest(tmp_path / "r")
    assert state["schedule"]["last_epoch"] == 4 * spe
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.1 * 0.1)


def _equal_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("optimizer", ["sgd", "lars"])
def test_resume_in_the_middle_of_the_schedule_is_exact(tmp_path, optimizer):
    """A run killed mid-epoch, mid-cosine, resumed: the weights of the uninterrupted run."""
    cfg = dict(method="vae", dataset="digits", epochs=3, batch_size=256, seed=1,
               device="cpu", optimizer=optimizer, lr=0.05, weight_decay=1e-4,
               schedule="warmup-cosine", warmup_epochs=1, final_lr_ratio=0.0,
               checkpoint_every=2, keep_checkpoints=100, tensorboard=False)
    run = tmp_path / "r"
    straight = train(TrainConfig(**cfg), run, progress=False, verbose=False)
    final = {k: v.clone() for k, v in straight.method.state_dict().items()}
    # "kill" it after step 2 of epoch 2: every later checkpoint is gone
    names = [p.name for _, p in list_checkpoints(run)]
    cut = names.index("epoch-0001-step-000002.pt")
    for _, p in list_checkpoints(run)[cut + 1:]:
        p.unlink()
        p.with_name(p.name + ".sha256").unlink()
    mid = load_latest(run)
    assert (mid["epoch"], mid["step"]) == (1, 2) and mid["schedule"]["last_epoch"] > 2
    resumed = train(TrainConfig(**cfg), run, resume=True, progress=False, verbose=False)
    _equal_weights(final, resumed.method.state_dict())
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in straight.history]


def test_checkpoint_without_schedule_state_still_resumes(tmp_path):
    """Checkpoints written before the schedule was saved: a constant rate, continued."""
    cfg = dict(method="vae", dataset="digits", epochs=2, batch_size=256, seed=0, device="cpu",
               tensorboard=False)
    straight = train(TrainConfig(**cfg), tmp_path / "a", progress=False, verbose=False)
    train(TrainConfig(**{**cfg, "epochs": 1}), tmp_path / "b", progress=False, verbose=False)
    path = list_checkpoints(tmp_path / "b")[-1][1]
    state = load_checkpoint_file(path)
    del state["schedule"]
    for group in state["optimizer"]["param_groups"]:
        group.pop("initial_lr", None)
    ckpt.atomic_save(state, path)
    resumed = train(TrainConfig(**cfg), tmp_path / "b", resume=True, progress=False,
                    verbose=False)
    _equal_weights(straight.method.state_dict(), resumed.method.state_dict())


def test_optimizer_settings_reach_the_trainer_from_a_config_file(tmp_path):
    conf = tmp_path / "sgd.json"
    conf.write_text(json.dumps({"optimizer": "sgd", "momentum": 0.5, "weight_decay": 1e-3}))
    assert main(["train", "--config", str(conf), "--method", "vae", "--dataset", "digits",
                 "--epochs", "1", "--batch-size", "256", "--device", "cpu", "--no-progress",
                 "--out", str(tmp_path / "r")]) == 0
    groups = load_latest(tmp_path / "r")["optimizer"]["param_groups"]
    # SGD's own keys, the momentum asked for, and biases/norms not decayed
    assert all(g["momentum"] == 0.5 and "nesterov" in g for g in groups)
    assert sorted(g["weight_decay"] for g in groups) == [0.0, 1e-3]
    saved = json.loads((tmp_path / "r" / "config.json").read_text())["train"]
    assert saved["optimizer"] == "sgd" and saved["momentum"] == 0.5


def test_train_step_and_trainer_without_callbacks():
    """The loop on its own (what the benchmark times): views in, steps taken, a row out."""
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 1)

    class _Regress(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, views):
            return self.net(views[:, 0]).pow(2).mean(), {"n": 1.0}

        def after_step(self):
            pass

    method = _Regress()
    opt = build_optimizer(method, name="sgd", lr=0.1)
    sched = build_schedule(opt, name="warmup-cosine", total_steps=6, warmup_steps=2)
    data = torch.randn(30, 4)
    out = train_step(method, data[:10, None], opt, schedule=sched)
    assert out.loss.requires_grad is False and out.metrics == {"n": 1.0}
    assert sched.last_epoch == 1
    trainer = Trainer(method, opt, lambda idx: data[idx, None], len(data), batch_size=10,
                      epochs=2, seed=0, device=torch.device("cpu"), schedule=sched)
    history = trainer.fit(start_epoch=1)
    assert [r["epoch"] for r in history] == [2] and history[0]["n"] == 1.0
    assert sched.last_epoch == 4
