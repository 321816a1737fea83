"""RankMe: the effective rank of a representation, a label-free quality score.

Garrido, Balestriero, Najman, LeCun, "RankMe: Assessing the downstream performance of
pretrained self-supervised representations by their rank" (ICML 2023, arXiv:2210.02885),
Eq. 1: with σ_1 ≥ … ≥ σ_min(N,K) the singular values of the N × K embedding matrix Z,

    p_k = σ_k / ‖σ‖_1 + ε,        RankMe(Z) = exp(−Σ_k p_k log p_k),

ε = 1e-7 as in the paper. It lies in [1, min(N, K)]: 1 for a collapsed representation, K when
every direction carries the same energy. Z is used as given (the paper does not centre it).
Only the embeddings are needed, so it scores any encoder, labelled data or not.
"""

from __future__ import annotations

import numpy as np
import torch

EPS = 1e-7


def rankme(z: np.ndarray | torch.Tensor, eps: float = EPS) -> float:
    """RankMe of the (N, K) embeddings ``z`` (Garrido et al. 2023, Eq. 1)."""
    z = torch.as_tensor(np.asarray(z), dtype=torch.float64)
    if z.ndim != 2 or min(z.shape) == 0:
        raise ValueError(f"rankme needs an (N, K) matrix with N, K > 0; got {tuple(z.shape)}")
    sigma = torch.linalg.svdvals(z)
    total = sigma.sum()
    if not total > 0:
        return 1.0  # all-zero embeddings: fully collapsed
    p = sigma / total + eps
    return float(torch.exp(-(p * p.log()).sum()))
