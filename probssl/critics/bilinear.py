"""Bilinear critic f(z, z') = exp(zᵀ W z') with a learned matrix W (infonce-rpm-v3 Eq. 8)."""

from __future__ import annotations

import torch
from torch import nn

from probssl.critics.base import Critic


class BilinearCritic(Critic):
    def __init__(self, dim: int, init_scale: float = 1.0):
        super().__init__()
        self.W = nn.Parameter(init_scale * torch.eye(dim))

    def forward(self, z, zp):
        return z @ self.W @ zp.T

    def paired(self, z, zp):
        return ((z @ self.W) * zp).sum(-1)

    def log_params(self):
        return {"W_frobenius": float(self.W.detach().norm())}
