"""Cosine critic f(z, z') = exp(cos(z, z') / τ), SimCLR's NT-Xent similarity (fixed τ)."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from probssl.critics.base import Critic, register_critic
from probssl.errors import UserError
from probssl.registry import ComponentConfig


@dataclass
class CosineCriticConfig(ComponentConfig):
    temperature: float = 0.5  # τ, fixed

    def validate(self) -> None:
        if not self.temperature > 0:
            raise UserError(f"critic.temperature must be > 0; got {self.temperature}")


@register_critic("cosine", config=CosineCriticConfig)
class CosineCritic(Critic):
    """Cosine critic f(z, z') = exp(cos(z, z') / τ), SimCLR's NT-Xent similarity (fixed τ).

    No equation of its own in the RPM paper:

        >>> import torch
        >>> CosineCritic(dim=3, temperature=0.5)(torch.eye(3), torch.eye(3)).diagonal()
        tensor([2., 2., 2.])
    """
    def __init__(self, dim: int, temperature: float = 0.5):
        super().__init__()
        if not temperature > 0:
            raise ValueError("temperature must be > 0")
        self.temperature = temperature

    def forward(self, z, zp):
        return F.normalize(z, dim=-1) @ F.normalize(zp, dim=-1).T / self.temperature

    def paired(self, z, zp):
        return (F.normalize(z, dim=-1) * F.normalize(zp, dim=-1)).sum(-1) / self.temperature
