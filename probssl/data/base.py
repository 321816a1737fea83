"""The in-memory dataset every loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ImageDataset:
    """Images and labels of one dataset, already split.

    ``x_train``/``x_test`` are uint8 tensors of shape (N, C, H, W) with values 0..255;
    ``y_train``/``y_test`` are int64 tensors of shape (N,) or ``None`` for unlabelled data.
    ``attributes`` optionally maps a split name to an (N, A) int64 tensor of binary
    attributes named by ``attribute_names`` (CelebA's 40 attributes).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor | None
    x_test: torch.Tensor
    y_test: torch.Tensor | None
    num_classes: int | None
    augmentation: str
    class_names: list[str] | None = None
    attribute_names: list[str] | None = None
    attributes: dict[str, torch.Tensor] = field(default_factory=dict)
    # generated data with known generative factors: split -> (N, F) float, named below
    factor_names: list[str] | None = None
    factors: dict[str, torch.Tensor] = field(default_factory=dict)
    # the factors among ``factor_names`` that are categories (probed by accuracy, not R²)
    discrete_factors: tuple[str, ...] = ()
    source: str = ""

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x = getattr(self, f"x_{split}")
            y = getattr(self, f"y_{split}")
            if x.dtype != torch.uint8 or x.dim() != 4:
                raise ValueError(f"{self.name}: x_{split} must be uint8 (N,C,H,W), got "
                                 f"{x.dtype} {tuple(x.shape)}")
            if y is not None and (y.dim() != 1 or len(y) != len(x)):
                raise ValueError(f"{self.name}: y_{split} must have shape ({len(x)},)")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W)."""
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        if name not in ("train", "test"):
            raise ValueError(f"unknown split {name!r}; use 'train' or 'test'")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    def describe(self) -> str:
        c, h, w = self.image_shape
        labels = f"{self.num_classes} classes" if self.num_classes else "unlabelled"
        return (f"{self.name}: {len(self.x_train)} train / {len(self.x_test)} test images of "
                f"{c}x{h}x{w}, {labels}, augmentation preset '{self.augmentation}'")
