"""The examples run, and the plain-PyTorch SimVAE loop takes the steps probssl's trainer
takes (same seed: same weights, batch order, augmentations and noise)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from probssl.config import TrainConfig
from probssl.data import load_dataset
from probssl.runs.format import load_run
from probssl.train.trainer import train
from tests.conftest import ROOT


def _example(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plain_loop_simvae_equals_the_trainer(tmp_path):
    cfg = dict(epochs=2, n_views=3, batch_size=256, lr=1e-3, seed=5)
    images = load_dataset("digits").x_train
    encoder, losses = _example("simvae_plain_loop").train_simvae(
        images, augmentation="digits", log=lambda *_: None, **cfg)
    train(TrainConfig(method="simvae", dataset="digits", epochs=2, batch_size=256, lr=1e-3,
                      seed=5, device="cpu", params={"n_views": 3}), tmp_path / "run",
          progress=False, verbose=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text()
            .splitlines()]
    steps = int(np.ceil(len(images) / 256))
    assert len(losses) == 2 * steps
    for epoch, row in enumerate(rows):  # the trainer logs each epoch's mean step loss
        mine = losses[epoch * steps:(epoch + 1) * steps]
        assert row["loss"] == pytest.approx(float(np.mean(mine)), rel=1e-6)
    theirs = load_run(tmp_path / "run").method.encoder.state_dict()
    for k, v in encoder.state_dict().items():
        assert torch.equal(v, theirs[k]), k  # bit for bit
