"""Ring critic: a prior that knows the motion (probssl's own; not in the papers).

The latent is read as consecutive groups of ``group`` coordinates (moving balls: one (x, y)
detector per ball; a last group may be shorter). For each group g, d_g = |z_g − z'_g| is how
far that detector moved; the critic

    log f(z, z') = −Σ_g (d_g − r)² / 2w²,    r, w learned (initial ``radius``, ``width``),

puts the prior mass of z' on a ring of radius r around z — "each ball moves one step per
frame" — where the RBF critic of arXiv:2107.02495v3 Eq. 27 says only "z' is near z" (its mass
peaks at d = 0, where a ball never is). Choosing this critic is choosing that prior
(docs/THEORY.md, "choose a critic = choose a prior")."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from probssl.critics.base import Critic, register_critic
from probssl.errors import UserError
from probssl.registry import ComponentConfig


@dataclass
class RingCriticConfig(ComponentConfig):
    radius: float = 1.0  # initial r: the expected step of a group per frame (learned)
    width: float = 1.0  # initial w: the ring's width (learned)
    group: int = 2  # coordinates per group (2: an (x, y) position)

    def validate(self) -> None:
        if not (self.radius > 0 and self.width > 0):
            raise UserError(f"critic.radius and critic.width must be > 0; got {self.radius}, "
                            f"{self.width}")
        if self.group < 1:
            raise UserError(f"critic.group must be >= 1; got {self.group}")


@register_critic("ring", config=RingCriticConfig)
class RingCritic(Critic):
    """Ring critic: a prior that knows the motion (probssl's own; not in the papers).

    log f(z, z') = −Σ_g (|z_g − z'_g| − r)² / 2w² over groups of ``group`` coordinates, r and
    w learned (module docstring).

        >>> critic = RingCritic(dim=6, radius=32.0, width=8.0)
        >>> critic(torch.zeros(2, 6), torch.zeros(3, 6)).shape
        torch.Size([2, 3])
    """
    def __init__(self, dim: int, radius: float = 1.0, width: float = 1.0, group: int = 2):
        super().__init__()
        self.group = group
        self.pad = -dim % group  # zeros completing a shorter last group change no distance
        self.log_radius = nn.Parameter(torch.tensor(math.log(radius)))
        self.log_width = nn.Parameter(torch.tensor(math.log(width)))

    def _score(self, diff: torch.Tensor) -> torch.Tensor:
        if self.pad:
            diff = torch.nn.functional.pad(diff, (0, self.pad))
        d = diff.unflatten(-1, (-1, self.group)).pow(2).sum(-1).add(1e-12).sqrt()
        return -(d - self.log_radius.exp()).pow(2).sum(-1) / (2 * self.log_width.exp() ** 2)

    def forward(self, z, zp):
        return self._score(z.unsqueeze(1) - zp.unsqueeze(0))

    def paired(self, z, zp):
        return self._score(z - zp)

    def log_params(self):
        return {"radius": float(self.log_radius.exp().detach()),
                "width": float(self.log_width.exp().detach())}
