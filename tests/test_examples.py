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


@pytest.fixture(scope="module")
def trainer_run(tmp_path_factory):
    """probssl's trainer on digits: SimVAE, J=3, 2 epochs of batch 256, seed 5."""
    run = tmp_path_factory.mktemp("examples") / "run"
    train(TrainConfig(method="simvae", dataset="digits", epochs=2, batch_size=256, lr=1e-3,
                      seed=5, device="cpu", params={"n_views": 3}), run,
          progress=False, verbose=False)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return rows, load_run(run).method.encoder.state_dict()


def _check_steps(losses, trainer_run, n_images):
    rows, weights = trainer_run
    steps = int(np.ceil(n_images / 256))
    assert len(losses) == 2 * steps
    for epoch, row in enumerate(rows):  # the trainer logs each epoch's mean step loss
        mine = losses[epoch * steps:(epoch + 1) * steps]
        assert row["loss"] == pytest.approx(float(np.mean(mine)), rel=1e-6)
    return weights


def test_plain_loop_simvae_equals_the_trainer(trainer_run):
    images = load_dataset("digits").x_train
    encoder, losses = _example("simvae_plain_loop").train_simvae(
        images, augmentation="digits", log=lambda *_: None, epochs=2, n_views=3,
        batch_size=256, lr=1e-3, seed=5)
    theirs = _check_steps(losses, trainer_run, len(images))
    for k, v in encoder.state_dict().items():
        assert torch.equal(v, theirs[k]), k  # bit for bit


def test_lightning_simvae_equals_the_trainer(trainer_run):
    L = pytest.importorskip("lightning")
    example = _example("simvae_lightning")
    images = load_dataset("digits").x_train
    losses: list[float] = []

    class StepLosses(L.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            losses.append(outputs["loss"].item())

    model = example.SimVAE(images, n_views=3, lr=1e-3, augmentation="digits", seed=5)
    L.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=False,
              enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, callbacks=[StepLosses()]
              ).fit(model, example.loader(images, 256, seed=5))
    theirs = _check_steps(losses, trainer_run, len(images))
    for k, v in model.encoder.state_dict().items():
        torch.testing.assert_close(v, theirs[k], rtol=1e-5, atol=1e-6, msg=k)
