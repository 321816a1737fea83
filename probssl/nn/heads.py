"""Encoder heads: a network's output read as a Gaussian posterior or a deterministic code."""

from __future__ import annotations

import torch
from torch import nn

LOGVAR_MIN, LOGVAR_MAX = -30.0, 20.0


class Encoder(nn.Module):
    """A backbone ``net`` plus a head.

    ``head="gaussian"``: ``net`` outputs 2*latent_dim numbers read as (mean, log-variance) of
    a diagonal Gaussian q(z|x). ``head="deterministic"``: ``net`` outputs the code z itself
    (log-variance ``None``). Either way the representation used for evaluation is the mean,
    the first ``latent_dim`` outputs of ``net``.
    """

    def __init__(self, net: nn.Module, latent_dim: int, head: str = "gaussian"):
        super().__init__()
        if head not in ("gaussian", "deterministic"):
            raise ValueError(f"unknown head {head!r}")
        self.net = net
        self.latent_dim = latent_dim
        self.head = head

    @property
    def out_dim(self) -> int:
        return 2 * self.latent_dim if self.head == "gaussian" else self.latent_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = self.net(x)
        if self.head == "deterministic":
            return out, None
        mean, logvar = out.split(self.latent_dim, dim=-1)
        return mean, logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Representation for downstream evaluation: the posterior mean."""
        return self.net(x)[..., : self.latent_dim]
