"""SimVAE, NT-Xent, VICReg, MoCo and CR-VAE losses: hand-computable cases and slow loop
references."""

import itertools
import math

import numpy as np
import pytest
import torch

from probssl.objectives.cr_vae import cr_vae_objective, gaussian_kl
from probssl.objectives.moco import moco_infonce, momentum_update
from probssl.objectives.nt_xent import nt_xent
from probssl.objectives.simvae import (
    simvae_elbo,
    simvae_prior_log_prob,
    simvae_reference_code_loss,
)
from probssl.objectives.vae import gaussian_entropy, log_likelihood
from probssl.objectives.vicreg import vicreg_loss, vicreg_terms


@pytest.fixture(autouse=True)
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # references in exact arithmetic; restored after
    yield
    torch.set_default_dtype(old)


# ---- SimVAE ---------------------------------------------------------------------------

def test_simvae_prior_of_identical_views_is_its_constant():
    z = torch.randn(4, 1, 3).expand(4, 5, 3)
    lp = simvae_prior_log_prob(z, 0.15)
    const = -0.5 * 4 * 3 * math.log(2 * math.pi * 0.15) - 0.5 * 3 * math.log(5)
    torch.testing.assert_close(lp, torch.full((4,), const))


def test_simvae_prior_equals_the_integral_over_the_cluster_mean():
    # log ∫ Π_j N(z_j; ψ, σ²) dψ for D = 1 by quadrature on a fine grid
    z = torch.tensor([[[0.3], [-0.2], [0.9]]])
    var = 0.15
    psi = torch.linspace(-6, 6, 200_001)
    log_n = (-0.5 * (z[0, :, 0, None] - psi) ** 2 / var - 0.5 * math.log(2 * math.pi * var))
    integral = torch.logsumexp(log_n.sum(0), 0) + math.log(float(psi[1] - psi[0]))
    torch.testing.assert_close(simvae_prior_log_prob(z, var)[0], integral, atol=1e-6, rtol=0)


def test_simvae_prior_loop_reference():
    z = torch.randn(3, 4, 2)
    var = 0.3
    for b in range(3):
        zbar = sum(z[b, j] for j in range(4)) / 4
        spread = sum(float(((z[b, j] - zbar) ** 2).sum()) for j in range(4))
        ref = -spread / (2 * var) - 0.5 * 3 * 2 * math.log(2 * math.pi * var) - math.log(4)
        assert simvae_prior_log_prob(z, var)[b].item() == pytest.approx(ref)


def test_simvae_elbo_is_the_sum_of_its_terms():
    b, j, d = 2, 3, 4
    x = torch.rand(b, j, 1, 5, 5)
    out = torch.randn(b, j, 1, 5, 5)
    mean, logvar, z = torch.randn(b, j, d), torch.randn(b, j, d) * 0.1, torch.randn(b, j, d)
    t = simvae_elbo(x, out, mean, logvar, z, prior_var=0.15, likelihood="gaussian",
                    likelihood_var=0.02)
    for i in range(b):
        ll = sum(log_likelihood(x[i, k:k + 1], out[i, k:k + 1], "gaussian", 0.02)[0]
                 for k in range(j))
        ent = sum(gaussian_entropy(logvar[i, k]) for k in range(j))
        ref = ll + ent + simvae_prior_log_prob(z[i:i + 1], 0.15)[0]
        torch.testing.assert_close(t["elbo"][i], ref)


def test_reference_code_loss_matches_its_formulas():
    x = torch.rand(2, 2, 1, 3, 3).round()
    out = torch.randn(2, 2, 1, 3, 3)
    logvar, z = torch.randn(2, 2, 4) * 0.1, torch.randn(2, 2, 4)
    t = simvae_reference_code_loss(x, out, logvar, z, prior_var=0.15, likelihood="bernoulli",
                                   log_var_x=-4.6)
    p = torch.sigmoid(out)
    bce = -(x * torch.log(p) + (1 - x) * torch.log(1 - p)).flatten(1).sum(1) / math.exp(-4.6)
    zbar = z.mean(1, keepdim=True)
    prior = 0.5 * ((z - zbar) ** 2).sum((1, 2)) / 0.15 + 0.5 * (zbar ** 2).sum((1, 2))
    ref = bce - math.pi * logvar.sum((1, 2)) + prior
    torch.testing.assert_close(t["loss"], ref)


# ---- NT-Xent ----------------------------------------------------------------------------

def nt_xent_loop(z, tau):
    b, j, _ = z.shape
    flat = torch.nn.functional.normalize(z, dim=-1).reshape(b * j, -1)
    total = 0.0
    for a in range(b * j):
        denom = sum(math.exp(float(flat[a] @ flat[k]) / tau) for k in range(b * j) if k != a)
        pos = [k for k in range(b * j) if k != a and k // j == a // j]
        total += -sum(float(flat[a] @ flat[p]) / tau - math.log(denom) for p in pos) / len(pos)
    return total / (b * j)


@pytest.mark.parametrize("j", [2, 3])
def test_nt_xent_matches_loop_reference(j):
    z = torch.randn(5, j, 4)
    assert nt_xent(z, 0.7).item() == pytest.approx(nt_xent_loop(z, 0.7), rel=1e-6)


def test_nt_xent_on_two_orthogonal_pairs():
    # pair 1 on e1, pair 2 on e2: each anchor sees its positive at cos 1 and two negatives
    # at cos 0, so the loss is -log(e^{1/τ} / (e^{1/τ} + 2))
    e1, e2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    z = torch.stack([torch.stack([e1, e1]), torch.stack([e2, e2])])
    tau = 0.5
    expected = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + 2))
    assert nt_xent(z, tau).item() == pytest.approx(expected)


# ---- VICReg ----------------------------------------------------------------------------

def test_vicreg_variance_term_on_a_collapsed_batch_is_one():
    z = torch.ones(8, 2, 5)
    t = vicreg_terms(z, eps=0.0)
    assert t["variance"].item() == pytest.approx(1.0)
    assert t["invariance"].item() == 0 and t["covariance"].item() == 0


def test_vicreg_loop_reference():
    z = torch.randn(6, 3, 4)
    t = vicreg_terms(z)
    inv = np.mean([float(((z[:, a] - z[:, c]) ** 2).mean())
                   for a, c in itertools.combinations(range(3), 2)])
    var, cov = [], []
    for j in range(3):
        zj = z[:, j].numpy()
        std = np.sqrt(zj.var(axis=0, ddof=1) + 1e-4)
        var.append(np.maximum(0, 1 - std).mean())
        c = np.cov(zj, rowvar=False)
        cov.append(((c ** 2).sum() - (np.diag(c) ** 2).sum()) / 4)
    assert t["invariance"].item() == pytest.approx(inv)
    assert t["variance"].item() == pytest.approx(np.mean(var))
    assert t["covariance"].item() == pytest.approx(2 * np.mean(cov))  # J > 2: 2 × mean


def _released_vicreg(x: np.ndarray, y: np.ndarray) -> float:
    """The loss of facebookresearch/vicreg's ``main_vicreg.py`` (two branches), written
    out with loops: repr_loss = MSE; std_loss = mean(relu(1 − std_x)) / 2 + mean(relu(1 −
    std_y)) / 2; cov_loss = off-diagonal² of cov_x summed / D + the same for y;
    loss = 25·repr + 25·std + 1·cov."""
    n, d = x.shape
    repr_loss = sum((x[i, k] - y[i, k]) ** 2 for i in range(n) for k in range(d)) / (n * d)
    std_loss, cov_loss = 0.0, 0.0
    for a in (x, y):
        a = a - a.mean(axis=0)
        std = [math.sqrt(sum(a[i, k] ** 2 for i in range(n)) / (n - 1) + 1e-4)
               for k in range(d)]
        std_loss += sum(max(0.0, 1 - s) for s in std) / d / 2
        for k in range(d):
            for m in range(d):
                if k != m:
                    cov_loss += (sum(a[i, k] * a[i, m] for i in range(n)) / (n - 1)) ** 2 / d
    return 25 * repr_loss + 25 * std_loss + 1 * cov_loss


def test_vicreg_loss_is_the_released_code_at_its_published_weights():
    g = torch.Generator().manual_seed(3)
    for scale in (0.1, 1.0, 3.0):  # below and above the variance hinge
        z = torch.randn(7, 2, 5, generator=g, dtype=torch.float64) * scale
        z[:, 1] += 0.3 * torch.randn(7, 5, generator=g, dtype=torch.float64)
        ref = _released_vicreg(z[:, 0].numpy(), z[:, 1].numpy())
        assert vicreg_loss(z)[0].item() == pytest.approx(ref, rel=1e-5)


# ---- MoCo ------------------------------------------------------------------------------

def test_moco_loss_loop_reference_and_momentum_update():
    q, k, queue = torch.randn(3, 4), torch.randn(3, 4), torch.randn(5, 4)
    n = torch.nn.functional.normalize
    qn, kn, un = n(q, dim=1), n(k, dim=1), n(queue, dim=1)
    ref = 0.0
    for i in range(3):
        logits = [float(qn[i] @ kn[i]) / 0.2] + [float(qn[i] @ u) / 0.2 for u in un]
        ref += -(logits[0] - math.log(sum(math.exp(v) for v in logits)))
    assert moco_infonce(q, k, queue, 0.2).item() == pytest.approx(ref / 3)
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    before = b.weight.detach().clone()
    momentum_update(a, b, 0.9)
    torch.testing.assert_close(b.weight, 0.9 * before + 0.1 * a.weight.detach())


# ---- CR-VAE ----------------------------------------------------------------------------

def test_gaussian_kl_closed_form_and_zero_for_equal():
    m, lv = torch.randn(3, 4), torch.randn(3, 4)
    assert torch.allclose(gaussian_kl(m, lv, m, lv), torch.zeros(3))
    # KL(N(1, 1) || N(0, 4)) = log 2 + (1 + 1) / 8 - 1/2
    kl = gaussian_kl(torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([0.0]),
                     torch.tensor([math.log(4.0)]))
    assert kl.item() == pytest.approx(math.log(2) + 2 / 8 - 0.5)
    t = cr_vae_objective(torch.tensor([-5.0]), torch.tensor([-7.0]), torch.tensor([[0.0]]),
                         torch.tensor([[math.log(4.0)]]), torch.tensor([[1.0]]),
                         torch.tensor([[0.0]]), weight=0.1)
    assert t["objective"].item() == pytest.approx(-12 - 0.1 * kl.item())
