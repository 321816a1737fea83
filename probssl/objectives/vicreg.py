r"""VICReg (Bardes et al. 2022): invariance, variance and covariance terms.

For J views with codes Z^j (N, D) of the global batch:

* invariance: mean over view pairs j < k of mean_n |z_n^j − z_n^k|² / D (MSE);
* variance: mean over views and dims of max(0, γ − sqrt(Var(Z^j_d) + ε)), γ = 1;
* covariance: mean over views of Σ_{d≠e} C(Z^j)_{de}² / D.

loss = λ·invariance + μ·variance + ν·covariance (λ = μ = 25, ν = 1 in the VICReg paper; the
SimVAE paper quotes μ = 25). Variance and covariance are batch statistics, so under DDP they
are computed on the gathered global batch (gradients flow back to each rank's rows).
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

from probssl.objectives.collectives import gather_with_grad


def vicreg_terms(z: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4
                 ) -> dict[str, torch.Tensor]:
    """z (B, J, D) local codes -> the three unweighted terms (scalars)."""
    b, j, d = z.shape
    if j < 2:
        raise ValueError("VICReg needs at least two views per image")
    every, _ = gather_with_grad(z.float())
    n = every.shape[0]
    if n < 2:
        raise ValueError("VICReg's variance term needs at least two images")
    inv = torch.stack([F.mse_loss(every[:, a], every[:, c])
                       for a, c in itertools.combinations(range(j), 2)]).mean()
    centred = every - every.mean(dim=0, keepdim=True)  # (N, J, D)
    var = centred.pow(2).sum(0) / (n - 1)  # (J, D)
    variance = F.relu(gamma - torch.sqrt(var + eps)).mean()
    cov = torch.einsum("njd,nje->jde", centred, centred) / (n - 1)  # (J, D, D)
    off = cov.pow(2).sum(dim=(1, 2)) - torch.diagonal(cov, dim1=1, dim2=2).pow(2).sum(-1)
    covariance = (off / d).mean()
    return {"invariance": inv, "variance": variance, "covariance": covariance}


def vicreg_loss(z: torch.Tensor, sim_coeff: float = 25.0, std_coeff: float = 25.0,
                cov_coeff: float = 1.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    t = vicreg_terms(z)
    loss = sim_coeff * t["invariance"] + std_coeff * t["variance"] + cov_coeff * t["covariance"]
    return loss, t
