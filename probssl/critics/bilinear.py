"""Bilinear critic f(z, z') = exp(zᵀ W z') with a learned matrix W (arXiv:2107.02495v3 Eq. 8)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from probssl.critics.base import Critic, register_critic
from probssl.errors import UserError
from probssl.registry import ComponentConfig


@dataclass
class BilinearCriticConfig(ComponentConfig):
    init_scale: float = 1.0  # W starts as init_scale · I

    def validate(self) -> None:
        if not self.init_scale > 0:
            raise UserError(f"critic.init_scale must be > 0; got {self.init_scale}")


@register_critic("bilinear", config=BilinearCriticConfig)
class BilinearCritic(Critic):
    """
    Bilinear critic f(z, z') = exp(zᵀ W z') with a learned matrix W (arXiv:2107.02495v3 Eq. 8).

    W (dim, dim) starts at ``init_scale`` · I; ``forward`` returns log f(z_i, z'_j) = z_iᵀ W z'_j.
    """
    def __init__(self, dim: int, init_scale: float = 1.0):
        super().__init__()
        self.W = nn.Parameter(init_scale * torch.eye(dim))

    def forward(self, z, zp):
        return z @ self.W @ zp.T

    def paired(self, z, zp):
        return ((z @ self.W) * zp).sum(-1)

    def log_params(self):
        return {"W_frobenius": float(self.W.detach().norm())}
