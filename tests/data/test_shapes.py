"""The shapes generator draws what its recorded factors say."""

import math

import torch

from probssl.data.registry import DATASETS
from probssl.data.shapes import COLOURS, FACTORS, SHAPES, render_shapes, sample_factors


def _render(shape: str, x=0.5, y=0.5, scale=0.25, rot=0.0, colour=0, bright=1.0, size=64):
    f = torch.tensor([[x, y, scale, rot, colour, bright]], dtype=torch.float64)
    return render_shapes(torch.tensor([SHAPES.index(shape)]), f, size=size)[0].float() / 255


def test_same_seed_same_images_and_factors_in_range():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    (l1, f1), (l2, f2) = sample_factors(500, g1), sample_factors(500, g2)
    assert torch.equal(l1, l2) and torch.equal(f1, f2)
    assert torch.equal(render_shapes(l1[:20], f1[:20]), render_shapes(l2[:20], f2[:20]))
    assert set(l1.tolist()) == set(range(len(SHAPES)))
    assert f1[:, :2].min() >= 0.3 and f1[:, :2].max() <= 0.7
    assert set(f1[:, FACTORS.index("colour")].long().tolist()) == set(range(len(COLOURS)))


def test_area_position_colour_and_brightness_match_the_factors():
    size, scale = 64, 0.25
    img = _render("square", x=0.4, y=0.6, scale=scale, colour=1, bright=0.8, size=size)
    mask = img.sum(0) > 0
    # square half-side 0.8 * scale of the image -> area (1.6 * scale * size)^2 pixels
    area = float(img.amax(0).sum() / img.amax())
    assert abs(area - (1.6 * scale * size) ** 2) < 0.03 * (1.6 * scale * size) ** 2
    ys, xs = torch.nonzero(mask, as_tuple=True)
    assert abs((xs.float().mean() + 0.5) / size - 0.4) < 0.01
    assert abs((ys.float().mean() + 0.5) / size - 0.6) < 0.01
    peak = img.amax(dim=(1, 2))
    assert torch.allclose(peak, torch.tensor(COLOURS[1]) * 0.8, atol=2 / 255)
    ellipse = _render("ellipse", scale=scale, size=size).amax(0)
    assert abs(float(ellipse.sum()) - math.pi * 0.5 * (scale * size) ** 2) < 0.03 * \
        math.pi * 0.5 * (scale * size) ** 2


def test_rotation_by_the_symmetry_period_gives_the_same_image():
    for shape, period in (("square", math.pi / 2), ("triangle", 2 * math.pi / 3),
                          ("ellipse", math.pi), ("cross", math.pi / 2)):
        a = _render(shape, rot=0.1)
        b = _render(shape, rot=0.1 + period)
        assert (a - b).abs().max() < 0.02, shape
        assert (a - _render(shape, rot=0.1 + period / 4)).abs().max() > 0.5, shape


def test_shapes_is_a_listed_dataset():
    info = DATASETS["shapes"]
    assert info.image_shape == (3, 32, 32) and info.num_classes == 4
