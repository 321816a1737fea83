"""k-nearest-neighbour accuracy on frozen embeddings.

Majority vote among the k nearest training embeddings, ties broken towards the smallest
label (scikit-learn's ``KNeighborsClassifier`` rule). Distances: ``euclidean`` (the SimVAE
paper's scikit-learn default) or ``cosine`` (solo-learn, lightly). All k in ``ks`` are scored
from one top-k search, chunked over the test set so memory stays bounded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

METRICS = ("euclidean", "cosine")


def _as_tensor(a, dtype=torch.float32) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a.to(dtype)
    return torch.as_tensor(np.asarray(a), dtype=dtype)


def knn_predict(z_train, y_train, z_test, ks: Sequence[int] = range(1, 16),
                metric: str = "euclidean", chunk: int = 1024) -> dict[int, torch.Tensor]:
    """Predicted labels of the test points for every k: {k: (N_test,) int64}."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}; got {metric!r}")
    ztr, zte = _as_tensor(z_train), _as_tensor(z_test)
    ytr = _as_tensor(y_train, torch.int64)
    ks = sorted(set(int(k) for k in ks))
    if ks[0] < 1:
        raise ValueError("k must be >= 1")
    kmax = min(ks[-1], len(ztr))
    n_classes = int(ytr.max()) + 1
    if metric == "cosine":
        ztr, zte = F.normalize(ztr, dim=1), F.normalize(zte, dim=1)
    preds: dict[int, list[torch.Tensor]] = {k: [] for k in ks}
    for start in range(0, len(zte), chunk):
        q = zte[start:start + chunk]
        if metric == "cosine":
            dist = -(q @ ztr.T)
        else:
            dist = torch.cdist(q, ztr)
        # stable sort so equal distances keep training-set order (deterministic)
        order = torch.sort(dist, dim=1, stable=True).indices[:, :kmax]
        votes = F.one_hot(ytr[order], n_classes).cumsum(dim=1)  # (q, kmax, C)
        for k in ks:
            preds[k].append(votes[:, min(k, kmax) - 1].argmax(dim=1))
    return {k: torch.cat(v) for k, v in preds.items()}


def knn_accuracy(z_train, y_train, z_test, y_test, ks: Sequence[int] = range(1, 16),
                 metric: str = "euclidean") -> dict:
    """Accuracy for every k, and the best k.

    Note: choosing the best k on the test set (as the SimVAE paper does) is optimistic;
    :func:`knn_accuracy_val_k` picks k on a validation split instead.
    """
    yte = _as_tensor(y_test, torch.int64)
    preds = knn_predict(z_train, y_train, z_test, ks, metric)
    per_k = {k: float((p == yte).float().mean()) for k, p in preds.items()}
    best_k = max(per_k, key=lambda k: (per_k[k], -k))
    return {"per_k": per_k, "best_k": best_k, "best": per_k[best_k], "metric": metric}


def knn_accuracy_val_k(z_train, y_train, z_test, y_test, ks: Sequence[int] = range(1, 16),
                       metric: str = "euclidean", val_fraction: float = 0.1,
                       seed: int = 0) -> dict:
    """Choose k on a held-out part of the training embeddings, then score the test set."""
    ztr, ytr = np.asarray(z_train), np.asarray(y_train)
    perm = np.random.default_rng(seed).permutation(len(ztr))
    n_val = max(1, int(len(ztr) * val_fraction))
    val, fit = perm[:n_val], perm[n_val:]
    chosen = knn_accuracy(ztr[fit], ytr[fit], ztr[val], ytr[val], ks, metric)["best_k"]
    acc = knn_accuracy(ztr, ytr, z_test, y_test, [chosen], metric)["best"]
    return {"k": chosen, "accuracy": acc, "metric": metric}
