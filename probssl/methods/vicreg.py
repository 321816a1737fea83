"""``vicreg``: variance-invariance-covariance regularisation (Bardes et al. 2022),
:func:`probssl.objectives.vicreg.vicreg_loss` on an expander of the encoder's code.

The expander (Linear-ReLU-Linear to ``expander_dim``) is part of VICReg's definition and is
dropped at evaluation, so the encoder is the same as every other method's. It is on by default
because without it the loss acts on the 10-d code itself and the representation collapses
below the random encoder: measured on mnist-test, 20 epochs, seed 0, kNN 34.3 % (lr 1e-3) and
30.7 % (lr 1e-4) without, 77.2 % with a 256-d expander, vs 45.4 % for the random encoder
(docs/RESULTS.md). ``expander_dim = 0`` gives the representation-only variant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from probssl.errors import UserError
from probssl.methods.base import Method, MethodConfig, register_method
from probssl.methods.simclr import projection_head
from probssl.nn import build_encoder
from probssl.objectives.vicreg import vicreg_loss


@dataclass
class VICRegConfig(MethodConfig):
    # fields added after runs were saved: the value that reproduces those runs
    LEGACY: ClassVar[dict[str, Any]] = {"expander_dim": 0}
    n_views: int = 2
    sim_coeff: float = 25.0  # λ, invariance
    std_coeff: float = 25.0  # μ, variance
    cov_coeff: float = 1.0  # ν, covariance
    expander_dim: int = 256

    def validate(self) -> None:
        if self.n_views < 2:
            raise UserError(f"vicreg compares views: n_views must be >= 2; got {self.n_views}")
        for name in ("sim_coeff", "std_coeff", "cov_coeff"):
            if getattr(self, name) < 0:
                raise UserError(f"{name} must be >= 0; got {getattr(self, name)}")
        if self.expander_dim < 0:
            raise UserError(f"expander_dim must be >= 0; got {self.expander_dim}")


@register_method("vicreg", config=VICRegConfig, description="VICReg (arXiv:2105.04906)",
                 presets={"paper": ({"lr": 1e-4, "epochs": 600}, {})})
class VICReg(Method):
    """``vicreg`` (module docstring): the encoder's code through an expander, trained by VICReg
    (Bardes et al. 2022, arXiv:2105.04906) with the released code's weighting,
    :func:`probssl.objectives.vicreg.vicreg_loss`.

        >>> model = VICReg(VICRegConfig(arch="mlp", latent_dim=4), (1, 8, 8))
        >>> loss, terms = model(torch.rand(5, 2, 1, 8, 8))  # (B, J, C, H, W)
        >>> sorted(terms)
        ['covariance', 'invariance', 'variance']
    """
    min_batch_size = 2  # the variance term needs two images per step

    def __init__(self, config: VICRegConfig, image_shape: tuple[int, int, int]):
        super().__init__(config)
        self.encoder = build_encoder(config.arch, image_shape, config.latent_dim,
                                     "deterministic")
        self.head = (projection_head(config.latent_dim, config.expander_dim)
                     if config.expander_dim else nn.Identity())

    def forward(self, views: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg: VICRegConfig = self.config  # type: ignore[assignment]
        b, j = views.shape[:2]
        z, _ = self.encoder(views.flatten(0, 1))
        loss, terms = vicreg_loss(self.head(z).view(b, j, -1), cfg.sim_coeff, cfg.std_coeff,
                                  cfg.cov_coeff)
        return loss, {k: v.detach() for k, v in terms.items()}
