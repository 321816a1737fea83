r"""VICReg (Bardes et al. 2022, arXiv:2105.04906): invariance, variance and covariance terms,
weighted as in the authors' released code (facebookresearch/vicreg, ``main_vicreg.py``).

For two views with codes Z, Z' (N, D) of the global batch the released code computes

    loss = λ·s(Z, Z') + μ·[v(Z) + v(Z')] / 2 + ν·[c(Z) + c(Z')],

* s: the mean squared error mean_n |z_n − z'_n|² / D;
* v(Z) = mean_d max(0, γ − sqrt(Var(Z_d) + ε)), γ = 1, ε = 1e-4 (unbiased variance);
* c(Z) = Σ_{d≠e} C(Z)_{de}² / D, C the covariance matrix (divided by N − 1);

with λ = μ = 25, ν = 1 — the convention those weights were tuned with, also used by
solo-learn and lightly. The variance terms are *averaged* over the two branches and the
covariance terms *summed*. The paper's printed formula (its Eq. 6) sums the variance terms
too, ν[c(Z) + c(Z')] and μ[v(Z) + v(Z')]; we follow the code, where the published numbers
come from. (Until this was fixed probssl averaged the covariance terms, halving ν.)

J > 2 views (SimVAE-style augmentation sets): s is the mean over the J(J−1)/2 view pairs,
the variance term the mean over the J views, and the covariance term twice the mean over
the J views — at J = 2 exactly the released code, and for any J the same balance between
the three terms, so λ, μ, ν keep their meaning.

Variance and covariance are batch statistics, so under DDP they are computed on the
gathered global batch (gradients flow back to each rank's rows).
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

from probssl.objectives.collectives import gather_with_grad


def vicreg_terms(z: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4
                 ) -> dict[str, torch.Tensor]:
    """z (B, J, D) local codes -> the three unweighted terms (scalars) as the loss weights
    them: invariance = mean over view pairs of s, variance = mean over views of v,
    covariance = 2 × mean over views of c (= c(Z) + c(Z') at J = 2; module docstring).

        >>> terms = vicreg_terms(torch.randn(8, 3, 4))  # 8 images, J = 3 views, D = 4
        >>> {k: v.shape for k, v in terms.items()}
        {'invariance': torch.Size([]), 'variance': torch.Size([]), 'covariance': torch.Size([])}
    """
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
    covariance = 2 * (off / d).mean()  # the released code sums c over its two branches
    return {"invariance": inv, "variance": variance, "covariance": covariance}


def vicreg_loss(z: torch.Tensor, sim_coeff: float = 25.0, std_coeff: float = 25.0,
                cov_coeff: float = 1.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """λ·invariance + μ·variance + ν·covariance of :func:`vicreg_terms` (Bardes et al. 2022,
    arXiv:2105.04906, weighted as the released code: module docstring); z (B, J, D) ->
    (scalar loss, the unweighted terms).

        >>> loss, terms = vicreg_loss(torch.randn(8, 2, 4))
        >>> loss.shape, sorted(terms)
        (torch.Size([]), ['covariance', 'invariance', 'variance'])
    """
    t = vicreg_terms(z)
    loss = sim_coeff * t["invariance"] + std_coeff * t["variance"] + cov_coeff * t["covariance"]
    return loss, t
