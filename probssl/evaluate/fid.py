r"""Fréchet distance between two feature distributions (the "F" of FID; Heusel et al. 2017).

.. math::
    d^2 = |μ_1 − μ_2|^2 + \mathrm{tr}\big(Σ_1 + Σ_2 − 2 (Σ_1^{1/2} Σ_2 Σ_1^{1/2})^{1/2}\big)

computed in float64 through symmetric eigen-decompositions (no complex sqrtm round-off). The
number is an FID only with Inception-v3 pool features; with any other extractor (e.g.
:func:`classifier_features`) it is a Fréchet distance in that feature space, not comparable to
published FIDs — every table must say which.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.atleast_2d(np.asarray(cov1, np.float64)), np.atleast_2d(
        np.asarray(cov2, np.float64))
    s1 = _sqrt_psd(cov1)
    cross = _sqrt_psd(s1 @ cov2 @ s1)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(cov1) + np.trace(cov2)
                 - 2 * np.trace(cross))


def frechet_distance_of_features(f1, f2) -> float:
    """Fréchet distance between Gaussians fitted to two (N, D) feature arrays."""
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    return frechet_distance(f1.mean(0), np.cov(f1, rowvar=False), f2.mean(0),
                            np.cov(f2, rowvar=False))


def classifier_features(x_train: torch.Tensor, y_train: torch.Tensor, epochs: int = 10,
                        hidden: int = 256, seed: int = 0, lr: float = 1e-3,
                        batch_size: int = 128) -> nn.Module:
    """An offline feature extractor: an MLP classifier trained on (x_train, y_train) (float
    images in [0, 1]); returns the network up to its last hidden layer (width ``hidden``).
    Distances in its feature space are NOT comparable with Inception FIDs."""
    torch.manual_seed(seed)
    d = x_train[0].numel()
    n_classes = int(y_train.max()) + 1
    body = nn.Sequential(nn.Flatten(), nn.Linear(d, 512), nn.ReLU(), nn.Linear(512, hidden),
                         nn.ReLU())
    head = nn.Linear(hidden, n_classes)
    opt = torch.optim.Adam([*body.parameters(), *head.parameters()], lr=lr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(x_train), generator=g)
        for i in range(0, len(perm), batch_size):
            idx = perm[i:i + batch_size]
            loss = nn.functional.cross_entropy(head(body(x_train[idx])), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return body.eval()
