"""Learned MLP critic log f(z, z') = MLP([z, z']): the flexible "maximise MI" choice
(arXiv:2107.02495v3 Sec. 3.2: a flexible f tightens I_N towards the MI)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from probssl.critics.base import Critic, register_critic
from probssl.errors import UserError
from probssl.registry import ComponentConfig


@dataclass
class MLPCriticConfig(ComponentConfig):
    hidden: int = 64  # width of both hidden layers

    def validate(self) -> None:
        if self.hidden < 1:
            raise UserError(f"critic.hidden must be >= 1; got {self.hidden}")


@register_critic("mlp", config=MLPCriticConfig)
class MLPCritic(Critic):
    """Learned MLP critic log f(z, z') = MLP([z, z']): the flexible "maximise MI" choice
    (arXiv:2107.02495v3 Sec. 3.2: a flexible f tightens the bound MI > I_∞ ≥ I_N of Eq. 7),
    two hidden ReLU layers of width ``hidden``.

        >>> MLPCritic(dim=4, hidden=16)(torch.randn(3, 4), torch.randn(5, 4)).shape
        torch.Size([3, 5])
    """
    def __init__(self, dim: int, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 * dim, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, z, zp):
        b, bp = len(z), len(zp)
        pairs = torch.cat([z.unsqueeze(1).expand(b, bp, -1), zp.unsqueeze(0).expand(b, bp, -1)],
                          dim=-1)
        return self.net(pairs).squeeze(-1)

    def paired(self, z, zp):
        return self.net(torch.cat([z, zp], dim=-1)).squeeze(-1)
