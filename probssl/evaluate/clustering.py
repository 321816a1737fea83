"""Clustering of frozen embeddings with a Gaussian mixture (arXiv:2402.01399 Table 5-6).

A full-covariance GMM with as many components as classes is fitted on the training
embeddings and predicts the test embeddings; reported: accuracy under the best one-to-one
cluster -> label matching (Hungarian algorithm), NMI and ARI. ``n_init`` restarts: the paper
200, the authors' code 20 (our default; say which in every table).
"""

from __future__ import annotations

import numpy as np

# scipy and scikit-learn are imported where they are used: together they cost ~1.5 s, which
# every `probssl` process (and every DDP rank) would pay at start-up through
# probssl.evaluate, though only an evaluation with GMM clustering needs them.


def matched_cluster_accuracy(y_true, y_pred) -> float:
    """Accuracy of ``y_pred`` cluster ids after the best one-to-one relabelling."""
    from scipy.optimize import linear_sum_assignment

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    k = int(max(y_true.max(), y_pred.max())) + 1
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (y_pred, y_true), 1)
    rows, cols = linear_sum_assignment(-counts)
    return float(counts[rows, cols].sum() / len(y_true))


def gmm_clustering(z_train, z_test, y_test, n_clusters: int, n_init: int = 20,
                   seed: int = 0, max_iter: int = 200) -> dict:
    """Fit a full-covariance GMM of ``n_clusters`` components on ``z_train`` (``n_init``
    restarts, float64) and cluster ``z_test``; returns ``accuracy`` (best one-to-one cluster ->
    label matching), ``nmi`` and ``ari`` against ``y_test``, with ``n_clusters`` and ``n_init``."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
    from sklearn.mixture import GaussianMixture

    gmm = GaussianMixture(n_components=n_clusters, covariance_type="full", n_init=n_init,
                          random_state=seed, max_iter=max_iter, reg_covar=1e-5)
    gmm.fit(np.asarray(z_train, dtype=np.float64))
    pred = gmm.predict(np.asarray(z_test, dtype=np.float64))
    y_test = np.asarray(y_test)
    return {"accuracy": matched_cluster_accuracy(y_test, pred),
            "nmi": float(normalized_mutual_info_score(y_test, pred)),
            "ari": float(adjusted_rand_score(y_test, pred)),
            "n_clusters": n_clusters, "n_init": n_init}
