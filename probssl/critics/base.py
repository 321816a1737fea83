"""What a critic is: the coupling f_θ(z, z') of the RPM prior (arXiv:2107.02495v3 Eq. 21b).

Choosing a critic is choosing a prior: P_θ(z'|z) ∝ R(z') f_θ(z, z'). Every critic returns the
pairwise matrix log f_θ(z_i, z'_j) for two batches, so the positive pairs sit on the diagonal
and the other columns are the in-batch negatives.
"""

from __future__ import annotations

import torch
from torch import nn

from probssl.registry import Component, Registry, component_decorator

CRITICS: Registry[Component] = Registry("critic")
register_critic = component_decorator(CRITICS)
register_critic.__doc__ = """``@register_critic(name, config=SettingsDataclass)`` on a
:class:`Critic` subclass taking ``(dim, **settings)``: the critic is then usable by name
(``--set critic=name``, its settings as ``--set critic.key=value``)."""


def build_critic(name: str, dim: int, **settings) -> Critic:
    """The critic called ``name`` on ``dim``-dimensional latents, its settings validated."""
    return CRITICS.get(name).build(dim, settings)


class Critic(nn.Module):
    """Base class of critics: the coupling f_θ(z, z') of the InfoNCE prior
    P_θ(z'|z) ∝ R(z') f_θ(z, z') (arXiv:2107.02495v3 Eq. 21b; module docstring). ``forward``
    returns the (B, B') matrix of log f_θ(z_i, z'_j), ``paired`` its diagonal."""
    def forward(self, z: torch.Tensor, zp: torch.Tensor) -> torch.Tensor:
        """(B, d), (B', d) -> (B, B') matrix of log f(z_i, z'_j)."""
        raise NotImplementedError

    def paired(self, z: torch.Tensor, zp: torch.Tensor) -> torch.Tensor:
        """log f(z_i, z'_i) for aligned pairs, shape (B,). Subclasses may do it cheaper."""
        return torch.diagonal(self(z, zp))

    def log_params(self) -> dict[str, float]:
        """Learned scalars worth logging each epoch (e.g. the RBF length-scale)."""
        return {}
