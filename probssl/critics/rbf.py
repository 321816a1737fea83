"""Gaussian RBF critic f(z, z') = exp(−|z − z'|² / 2θ²), learned length-scale θ
(arXiv:2107.02495v3 Eq. 27: the prior "z' is near z" that succeeds on moving balls)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from probssl.critics.base import Critic, register_critic
from probssl.errors import UserError
from probssl.registry import ComponentConfig


@dataclass
class RBFCriticConfig(ComponentConfig):
    length_scale: float = 1.0  # initial θ (learned)

    def validate(self) -> None:
        if not self.length_scale > 0:
            raise UserError(f"critic.length_scale must be > 0; got {self.length_scale}")


@register_critic("rbf", config=RBFCriticConfig)
class RBFCritic(Critic):
    """Gaussian RBF critic f(z, z') = exp(−|z − z'|² / 2θ²), learned length-scale θ
    (arXiv:2107.02495v3 Eq. 27), learned through its log and starting at ``length_scale``."""
    def __init__(self, dim: int, length_scale: float = 1.0):
        super().__init__()
        self.log_length_scale = nn.Parameter(torch.tensor(math.log(length_scale)))

    @property
    def length_scale(self) -> torch.Tensor:
        return self.log_length_scale.exp()

    def forward(self, z, zp):
        sq = (z.unsqueeze(1) - zp.unsqueeze(0)).pow(2).sum(-1)
        return -sq / (2 * self.length_scale ** 2)

    def paired(self, z, zp):
        return -(z - zp).pow(2).sum(-1) / (2 * self.length_scale ** 2)

    def log_params(self):
        return {"length_scale": float(self.length_scale.detach())}
