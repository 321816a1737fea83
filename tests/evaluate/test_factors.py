"""Factor probes on codes whose content is known."""

import numpy as np
import pytest

from probssl.evaluate.factors import factor_scores, r2_score


def test_r2_known_values():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    assert r2_score(y, y) == 1.0
    assert r2_score(y, np.full(4, y.mean())) == 0.0


@pytest.mark.parametrize("hidden", [None, 8])
def test_code_that_keeps_one_factor_and_drops_another(hidden):
    rng = np.random.default_rng(0)
    n = 2000
    f = np.stack([rng.uniform(size=n), rng.uniform(size=n), rng.integers(0, 3, n)], 1)
    # the code holds factor 0 linearly and the discrete factor 2, not factor 1
    z = np.stack([f[:, 0] * 3 + 1, rng.normal(size=n), np.eye(3)[f[:, 2].astype(int)][:, 0],
                  np.eye(3)[f[:, 2].astype(int)][:, 1]], 1)
    s = factor_scores(z[:1500], f[:1500], z[1500:], f[1500:], ["a", "b", "c"], ("c",),
                      hidden=hidden, epochs=200)
    assert s["a"]["metric"] == "r2" and s["a"]["value"] > 0.95
    assert s["b"]["value"] < 0.05
    assert s["c"]["metric"] == "accuracy" and s["c"]["value"] > 0.95
