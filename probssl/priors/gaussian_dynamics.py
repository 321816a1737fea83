r"""Gaussian latent-dynamics prior: z ~ N(m, diag s0²), z' = A z + b + noise, noise ~ N(0, s² I),
with A, b, s (and m, s0) learned:

    log P_θ(z, z') = log N(z; m, diag s0²) + log N(z'; A z + b, s² I).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from probssl.errors import UserError
from probssl.objectives.rpm import diag_gaussian_log_prob
from probssl.priors.base import PriorContext, RPMPrior, register_prior
from probssl.registry import ComponentConfig


@dataclass
class GaussianDynamicsPriorConfig(ComponentConfig):
    init_A: float = 1.0  # A starts as init_A · I
    init_noise: float = 0.5  # initial transition noise std s

    def validate(self) -> None:
        if not self.init_noise > 0:
            raise UserError(f"prior.init_noise must be > 0; got {self.init_noise}")


@register_prior("gaussian-dynamics", config=GaussianDynamicsPriorConfig)
class GaussianDynamicsPrior(RPMPrior):
    """Gaussian latent-dynamics prior: z ~ N(m, diag s0²), z' = A z + b + noise, noise ~ N(0, s² I),
    all learned: probssl's own prior for the RPM ELBO of arXiv:2107.02495v3 Eq. 15-16
    (``probssl verify-theory`` checks Eq. 17-18 with it). ``ctx`` is not needed.

        >>> prior = GaussianDynamicsPrior(dim=2)
        >>> prior.log_prob(torch.zeros(3, 2), torch.zeros(3, 2)).shape
        torch.Size([3])
    """
    def __init__(self, dim: int, init_A: float = 1.0, init_noise: float = 0.5):
        super().__init__(dim)
        self.A = nn.Parameter(init_A * torch.eye(dim))
        self.b = nn.Parameter(torch.zeros(dim))
        self.log_noise_var = nn.Parameter(torch.tensor(2 * float(torch.tensor(init_noise).log())))
        self.m = nn.Parameter(torch.zeros(dim))
        self.log_var0 = nn.Parameter(torch.zeros(dim))

    def log_prob(self, z, zp, ctx: PriorContext | None = None):
        prior_z = diag_gaussian_log_prob(z, self.m, self.log_var0)
        trans = diag_gaussian_log_prob(zp, z @ self.A.T + self.b, self.log_noise_var)
        return prior_z + trans

    def log_params(self):
        return {"noise_std": float((0.5 * self.log_noise_var.detach()).exp()),
                "A_trace": float(self.A.detach().trace())}
