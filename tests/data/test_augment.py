"""Semantics of the batched J-view augmentation."""

from __future__ import annotations

import pytest
import torch

from probssl.data.augment import (
    PRESETS,
    AugmentConfig,
    adjust_hue,
    augment,
    hsv_to_rgb,
    preprocess,
    rgb_to_hsv,
    sample_crop_boxes,
)
from probssl.errors import UserError


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def batch():
    return torch.randint(0, 256, (6, 3, 16, 12), dtype=torch.uint8, generator=_gen(1))


def test_full_crop_without_jitter_is_identity(batch):
    views = augment(batch, 4, AugmentConfig(crop_scale=(1.0, 1.0), crop_ratio=(0.75, 0.75)),
                    _gen())
    ref = batch.float() / 255
    # ratio 0.75 = 12/16 is exactly this image's aspect, so the crop is the whole image
    assert torch.allclose(views, ref.unsqueeze(1).expand_as(views), atol=1e-5)


def test_flips_match_torch_flip_and_two_flips_are_identity(batch):
    x = batch.float() / 255
    v = augment(batch, 1, AugmentConfig(vflip_p=1.0, crop_ratio=(0.75, 0.75)), _gen())[:, 0]
    assert torch.allclose(v, x.flip(-2), atol=1e-5)
    vv = augment(v, 1, AugmentConfig(vflip_p=1.0, crop_ratio=(0.75, 0.75)), _gen())[:, 0]
    assert torch.allclose(vv, x, atol=1e-5)
    h = augment(batch, 1, AugmentConfig(hflip_p=1.0, crop_ratio=(0.75, 0.75)), _gen())[:, 0]
    assert torch.allclose(h, x.flip(-1), atol=1e-5)


def test_hue_shift_of_zero_changes_nothing(batch):
    x = batch.float() / 255
    assert torch.allclose(adjust_hue(x, torch.zeros(len(x))), x, atol=1e-5)
    assert torch.allclose(hsv_to_rgb(rgb_to_hsv(x)), x, atol=1e-5)


def test_hue_shift_by_a_third_rotates_primaries():
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 1.0
    green = adjust_hue(red, torch.tensor([1 / 3]))
    assert torch.allclose(green[0, :, 0, 0], torch.tensor([0.0, 1.0, 0.0]), atol=1e-5)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_value_range_shape_and_views_differ(preset, batch):
    cfg = PRESETS[preset]
    views = augment(batch, 5, cfg, _gen())
    assert views.shape == (6, 5, 3, 16, 12) and views.dtype == torch.float32
    assert views.min() >= 0.0 and views.max() <= 1.0
    if preset != "none":
        for j in range(1, 5):
            assert not torch.equal(views[:, 0], views[:, j])


def test_binarise_gives_zeros_and_ones(batch):
    views = augment(batch[:, :1], 3, PRESETS["mnist"], _gen())
    assert set(views.unique().tolist()) <= {0.0, 1.0}
    assert set(preprocess(batch[:, :1], PRESETS["mnist"]).unique().tolist()) <= {0.0, 1.0}


def test_same_generator_seed_same_views(batch):
    a = augment(batch, 3, PRESETS["cifar10"], _gen(5))
    b = augment(batch, 3, PRESETS["cifar10"], _gen(5))
    c = augment(batch, 3, PRESETS["cifar10"], _gen(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_crop_boxes_inside_image_with_scale_in_range():
    x0, y0, w, h = sample_crop_boxes(5000, 28, 28, (0.4, 1.0), (0.75, 1.3), _gen(), "cpu")
    assert (x0 >= 0).all() and (y0 >= 0).all()
    assert (x0 + w <= 28 + 1e-4).all() and (y0 + h <= 28 + 1e-4).all()
    area = w * h / (28 * 28)
    assert area.min() >= 0.4 - 1e-4 and area.max() <= 1.0 + 1e-4
    ratio = w / h
    fitted = area < 0.999  # fall-back boxes are the whole image
    assert ratio[fitted].min() >= 0.75 - 1e-4 and ratio[fitted].max() <= 1.3 + 1e-4


def test_crop_is_a_zoom_of_the_image():
    # a horizontal ramp: a crop of the left half must only hold values from the left half
    ramp = torch.linspace(0, 1, 32).expand(1, 1, 32, 32).contiguous()
    cfg = AugmentConfig(crop_scale=(0.25, 0.25), crop_ratio=(1.0, 1.0))
    views = augment(ramp, 64, cfg, _gen())
    spans = views.amax(dim=(2, 3, 4)) - views.amin(dim=(2, 3, 4))
    assert torch.allclose(spans, torch.full_like(spans, 15 / 31), atol=0.04)


def test_output_size_and_bad_config():
    x = torch.rand(2, 1, 20, 20)
    assert augment(x, 2, AugmentConfig(output_size=(8, 8)), _gen()).shape == (2, 2, 1, 8, 8)
    with pytest.raises(UserError, match="crop_scale"):
        AugmentConfig(crop_scale=(0.0, 1.0))
    with pytest.raises(UserError, match="hflip_p"):
        AugmentConfig(hflip_p=1.5)


def test_jitter_probability_zero_leaves_colours(batch):
    cfg = AugmentConfig(crop_ratio=(0.75, 0.75), jitter_p=0.0, brightness=0.8, hue=0.2)
    views = augment(batch, 2, cfg, _gen())
    assert torch.allclose(views[:, 0], batch.float() / 255, atol=1e-5)
