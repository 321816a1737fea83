"""Dot-product critic f(z, z') = exp(zᵀ z') (Eq. 8 with W = I, nothing learned)."""

from __future__ import annotations

from probssl.critics.base import Critic, register_critic


@register_critic("dot")
class DotCritic(Critic):
    def __init__(self, dim: int):
        super().__init__()

    def forward(self, z, zp):
        return z @ zp.T

    def paired(self, z, zp):
        return (z * zp).sum(-1)
