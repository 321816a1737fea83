"""VAE ELBO terms against torch.distributions (obviously-correct references)."""

from __future__ import annotations

import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from probssl.objectives.vae import (
    bernoulli_log_likelihood,
    gaussian_entropy,
    gaussian_kl_to_standard,
    gaussian_log_likelihood,
    vae_elbo,
)


def test_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mean, logvar = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    ref = kl_divergence(Normal(mean, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(-1)
    assert torch.allclose(gaussian_kl_to_standard(mean, logvar), ref, atol=1e-5)
    assert torch.allclose(gaussian_kl_to_standard(torch.zeros(3, 4), torch.zeros(3, 4)),
                          torch.zeros(3))


def test_entropy_matches_torch_distributions():
    logvar = torch.randn(4, 6)
    ref = Normal(torch.zeros(4, 6), (0.5 * logvar).exp()).entropy().sum(-1)
    assert torch.allclose(gaussian_entropy(logvar), ref, atol=1e-5)


def test_gaussian_log_likelihood_keeps_constants():
    x, mu = torch.rand(3, 1, 4, 4), torch.rand(3, 1, 4, 4)
    ref = Normal(mu, 0.02 ** 0.5).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(gaussian_log_likelihood(x, mu, 0.02), ref, atol=1e-4)


def test_bernoulli_log_likelihood():
    x = (torch.rand(3, 10) > 0.5).float()
    logits = torch.randn(3, 10)
    ref = Bernoulli(logits=logits).log_prob(x).sum(1)
    assert torch.allclose(bernoulli_log_likelihood(x, logits), ref, atol=1e-5)


def test_elbo_is_loglik_minus_beta_kl():
    x = torch.rand(4, 1, 3, 3)
    out = torch.randn(4, 1, 3, 3)
    mean, logvar = torch.randn(4, 2), torch.randn(4, 2)
    t1 = vae_elbo(x, out, mean, logvar, beta=1.0)
    t4 = vae_elbo(x, out, mean, logvar, beta=4.0)
    assert torch.allclose(t1["elbo"], t1["log_lik"] - t1["kl"])
    assert torch.allclose(t4["elbo"], t1["log_lik"] - 4.0 * t1["kl"])
    ref = Normal(torch.sigmoid(out), 0.02 ** 0.5).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(t1["log_lik"], ref, atol=1e-4)
