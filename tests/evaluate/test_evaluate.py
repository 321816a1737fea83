"""kNN against scikit-learn, probes on inputs with a known answer."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from probssl.evaluate import knn_accuracy, knn_accuracy_val_k, knn_predict, train_probe


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_knn_predictions_equal_sklearn_for_every_k(metric):
    rng = np.random.default_rng(0)
    ztr, ytr = rng.normal(size=(300, 5)), rng.integers(0, 4, 300)
    zte = rng.normal(size=(120, 5))
    preds = knn_predict(ztr, ytr, zte, range(1, 16), metric, chunk=50)
    for k in range(1, 16):
        ref = KNeighborsClassifier(k, metric=metric, algorithm="brute").fit(ztr, ytr)
        assert (preds[k].numpy() == ref.predict(zte)).all(), k


def test_knn_accuracy_on_separated_clusters_and_best_k():
    rng = np.random.default_rng(1)
    centres = np.array([[0, 0], [10, 0], [0, 10]])
    ytr, yte = rng.integers(0, 3, 200), rng.integers(0, 3, 50)
    ztr = centres[ytr] + rng.normal(size=(200, 2))
    zte = centres[yte] + rng.normal(size=(50, 2))
    res = knn_accuracy(ztr, ytr, zte, yte)
    assert res["best"] == 1.0 and set(res["per_k"]) == set(range(1, 16))
    assert res["best_k"] == 1  # ties go to the smallest k
    val = knn_accuracy_val_k(ztr, ytr, zte, yte)
    assert val["accuracy"] == 1.0 and 1 <= val["k"] <= 15


def test_linear_probe_separable_and_random_labels():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(600, 4))
    y = (z[:, 0] + z[:, 1] > 0).astype(int)
    res = train_probe(z[:500], y[:500], z[500:], y[500:], epochs=50, lr=1e-2)
    assert res["test_accuracy"] >= 0.95
    noise = rng.integers(0, 5, 600)
    res = train_probe(z[:500], noise[:500], z[500:], noise[500:], epochs=20, lr=1e-2)
    assert res["test_accuracy"] < 0.4  # chance is 0.2
    mlp = train_probe(z[:500], (np.abs(z[:500, 0]) > 1).astype(int), z[500:],
                      (np.abs(z[500:, 0]) > 1).astype(int), hidden=16, epochs=100, lr=1e-2)
    assert mlp["test_accuracy"] >= 0.9  # not linearly separable, the MLP probe handles it
