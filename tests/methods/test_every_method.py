"""Every registered method — a new one included, with no edit here — builds from its config
alone, declares what evaluation may ask of it, and gives a finite loss whose gradient reaches
its encoder."""

from __future__ import annotations

import math

import pytest
import torch

from probssl.config import preset_values, resolve
from probssl.methods import METHODS
from probssl.methods.base import build_method, is_trainable, make_method_config
from probssl.presets import PRESETS


@pytest.mark.parametrize("name", METHODS.names())
def test_method_builds_and_its_loss_reaches_the_encoder(name):
    torch.manual_seed(0)
    cfg = make_method_config(name, {}, arch="mlp", latent_dim=4)
    method = build_method(name, cfg, (1, 8, 8))
    assert method.image_decoder() is None or isinstance(method.image_decoder(), torch.nn.Module)
    assert method.pair_critic() is None or isinstance(method.pair_critic(), torch.nn.Module)
    mean, _ = method.encoder(torch.rand(5, 1, 8, 8))
    assert mean.shape == (5, 4)
    if not is_trainable(name):
        return
    views = torch.rand(16, method.n_views, 1, 8, 8)
    loss, metrics = method(views)
    assert loss.dim() == 0 and math.isfinite(float(loss.detach()))
    assert all(torch.as_tensor(v).numel() == 1 for v in metrics.values())
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in method.encoder.parameters())


@pytest.mark.parametrize("name", METHODS.names())
@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_resolves_for_every_method(name, preset):
    train_values, params = preset_values(preset, name, "mnist")
    cfg = resolve(preset=preset, flags={"method": name, "dataset": "mnist"})
    for key, value in train_values.items():
        assert getattr(cfg, key) == value, key
    assert {**cfg.params, **params} == cfg.params  # the preset's params, unless overridden
    make_method_config(name, cfg.params, arch="mlp", latent_dim=10)  # valid for the method
