"""RankMe against its formula (Garrido et al. 2023, Eq. 1) and its limiting cases."""

import math

import numpy as np
import pytest

from probssl.evaluate import EvalConfig
from probssl.evaluate.protocol import evaluate_embeddings
from probssl.evaluate.rankme import rankme


def _reference(z, eps=1e-7):
    sigma = np.linalg.svd(np.asarray(z, dtype=np.float64), compute_uv=False)
    p = sigma / np.abs(sigma).sum() + eps
    return math.exp(-sum(pk * math.log(pk) for pk in p))


def test_rankme_is_the_papers_formula_and_spans_one_to_full_rank():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(200, 6)) @ np.diag([3.0, 2.0, 1.0, 0.5, 0.1, 0.01])
    assert rankme(z) == pytest.approx(_reference(z), rel=1e-10)
    iso = np.linalg.qr(rng.normal(size=(50, 8)))[0] * 5.0  # orthonormal columns: flat spectrum
    assert rankme(iso) == pytest.approx(8.0, rel=1e-5)
    collapsed = np.outer(rng.normal(size=100), rng.normal(size=5))  # rank one
    assert rankme(collapsed) == pytest.approx(1.0, abs=1e-3)
    assert rankme(np.zeros((10, 4))) == 1.0
    with pytest.raises(ValueError, match=r"\(N, K\) matrix"):
        rankme(np.zeros(5))


def test_rankme_is_in_every_evaluation_and_needs_no_label_to_compute():
    rng = np.random.default_rng(1)
    z, y = rng.normal(size=(120, 4)), rng.integers(0, 3, 120)
    out = evaluate_embeddings(z[:80], y[:80], z[80:], y[80:],
                              EvalConfig(probe_epochs=1, gmm_n_init=0, mlp_probe=False))
    assert out["rankme"]["rank"] == pytest.approx(rankme(z[:80]))
    assert out["rankme"]["on"] == "train"
