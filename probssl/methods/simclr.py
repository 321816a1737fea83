"""``simclr``: NT-Xent on J views (Chen et al. 2020), :func:`probssl.objectives.nt_xent.nt_xent`.

The loss is applied to the encoder's code directly by default (``projection_dim = 0``), to
match the paper's "same architecture" protocol; ``projection_dim > 0`` adds SimCLR's 2-layer
MLP head (evaluation still uses the encoder's code).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from probssl.errors import UserError
from probssl.methods.base import Method, MethodConfig, register_method
from probssl.nn import build_encoder
from probssl.objectives.nt_xent import nt_xent


def projection_head(dim: int, out: int) -> nn.Module:
    """Linear(dim, dim) → ReLU → Linear(dim, out): SimCLR's 2-layer projection head (and
    VICReg's expander here)."""
    return nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, out))


@dataclass
class SimCLRConfig(MethodConfig):
    n_views: int = 2
    temperature: float = 0.7
    projection_dim: int = 0

    def validate(self) -> None:
        if self.n_views < 2:
            raise UserError(f"simclr contrasts views: n_views must be >= 2; got {self.n_views}")
        if not self.temperature > 0:
            raise UserError(f"temperature must be > 0; got {self.temperature}")
        if self.projection_dim < 0:
            raise UserError(f"projection_dim must be >= 0; got {self.projection_dim}")


# paper: 600 epochs; the SimVAE paper gives lr 8e-5…1e-3 per dataset without saying which:
# 1e-3 is our choice
@register_method("simclr", config=SimCLRConfig,
                 description="SimCLR, NT-Xent (arXiv:2002.05709)",
                 presets={"paper": ({"lr": 1e-3, "epochs": 600}, {})})
class SimCLR(Method):
    """``simclr`` (module docstring): the encoder's code, through an optional projection head,
    trained by NT-Xent (Chen et al. 2020, arXiv:2002.05709 Eq. 1) over the J views of each
    image."""
    def __init__(self, config: SimCLRConfig, image_shape: tuple[int, int, int]):
        super().__init__(config)
        self.encoder = build_encoder(config.arch, image_shape, config.latent_dim,
                                     "deterministic")
        self.head = (projection_head(config.latent_dim, config.projection_dim)
                     if config.projection_dim else nn.Identity())

    def forward(self, views: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg: SimCLRConfig = self.config  # type: ignore[assignment]
        b, j = views.shape[:2]
        z, _ = self.encoder(views.flatten(0, 1))
        loss = nt_xent(self.head(z).view(b, j, -1), cfg.temperature)
        return loss, {}
