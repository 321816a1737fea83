"""GMM clustering metrics and the Fréchet distance on inputs with known answers."""

import math

import numpy as np
import pytest
import torch

from probssl.evaluate.clustering import gmm_clustering, matched_cluster_accuracy
from probssl.evaluate.fid import (
    classifier_features,
    frechet_distance,
    frechet_distance_of_features,
)


def test_matched_accuracy_ignores_cluster_names():
    y = np.array([0, 0, 1, 1, 2, 2])
    assert matched_cluster_accuracy(y, np.array([2, 2, 0, 0, 1, 1])) == 1.0
    assert matched_cluster_accuracy(y, np.array([1, 1, 1, 0, 2, 2])) == pytest.approx(5 / 6)


def test_gmm_recovers_well_separated_blobs():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [10, 0], [0, 10]])
    y = np.repeat(np.arange(3), 100)
    z = centres[y] + rng.normal(size=(300, 2))
    r = gmm_clustering(z[::2], z[1::2], y[1::2], n_clusters=3, n_init=3)
    assert r["accuracy"] == 1.0 and r["nmi"] == pytest.approx(1.0) and r["ari"] == 1.0


def test_frechet_distance_closed_forms():
    # identical Gaussians: 0; shifted means only: |Δμ|²
    cov = np.array([[2.0, 0.3], [0.3, 1.0]])
    assert frechet_distance([0, 0], cov, [0, 0], cov) == pytest.approx(0, abs=1e-9)
    assert frechet_distance([0, 0], cov, [3, 4], cov) == pytest.approx(25)
    # 1-D: (μ1-μ2)² + (σ1-σ2)²
    assert frechet_distance([1.0], [[4.0]], [0.0], [[1.0]]) == pytest.approx(1 + 1)
    # commuting diagonal covariances: Σ (sqrt a - sqrt b)²
    a, b = np.diag([1.0, 9.0]), np.diag([4.0, 1.0])
    assert frechet_distance([0, 0], a, [0, 0], b) == pytest.approx(1 + 4)


def test_frechet_distance_of_samples_approaches_the_truth():
    rng = np.random.default_rng(1)
    f1 = rng.normal(size=(20000, 3))
    f2 = rng.normal(size=(20000, 3)) * 2 + 1
    expected = 3 * 1 + 3 * (2 - 1) ** 2
    assert frechet_distance_of_features(f1, f2) == pytest.approx(expected, rel=0.03)


def test_classifier_features_separate_classes():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(200, 1, 4, 4, generator=g) * 0.2
    y = torch.arange(200) % 2
    x[y == 1, :, :2] += 0.8  # class 1: bright top half
    body = classifier_features(x, y, epochs=5, hidden=16)
    with torch.no_grad():
        f = body(x).numpy()
    d_between = frechet_distance_of_features(f[y == 0], f[y == 1])
    d_within = frechet_distance_of_features(f[y == 0][:50], f[y == 0][50:])
    assert d_between > 10 * d_within and math.isfinite(d_between)
