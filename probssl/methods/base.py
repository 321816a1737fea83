"""What a method is: networks + an objective, behind one ``forward(views)``."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from probssl.config import check_types
from probssl.errors import UserError
from probssl.nn import ARCHITECTURES, Encoder


@dataclass
class MethodConfig:
    """Fields shared by every method. ``None`` means "the dataset's default"."""

    arch: str | None = None  # "mlp" or "resnet"
    latent_dim: int | None = None
    n_views: int = 1  # J, views of each image per step

    def __post_init__(self) -> None:
        check_types(self, "params")
        if self.arch is not None and self.arch not in ARCHITECTURES:
            raise UserError(f"unknown architecture {self.arch!r}; choose from "
                            f"{', '.join(ARCHITECTURES)}")
        if self.latent_dim is not None and self.latent_dim < 1:
            raise UserError(f"latent_dim must be >= 1; got {self.latent_dim}")
        if self.n_views < 1:
            raise UserError(f"n_views must be >= 1; got {self.n_views}")
        self.validate()

    def validate(self) -> None:
        """Method-specific checks; raise UserError naming the bad field."""


class Method(nn.Module):
    """A trainable method. Subclasses own their networks and call a pure objective.

    ``forward(views)`` takes a float batch (B, J, C, H, W) and returns the scalar loss to
    minimise and a dict of scalar tensors to log (e.g. the ELBO in nats per image).
    """

    encoder: Encoder
    trainable: bool = True

    def __init__(self, config: MethodConfig):
        super().__init__()
        self.config = config

    @property
    def n_views(self) -> int:
        return self.config.n_views

    def forward(self, views: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def after_step(self) -> None:
        """Called by the trainer after every optimiser step (e.g. MoCo's momentum update)."""
