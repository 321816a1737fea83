r"""InfoNCE bounds from a matrix of critic scores S_ij = log f(z_i, z'_j).

Positives are on the diagonal; for row i the other B − 1 columns are the in-batch negatives,
so N = B − 1.

* :func:`infonce_bound` — I_N of arXiv:2107.02495v3 Eq. 6,
  E[ log f(z,z') / (f(z,z') + Σ_{j=1}^N f(z,z'_j)) ] + log N.
  Convention: the paper adds log N, so I_N ≤ log N always (each ratio is ≤ 1). Oord et al.
  add log(N + 1) = log B instead (``convention="oord"``), bounding it by log(N + 1).
* :func:`batch_marginal_infonce` — I_B: Eq. 24's I_∞ = E[log f(z,z')] − E_z[ log E_{z'}
  f(z,z') ] with E_{z'} replaced by the batch's empirical marginal, which contains the
  positive. It is InfoNCE with Oord et al.'s log B convention, so I_B ≤ log B for any critic:
  it estimates I_∞ only while I_∞ ≪ log B and is *not* an estimate of I_∞ once I_∞ > log B
  (the honest I_∞ is the closed form or a large-N estimate: ``probssl verify-theory``).
* :func:`pair_retrieval_accuracy` — the empirical-marginal model's pairing distribution
  P(j | i) ∝ f(z_i, z'_j) (App. A.1, Eq. 34) used to retrieve each x_i's partner.
"""

from __future__ import annotations

import math

import torch


def _check_square(scores: torch.Tensor) -> int:
    if scores.dim() != 2 or scores.shape[0] != scores.shape[1] or scores.shape[0] < 2:
        raise ValueError(f"scores must be a square (B, B) matrix with B >= 2; got "
                         f"{tuple(scores.shape)}")
    return scores.shape[0]


def infonce_log_ratio(scores: torch.Tensor) -> torch.Tensor:
    """Per row i: log f(z_i, z'_i) / Σ_j f(z_i, z'_j) — the term I_N (arXiv:2107.02495v3
    Eq. 6) averages before adding log N; shape (B,)."""
    return torch.diagonal(scores) - torch.logsumexp(scores, dim=1)


def infonce_bound(scores: torch.Tensor, convention: str = "paper") -> torch.Tensor:
    """I_N (Eq. 6) from a (B, B) score matrix; N = B − 1 in-batch negatives."""
    b = _check_square(scores)
    log_ratio = infonce_log_ratio(scores)
    if convention == "paper":
        offset = math.log(b - 1)
    elif convention == "oord":
        offset = math.log(b)
    else:
        raise ValueError("convention must be 'paper' (+ log N) or 'oord' (+ log(N+1))")
    return log_ratio.mean() + offset


def batch_marginal_infonce(scores: torch.Tensor) -> torch.Tensor:
    """I_B = mean_i S_ii − mean_i log mean_j exp S_ij: Eq. 24's I_∞ with the batch's
    empirical marginal (positive included) as E_{z'}; ≤ log B always (module docstring)."""
    b = _check_square(scores)
    return torch.diagonal(scores).mean() - (torch.logsumexp(scores, dim=1) - math.log(b)).mean()


def pairing_log_probs(scores: torch.Tensor) -> torch.Tensor:
    """log P(j | i) ∝ f(z_i, z'_j) (Eq. 34): a row-wise log-softmax of the scores."""
    return torch.log_softmax(scores, dim=1)


def pair_retrieval_accuracy(scores: torch.Tensor) -> float:
    """Fraction of rows i whose most probable partner under P(j | i) ∝ f(z_i, z'_j)
    (arXiv:2107.02495v3 App. A.1, Eq. 34) is j = i."""
    _check_square(scores)
    pred = scores.argmax(dim=1)
    return float((pred == torch.arange(len(scores), device=scores.device)).float().mean())
