"""InfoNCE bounds, RPM ELBO pieces, critics and priors against slow loop references."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal

from probssl.critics import CRITICS, build_critic
from probssl.objectives.infonce import (
    batch_marginal_infonce,
    infonce_bound,
    pair_retrieval_accuracy,
    pairing_log_probs,
)
from probssl.objectives.rpm import log_empirical_marginal, rpm_elbo, rpm_elbo_general
from probssl.priors import GaussianDynamicsPrior, IndependentPrior, InfoNCEPrior, PriorContext

G = torch.Generator().manual_seed(0)


def _loop_infonce(f: torch.Tensor) -> float:
    b = len(f)
    return sum(math.log(f[i, i] / sum(f[i, j] for j in range(b))) for i in range(b)) / b \
        + math.log(b - 1)


def test_infonce_bound_matches_loop_and_conventions():
    s = torch.randn(7, 7, generator=G, dtype=torch.float64)
    assert math.isclose(float(infonce_bound(s)), _loop_infonce(s.exp()), rel_tol=1e-10)
    assert math.isclose(float(infonce_bound(s, "oord")) - float(infonce_bound(s)),
                        math.log(7) - math.log(6))
    # perfectly separated positives reach the bound log N
    big = torch.eye(5, dtype=torch.float64) * 100
    assert math.isclose(float(infonce_bound(big)), math.log(4), abs_tol=1e-9)
    with pytest.raises(ValueError):
        infonce_bound(torch.zeros(3, 4))


def test_batch_marginal_infonce_matches_loop():
    s = torch.randn(6, 6, generator=G, dtype=torch.float64)
    f = s.exp()
    ref = sum(math.log(f[i, i]) for i in range(6)) / 6 - sum(
        math.log(sum(f[i, j] for j in range(6)) / 6) for i in range(6)) / 6
    assert math.isclose(float(batch_marginal_infonce(s)), ref, rel_tol=1e-10)


def test_pairing_distribution_and_retrieval():
    s = torch.randn(5, 5, generator=G)
    assert torch.allclose(pairing_log_probs(s).exp().sum(1), torch.ones(5))
    s = s + torch.eye(5) * 10
    assert pair_retrieval_accuracy(s) == 1.0
    assert pair_retrieval_accuracy(s.flip(0)) < 1.0


def test_empirical_marginal_matches_mixture_loop():
    means, logvars = torch.randn(4, 3, generator=G), torch.randn(4, 3, generator=G) * 0.3
    z = torch.randn(6, 3, generator=G)
    got = log_empirical_marginal(z, means, logvars)
    for k in range(6):
        dens = sum(Normal(means[n], (0.5 * logvars[n]).exp()).log_prob(z[k]).sum().exp()
                   for n in range(4)) / 4
        assert math.isclose(float(got[k]), math.log(float(dens)), rel_tol=1e-5)
    fixed = log_empirical_marginal(z, means, math.log(0.1))
    ref = log_empirical_marginal(z, means, torch.full((4, 3), math.log(0.1)))
    assert torch.allclose(fixed, ref)


def test_general_elbo_with_q_equal_r_is_eq_15():
    lp, lr, lrp, lrec = (torch.randn(8, generator=G) for _ in range(4))
    assert torch.allclose(rpm_elbo_general(lp, lr, lrp, lrec, lrec), rpm_elbo(lp, lr, lrp))


@pytest.mark.parametrize("name", sorted(CRITICS))
def test_critic_pairwise_and_paired_agree(name):
    critic = build_critic(name, 4).double()
    z, zp = torch.randn(5, 4, generator=G).double(), torch.randn(4, 4, generator=G).double()
    m = critic(z, zp)
    assert m.shape == (5, 4)
    assert torch.allclose(critic.paired(z[:4], zp), torch.diagonal(critic(z[:4], zp)))


def test_rbf_critic_is_the_gaussian_kernel():
    critic = build_critic("rbf", 2, length_scale=0.7).double()
    z, zp = torch.randn(3, 2, generator=G).double(), torch.randn(3, 2, generator=G).double()
    m = critic(z, zp)
    for i in range(3):
        for j in range(3):
            ref = -float(((z[i] - zp[j]) ** 2).sum()) / (2 * 0.49)
            assert math.isclose(float(m[i, j]), ref, rel_tol=1e-6)
    assert math.isclose(critic.log_params()["length_scale"], 0.7, rel_tol=1e-6)


def test_infonce_prior_gives_batch_i_inf_and_independent_prior_gives_zero():
    z, zp = torch.randn(10, 2, generator=G).double(), torch.randn(10, 2, generator=G).double()
    scores = build_critic("cosine", 2).double()(z, zp)
    lr, lrp = torch.randn(10, generator=G).double(), torch.randn(10, generator=G).double()
    ctx = PriorContext(lr, lrp, scores)
    elbo = rpm_elbo(InfoNCEPrior(2).log_prob(z, zp, ctx), lr, lrp)
    assert torch.allclose(elbo, batch_marginal_infonce(scores))
    assert float(rpm_elbo(IndependentPrior(2).log_prob(z, zp, ctx), lr, lrp)) == 0.0


def test_gaussian_dynamics_prior_is_the_joint_gaussian():
    prior = GaussianDynamicsPrior(2).double()
    with torch.no_grad():
        prior.A.copy_(torch.tensor([[0.5, 0.2], [0.0, 0.9]]))
        prior.b.copy_(torch.tensor([0.1, -0.3]))
    z, zp = torch.randn(4, 2, generator=G).double(), torch.randn(4, 2, generator=G).double()
    got = prior.log_prob(z, zp)
    noise_var = float(prior.log_noise_var.exp())
    for i in range(4):
        pz = MultivariateNormal(torch.zeros(2).double(), torch.eye(2).double()).log_prob(z[i])
        mean = prior.A.detach() @ z[i] + prior.b.detach()
        pzp = MultivariateNormal(mean, noise_var * torch.eye(2).double()).log_prob(zp[i])
        assert math.isclose(float(got[i]), float(pz + pzp), rel_tol=1e-9)
