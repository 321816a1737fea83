"""Held-out ELBO and importance-weighted log-likelihood against a loop written from the
formulas (Burda et al. 2016), and which methods report them."""

from __future__ import annotations

import math

import pytest
import torch

from probssl.evaluate.likelihood import heldout_likelihood
from probssl.methods import build_method, make_method_config
from probssl.objectives.vae import log_likelihood


def _reference(enc, dec, x, lik, var, k, seed):
    mean, logvar = enc(x)
    eps = torch.randn((k, *mean.shape), generator=torch.Generator().manual_seed(seed))
    iwae, elbo = [], []
    for i in range(len(x)):
        logw = []
        for j in range(k):
            z = mean[i] + (0.5 * logvar[i]).exp() * eps[j, i]
            ll = log_likelihood(x[i:i + 1], dec(z[None]), lik, var)[0]
            lp = sum(-0.5 * (zd ** 2 + math.log(2 * math.pi)) for zd in z)
            lq = sum(-0.5 * (e ** 2 + lv + math.log(2 * math.pi))
                     for e, lv in zip(eps[j, i], logvar[i], strict=True))
            logw.append(ll + lp - lq)
            if j == 0:
                kl = 0.5 * sum(m ** 2 + lv.exp() - lv - 1 for m, lv in zip(mean[i], logvar[i],
                                                                            strict=True))
                elbo.append(ll - kl)
        iwae.append(torch.logsumexp(torch.stack(logw), 0) - math.log(k))
    return float(torch.stack(elbo).mean()), float(torch.stack(iwae).mean())


@pytest.mark.parametrize("lik", ["gaussian", "bernoulli"])
def test_matches_the_formula_loop(lik):
    torch.manual_seed(0)
    m = build_method("vae", make_method_config("vae", {"likelihood": lik}, arch="mlp",
                                               latent_dim=3), (1, 4, 4)).eval()
    x = torch.rand(5, 1, 4, 4).round()
    enc, dec, lik_, var = m.likelihood_model()
    with torch.no_grad():
        got = heldout_likelihood(enc, dec, lik_, var, x, k=7, batch_size=5, seed=3)
        elbo, iwae = _reference(enc, dec, x, lik_, var, 7, 3)
    assert got["elbo"] == pytest.approx(elbo, rel=1e-5)
    assert got["iwae"] == pytest.approx(iwae, rel=1e-5)
    assert got["k"] == 7 and got["n"] == 5


def test_the_bound_tightens_with_k_and_only_density_models_have_it():
    torch.manual_seed(0)
    m = build_method("vae", make_method_config("vae", {}, arch="mlp", latent_dim=3),
                     (1, 4, 4)).eval()
    x = torch.rand(64, 1, 4, 4)
    vals = [heldout_likelihood(*m.likelihood_model(), x, k=k)["iwae"] for k in (1, 10, 200)]
    assert vals[0] < vals[1] < vals[2]
    assert build_method("simvae", make_method_config("simvae", {}, arch="mlp", latent_dim=3),
                        (1, 4, 4)).likelihood_model() is None
