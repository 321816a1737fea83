"""Dot-product critic f(z, z') = exp(zᵀ z') (Eq. 8 with W = I, nothing learned)."""

from __future__ import annotations

from probssl.critics.base import Critic, register_critic


@register_critic("dot")
class DotCritic(Critic):
    """Dot-product critic f(z, z') = exp(zᵀ z') (Eq. 8 with W = I, nothing learned).

    That is arXiv:2107.02495v3 Eq. 8 (:class:`BilinearCritic`) with W fixed to the identity."""
    def __init__(self, dim: int):
        super().__init__()

    def forward(self, z, zp):
        return z @ zp.T

    def paired(self, z, zp):
        return (z * zp).sum(-1)
