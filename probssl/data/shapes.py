"""``shapes``: a generated content/style dataset with every factor recorded.

Content (the label): the shape — square, triangle, ellipse or cross. Style, drawn
independently per image: horizontal and vertical position, scale, rotation, colour (one of
four hues) and brightness. Rotation is drawn within ±¼ of the shape's symmetry period (90° for
square and cross, 120° for the triangle, 180° for the ellipse), so every recorded angle
describes a distinct image. The augmentations of the ``shapes`` preset (crop, flip, colour
jitter) change style and keep content, so a representation that keeps style (the SimVAE
paper's hypothesis H2) is measurable against ground truth: :data:`FACTORS`.

Images are rendered in torch, batched, with 4× supersampling for anti-aliased edges;
the same seed always gives the same images.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from probssl.data.base import ImageDataset
from probssl.errors import UserError

SHAPES = ("square", "triangle", "ellipse", "cross")
PERIOD = {"square": math.pi / 2, "triangle": 2 * math.pi / 3, "ellipse": math.pi,
          "cross": math.pi / 2}
COLOURS = ((1.0, 0.25, 0.25), (0.25, 1.0, 0.25), (0.3, 0.45, 1.0), (1.0, 0.9, 0.2))
FACTORS = ("x", "y", "scale", "rotation", "colour", "brightness")
DISCRETE_FACTORS = ("colour",)


def sample_factors(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(labels (n,), factors (n, 6)) in the order of :data:`FACTORS`; x, y in [0.3, 0.7] of
    the image, scale in [0.18, 0.3] (half-size / image size), rotation in radians."""
    u = torch.rand(n, 5, generator=gen, dtype=torch.float64)
    labels = torch.randint(len(SHAPES), (n,), generator=gen)
    colour = torch.randint(len(COLOURS), (n,), generator=gen)
    period = torch.tensor([PERIOD[s] for s in SHAPES], dtype=torch.float64)[labels]
    factors = torch.stack([0.3 + 0.4 * u[:, 0], 0.3 + 0.4 * u[:, 1], 0.18 + 0.12 * u[:, 2],
                           (u[:, 3] - 0.5) * period / 2, colour.double(),
                           0.55 + 0.45 * u[:, 4]], dim=1)
    return labels, factors


def _inside(shape: str, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Membership in the canonical shape (centre at the origin, extent about ±1)."""
    if shape == "square":
        return (u.abs() <= 0.8) & (v.abs() <= 0.8)
    if shape == "triangle":  # equilateral, centroid at the origin, circumradius 1
        return (v <= 0.5) & (math.sqrt(3) * u - v <= 1.0) & (-math.sqrt(3) * u - v <= 1.0)
    if shape == "ellipse":
        return u ** 2 + (v / 0.5) ** 2 <= 1.0
    return ((u.abs() <= 1.0) & (v.abs() <= 0.3)) | ((u.abs() <= 0.3) & (v.abs() <= 1.0))


def render_shapes(labels: torch.Tensor, factors: torch.Tensor, size: int = 32,
                  supersample: int = 4, chunk: int = 1024) -> torch.Tensor:
    """uint8 RGB images (n, 3, size, size) of the given shapes and factors."""
    out = torch.zeros(len(labels), 3, size, size, dtype=torch.uint8)
    s = size * supersample
    coords = (torch.arange(s, dtype=torch.float32) + 0.5) / s
    colours = torch.tensor(COLOURS, dtype=torch.float32)
    for k, shape in enumerate(SHAPES):  # one membership test per shape, batched over images
        rows = torch.nonzero(labels == k).flatten()
        for start in range(0, len(rows), chunk):
            idx = rows[start:start + chunk]
            f = factors[idx].float()
            x0, y0, scale, rot = (f[:, i, None, None] for i in range(4))
            dx, dy = coords[None, None, :] - x0, coords[None, :, None] - y0
            c, sn = torch.cos(rot), torch.sin(rot)
            # canonical frame: undo the rotation, divide by the scale
            u, v = (c * dx + sn * dy) / scale, (-sn * dx + c * dy) / scale
            cover = F.avg_pool2d(_inside(shape, u, v)[:, None].float(), supersample)
            rgb = colours[f[:, 4].long()] * f[:, 5:6]
            out[idx] = (cover * rgb[:, :, None, None] * 255).round().to(torch.uint8)
    return out


@functools.lru_cache(maxsize=4)  # a grid loads it several times per cell; tensors are read-only
def load_shapes(n_train: int = 10_000, n_test: int = 2_000, size: int = 32,
                seed: int = 0, name: str = "shapes") -> ImageDataset:
    if n_train < 1 or n_test < 1 or size < 8:
        raise UserError("shapes: need at least one train and one test image of >= 8 px")
    gen = torch.Generator().manual_seed(seed)
    labels, factors = sample_factors(n_train + n_test, gen)
    images = render_shapes(labels, factors, size)
    return ImageDataset(
        name, images[:n_train], labels[:n_train], images[n_train:], labels[n_train:],
        num_classes=len(SHAPES), augmentation="shapes", class_names=list(SHAPES),
        factor_names=list(FACTORS), discrete_factors=DISCRETE_FACTORS,
        factors={"train": factors[:n_train].float(), "test": factors[n_train:].float()},
        source=f"generated (seed {seed})")
