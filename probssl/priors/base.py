"""The prior interface."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from probssl.registry import Component, Registry, component_decorator

PRIORS: Registry[Component] = Registry("prior")
register_prior = component_decorator(PRIORS)
register_prior.__doc__ = """``@register_prior(name, config=SettingsDataclass)`` on an
:class:`RPMPrior` subclass taking ``(dim, **settings)``: the prior is then usable by name
(``--set prior=name``, its settings as ``--set prior.key=value``)."""


def build_prior(name: str, dim: int, **settings) -> RPMPrior:
    """The prior called ``name`` on ``dim``-dimensional latents, its settings validated."""
    return PRIORS.get(name).build(dim, settings)


@dataclass
class PriorContext:
    """What a prior may use besides (z, z'): the recognition marginals at the samples and,
    for critic-built priors, the (B, B) critic score matrix over the batch."""

    log_rz: torch.Tensor
    log_rzp: torch.Tensor
    scores: torch.Tensor | None = None


class RPMPrior(nn.Module):
    """Base class of the priors P_θ(z, z') of the RPM (arXiv:2107.02495v3 Eq. 9), which enter the
    ELBO of Eq. 15-16: ``log_prob(z, zp, ctx)`` returns log P_θ(z_i, z'_i) of the B aligned
    pairs, shape (B,); ``log_params`` the learned scalars worth logging."""
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def log_prob(self, z: torch.Tensor, zp: torch.Tensor, ctx: PriorContext) -> torch.Tensor:
        """log P_θ(z_i, z'_i), shape (B,)."""
        raise NotImplementedError

    def log_params(self) -> dict[str, float]:
        return {}
