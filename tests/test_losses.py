"""probssl.losses: each Module loss is the scalar probssl's method of the same name minimises,
on the same tensors (same seed for the reparameterisation noise)."""

from __future__ import annotations

import pytest
import torch

from probssl.losses import (
    CRVAELoss,
    InfoNCELoss,
    MoCoLoss,
    NTXentLoss,
    SimVAELoss,
    VAELoss,
    VICRegLoss,
)
from probssl.methods import build_method, make_method_config
from probssl.objectives.infonce import infonce_bound
from probssl.objectives.moco import moco_infonce
from probssl.objectives.vae import reparameterise

SHAPE = (1, 8, 8)


def _method(name, **params):
    cfg = make_method_config(name, params, arch="mlp", latent_dim=4)
    return build_method(name, cfg, SHAPE).train()


def _views(j, b=6):
    return torch.rand(b, j, *SHAPE, generator=torch.Generator().manual_seed(1)).round()


def test_simvae_loss_is_the_simvae_method_loss():
    m = _method("simvae", n_views=3)
    views = _views(3)
    torch.manual_seed(0)
    want, _ = m(views)
    torch.manual_seed(0)
    mean, logvar = m.encoder(views.flatten(0, 1))
    z = reparameterise(mean, logvar)
    crit = SimVAELoss(prior_var=m.config.prior_var, likelihood=m.config.likelihood,
                      likelihood_var=m.config.likelihood_var)
    got = crit(views, m.decoder(z).view(views.shape),
               *(t.view(6, 3, -1) for t in (mean, logvar, z)))
    assert torch.allclose(got, want) and set(crit.terms) >= {"elbo", "log_prior"}


def test_vae_and_cr_vae_losses_are_their_methods_losses():
    for name, crit_of in (("vae", lambda c: VAELoss(c.likelihood, c.likelihood_var, c.beta)),
                          ("cr-vae", lambda c: CRVAELoss(c.weight, c.likelihood,
                                                         c.likelihood_var, c.beta))):
        m = _method(name)
        j = 1 if name == "vae" else 2
        views = _views(j)
        torch.manual_seed(0)
        want, _ = m(views)
        torch.manual_seed(0)
        x = views.flatten(0, 1)
        mean, logvar = m.encoder(x)
        z = reparameterise(mean, logvar)
        out = m.decoder(z)
        if name == "cr-vae":  # the method's rows are image-major; the loss wants x then t(x)
            order = torch.cat([torch.arange(0, 12, 2), torch.arange(1, 12, 2)])
            x, out, mean, logvar = x[order], out[order], mean[order], logvar[order]
        assert torch.allclose(crit_of(m.config)(x, out, mean, logvar), want, atol=1e-5), name


@pytest.mark.parametrize("name,loss_of", [
    ("simclr", lambda c: NTXentLoss(c.temperature)),
    ("vicreg", lambda c: VICRegLoss(c.sim_coeff, c.std_coeff, c.cov_coeff))])
def test_contrastive_losses_are_their_methods_losses_from_either_input_form(name, loss_of):
    m = _method(name)
    views = _views(2)
    want, _ = m(views)
    z, _ = m.encoder(views.flatten(0, 1))
    h = m.head(z).view(6, 2, -1)
    crit = loss_of(m.config)
    assert torch.allclose(crit(h), want)
    assert torch.allclose(crit(h[:, 0], h[:, 1]), want)
    with pytest.raises(ValueError, match="at least two"):
        crit(h[:, 0])


def test_infonce_loss_with_any_critic_is_minus_i_n_and_owns_the_critic():
    torch.manual_seed(0)
    z, zp = torch.randn(8, 4), torch.randn(8, 4)
    crit = InfoNCELoss("rbf", dim=4)
    loss = crit(z, zp)
    assert torch.allclose(loss, -infonce_bound(crit.critic(z, zp)))
    assert [n for n, _ in crit.named_parameters()]  # the length-scale is learnable
    loss.backward()
    assert all(p.grad is not None for p in crit.parameters())
    assert set(crit.terms) == {"I_N", "I_B"}
    with pytest.raises(ValueError, match="needs dim"):
        InfoNCELoss("rbf")


def test_moco_loss_is_moco_infonce():
    torch.manual_seed(0)
    q, k, queue = torch.randn(5, 4), torch.randn(5, 4), torch.randn(16, 4)
    assert torch.equal(MoCoLoss(0.2)(q, k, queue), moco_infonce(q, k, queue, 0.2))
