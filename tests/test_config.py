"""Config parsing: typed, validated, and never anything but a UserError on bad input."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probssl.config import TrainConfig
from probssl.data.augment import get_preset
from probssl.errors import UserError
from probssl.experiments.bench import parse_sweep, plan_grid
from probssl.methods import make_method_config
from probssl.methods.vae import VAEConfig
from probssl.schema import build_dataclass, parse_assignments

KEYS = ["method", "dataset", "epochs", "batch_size", "lr", "seed", "device", "amp",
        "augmentation", "params", "keep_checkpoints", "weight_decay", "bogus"]
VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 300), st.floats(allow_nan=True),
                   st.text(max_size=8), st.lists(st.integers(), max_size=3),
                   st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6))
def test_fuzzed_train_config_is_valid_or_a_user_error(values):
    try:
        cfg = build_dataclass(TrainConfig, values, "config")
    except UserError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(cfg.epochs, int) and cfg.epochs >= 0
    assert isinstance(cfg.lr, float) and cfg.lr > 0


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["beta", "likelihood", "likelihood_var", "latent_dim",
                                        "n_views", "arch", "nope"]), VALUES, max_size=4))
def test_fuzzed_method_params_are_valid_or_a_user_error(params):
    try:
        cfg = make_method_config("vae", params, arch="mlp", latent_dim=10)
    except UserError:
        return
    assert cfg.likelihood in ("gaussian", "bernoulli") and cfg.beta >= 0


def test_int_is_accepted_for_float_but_not_bool_for_int():
    assert TrainConfig(lr=1).lr == 1.0
    with pytest.raises(UserError, match="'epochs' must be int"):
        TrainConfig(epochs=True)
    with pytest.raises(UserError, match="'epochs' must be int"):
        TrainConfig(epochs=2.5)


def test_assignments_are_typed():
    got = parse_assignments(["beta=2", "likelihood=bernoulli", "latent_dim=none"], VAEConfig,
                            "params")
    assert got == {"beta": 2.0, "likelihood": "bernoulli", "latent_dim": None}
    with pytest.raises(UserError, match="cannot read 'x' as int"):
        parse_assignments(["n_views=x"], VAEConfig, "params")


@pytest.mark.parametrize("dataset,expected", [
    ("mnist", "mnist-vflip"), ("mnist-test", "mnist-vflip"),
    ("fashion-mnist", "fashion-mnist-vflip"), ("cifar10", "cifar10-vflip"),
    ("celeba", "celeba-vflip"), ("digits", None), ("shapes", None)])
def test_paper_preset_flips_vertically_on_the_papers_datasets(dataset, expected):
    """SimVAE Table 2's "Vertical Flip" column and the authors' code agree: --preset paper
    flips vertically; datasets the paper does not use keep their default (horizontal)."""
    for method in ("simvae", "simclr", "vae"):
        cfg = TrainConfig(method=method, dataset=dataset, preset="paper")
        assert cfg.augmentation == expected
        if expected is not None:
            aug = get_preset(expected)
            default = get_preset(expected.removesuffix("-vflip"))
            assert aug.flips() == "vertical" and default.flips() == "horizontal"
            # the axis is the only difference from the dataset's default
            assert dataclasses.replace(aug, vflip_p=0.0, hflip_p=0.5) == default
    # an explicit augmentation still wins over the preset
    assert TrainConfig(method="simvae", dataset="mnist", preset="paper",
                       augmentation="mnist").augmentation == "mnist"


def test_shapes_flip_axis_is_a_sweepable_setting():
    """H2's flip column: `bench --sweep augmentation=shapes,shapes-vflip` runs both axes."""
    key, values = parse_sweep("augmentation=shapes,shapes-vflip")
    plan = plan_grid(["simclr"], ["shapes"], [0], sweep=(key, values), epochs=1)
    axes = [get_preset(cfg.augmentation).flips() for _, cfg in plan]
    assert axes == ["horizontal", "vertical"]
