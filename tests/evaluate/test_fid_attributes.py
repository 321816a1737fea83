"""FID with pluggable features, CelebA attribute probes, augmentation strength."""

import numpy as np
import pytest
import torch

from probssl.cli import main
from probssl.config import TrainConfig
from probssl.data.augment import get_preset, preprocess, with_strength
from probssl.data.celeba import ATTRIBUTE_NAMES
from probssl.errors import UserError
from probssl.evaluate.attributes import (
    CELEBA_ATTRIBUTES,
    HAIR_COLOURS,
    attribute_scores,
    hair_colour_labels,
)
from probssl.evaluate.fid import (
    fid_of_run,
    frechet_distance_of_features,
    load_feature_extractor,
)
from probssl.evaluate.generate import generated_samples
from probssl.runs.format import load_run


class ChannelStats(torch.nn.Module):
    """A stand-in detector with the pt_inception calling convention: uint8-valued input,
    ``return_features=True`` -> (N, D)."""

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        x = x.float()
        return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], 1)


def test_torchscript_extractor_follows_the_inception_convention(tmp_path):
    path = tmp_path / "detector.pt"
    torch.jit.script(ChannelStats()).save(str(path))
    ext = load_feature_extractor(f"inception:{path}")
    assert ext.inception and "detector.pt" in ext.name
    x = torch.rand(5, 1, 8, 8)
    feats = ext(x, batch_size=2)
    x255 = (x * 255).round().repeat(1, 3, 1, 1)  # grey images become 3 channels of 0..255
    want = torch.cat([x255.mean(dim=(2, 3)), x255.amax(dim=(2, 3))], 1)
    np.testing.assert_allclose(feats, want.double().numpy(), rtol=1e-6)
    with pytest.raises(UserError, match="no such file"):
        load_feature_extractor(f"inception:{tmp_path / 'missing.pt'}")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(UserError, match="not a loadable TorchScript"):
        load_feature_extractor(f"inception:{tmp_path / 'junk.pt'}")
    with pytest.raises(UserError, match="classifier"):
        load_feature_extractor("vgg")


def test_fid_of_a_trained_vae_is_closer_than_noise(trained_vae_digits, capsys):
    loaded = load_run(trained_vae_digits)
    data = loaded.resolved.data
    samples = generated_samples(loaded, 300, seed=1)
    assert samples.shape == (300, 1, 8, 8) and 0 <= samples.min() and samples.max() <= 1
    ext = load_feature_extractor("classifier", preprocess(data.x_train, loaded.resolved.augment),
                                 data.y_train, key=("digits",))
    assert not ext.inception and "not comparable" in ext.name
    fid = fid_of_run(loaded, ext, n_samples=300)
    real = preprocess(data.x_test[:300], loaded.resolved.augment)
    # between the floor (real train vs real test images) and uniform noise
    floor = frechet_distance_of_features(ext(real), ext(preprocess(data.x_train[:300],
                                                                   loaded.resolved.augment)))
    noise = frechet_distance_of_features(ext(real), ext(torch.rand_like(real)))
    assert fid["n"] == 300 and floor < fid["value"] < noise
    assert main(["evaluate", str(trained_vae_digits), "--probe-epochs", "2", "--gmm-n-init", "1",
                 "--fid-samples", "200"]) == 0
    out = capsys.readouterr().out
    assert "Fréchet distance" in out and "NOT comparable" in out and "reconstruction MSE" in out


def test_hair_colour_drops_ambiguous_images():
    names = list(ATTRIBUTE_NAMES)
    a = np.zeros((4, 40), np.int64)
    a[0, names.index("Blond_Hair")] = 1
    a[1, names.index("Gray_Hair")] = 1
    a[2, [names.index("Black_Hair"), names.index("Brown_Hair")]] = 1  # ambiguous
    # row 3: no hair colour at all -> ambiguous
    assert hair_colour_labels(a, names).tolist() == [HAIR_COLOURS.index("Blond_Hair"),
                                                     HAIR_COLOURS.index("Gray_Hair"), -1, -1]
    with pytest.raises(UserError, match="Bald"):
        hair_colour_labels(a[:, 5:], names[5:])


def test_attribute_probes_read_informative_dimensions():
    rng = np.random.default_rng(0)
    names = list(ATTRIBUTE_NAMES)
    n = 600
    z = rng.normal(size=(n, 4))
    a = (rng.random((n, 40)) < 0.3).astype(np.int64)
    a[:, names.index("Smiling")] = (z[:, 0] > 0)  # readable from z
    hair = rng.integers(0, 5, n)
    hair[z[:, 1] > 0.5] = 2
    for k, h in enumerate(HAIR_COLOURS):
        a[:, names.index(h)] = hair == k
    res = attribute_scores(z[:400], a[:400], z[400:], a[400:], names, epochs=60, lr=3e-3)
    assert set(res["attributes"]) == set(CELEBA_ATTRIBUTES) and res["probe"] == "mlp"
    assert res["attributes"]["Smiling"] > 0.9
    # an attribute independent of z is predicted no better than its majority value
    assert res["attributes"]["Bangs"] <= res["majority"]["Bangs"] + 0.05
    assert res["hair_colour_n"] == [400, 200] and res["hair_colour"] > 0.4


def test_augmentation_strength_scales_crop_and_jitter():
    cifar = get_preset("cifar10")
    assert with_strength(cifar, 1.0) is cifar
    none = with_strength(cifar, 0.0)
    assert none.crop_scale == (1.0, 1.0) and none.brightness == 0 and none.hue == 0
    assert none.hflip_p == cifar.hflip_p
    strong = with_strength(cifar, 2.0)
    assert strong.crop_scale == pytest.approx((0.2, 1.0)) and strong.brightness == 1.6
    assert strong.hue == 0.4 and with_strength(cifar, 4.0).hue == 0.5
    with pytest.raises(UserError, match="aug_strength"):
        TrainConfig(aug_strength=-1.0)
    from probssl.experiments.bench import parse_sweep, plan_grid

    plan = plan_grid(["vae"], ["digits"], [0], preset="quick",
                     sweep=parse_sweep("aug_strength=0.5,2"))
    assert [cfg.aug_strength for _, cfg in plan] == [0.5, 2.0]
