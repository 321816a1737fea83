"""probssl's objectives as ``torch.nn.Module`` losses, for your own training loop.

Each wrapper returns the scalar that probssl's method of the same name minimises (the same
function of the same tensors: ``tests/test_losses.py`` checks it against the method), and
keeps the loss's named terms of the last call in ``.terms`` for logging. Contrastive losses
that need the whole batch gather it across DDP processes with gradients
(:func:`probssl.objectives.collectives.gather_with_grad`), so under ``torchrun`` the gradient
equals that of one process holding the global batch. Codes are ``(B, J, D)``: B images, J
views each (or pass the views as separate ``(B, D)`` tensors).

    criterion = NTXentLoss(temperature=0.5)
    loss = criterion(proj(enc(x1)), proj(enc(x2)))
    loss.backward()
"""

from __future__ import annotations

import torch
from torch import nn

from probssl.critics import build_critic
from probssl.objectives.cr_vae import cr_vae_objective
from probssl.objectives.infonce import batch_marginal_infonce, infonce_bound
from probssl.objectives.moco import moco_infonce
from probssl.objectives.nt_xent import nt_xent
from probssl.objectives.simvae import simvae_elbo
from probssl.objectives.vae import vae_elbo
from probssl.objectives.vicreg import vicreg_loss


def _views(codes: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """One (B, J, D) tensor, or J tensors (B, D) stacked into one."""
    if len(codes) == 1 and codes[0].ndim == 3:
        return codes[0]
    if len(codes) < 2 or any(c.ndim != 2 for c in codes):
        raise ValueError("pass one (B, J, D) tensor or at least two (B, D) tensors, one per "
                         f"view; got shapes {[tuple(c.shape) for c in codes]}")
    return torch.stack(codes, dim=1)


class _Loss(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.terms: dict[str, torch.Tensor] = {}

    def _keep(self, terms: dict[str, torch.Tensor]) -> None:
        self.terms = {k: v.detach().mean() for k, v in terms.items()}


class SimVAELoss(_Loss):
    """−ELBO_SSL of SimVAE per view (arXiv:2402.01399 Eq. 4 with the hierarchical prior of Eq. 9
    p(z^j | y) = N(y, σ² I) integrated over y), averaged over images: probssl's ``simvae``.

        criterion = SimVAELoss(prior_var=0.15, likelihood_var=0.02)
        mean, logvar = encoder(x.flatten(0, 1))          # x: (B, J, C, H, W), J views each
        z = mean + (0.5 * logvar).exp() * torch.randn_like(mean)
        b, j = x.shape[:2]
        loss = criterion(x, decoder(z).view_as(x), *(t.view(b, j, -1) for t in (mean, logvar, z)))

    ``decoder_out`` is the decoder's raw output (logits: a sigmoid gives the Gaussian mean)."""

    def __init__(self, prior_var: float = 0.15, likelihood: str = "gaussian",
                 likelihood_var: float = 0.02) -> None:
        super().__init__()
        self.prior_var, self.likelihood, self.likelihood_var = (prior_var, likelihood,
                                                                likelihood_var)

    def forward(self, x: torch.Tensor, decoder_out: torch.Tensor, mean: torch.Tensor,
                logvar: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        j = x.shape[1]
        terms = simvae_elbo(x, decoder_out.float(), mean.float(), logvar.float(), z.float(),
                            prior_var=self.prior_var, likelihood=self.likelihood,
                            likelihood_var=self.likelihood_var)
        per_view = {k: v / j for k, v in terms.items()}
        self._keep(per_view)
        return -per_view["elbo"].mean()


class VAELoss(_Loss):
    """−ELBO of a VAE (β-VAE with ``beta``; arXiv:2107.02495v3 Eq. 2 with P(z) = N(0, I)),
    averaged over images: probssl's ``vae``.

        criterion = VAELoss(likelihood_var=0.02)
        mean, logvar = encoder(x)
        z = mean + (0.5 * logvar).exp() * torch.randn_like(mean)
        loss = criterion(x, decoder(z), mean, logvar)"""

    def __init__(self, likelihood: str = "gaussian", likelihood_var: float = 0.02,
                 beta: float = 1.0) -> None:
        super().__init__()
        self.likelihood, self.likelihood_var, self.beta = likelihood, likelihood_var, beta

    def forward(self, x: torch.Tensor, decoder_out: torch.Tensor, mean: torch.Tensor,
                logvar: torch.Tensor) -> torch.Tensor:
        terms = vae_elbo(x, decoder_out.float(), mean.float(), logvar.float(),
                         likelihood=self.likelihood, likelihood_var=self.likelihood_var,
                         beta=self.beta)
        self._keep(terms)
        return -terms["elbo"].mean()


class CRVAELoss(_Loss):
    """CR-VAE (Sinha & Dieng 2021): the ELBOs of an image and of its augmentation minus
    ``weight`` × KL(q(z|t(x)) ‖ q(z|x)), halved (per view) and averaged: probssl's ``cr-vae``.

        criterion = CRVAELoss(weight=0.1)                 # λ, the cr-vae method's default
        mean, logvar = encoder(torch.cat([x, tx]))       # the image and its augmentation
        z = mean + (0.5 * logvar).exp() * torch.randn_like(mean)
        loss = criterion(torch.cat([x, tx]), decoder(z), mean, logvar)

    Inputs hold the B images first, then their B augmentations (2B rows).

        >>> x = torch.rand(4, 1, 8, 8)  # 2 images, then their 2 augmentations
        >>> criterion = CRVAELoss(weight=0.1)
        >>> criterion(x, torch.zeros_like(x), torch.zeros(4, 3), torch.zeros(4, 3)).shape
        torch.Size([])
    """

    def __init__(self, weight: float = 0.1, likelihood: str = "gaussian",
                 likelihood_var: float = 0.02, beta: float = 1.0) -> None:
        super().__init__()
        self.weight = weight
        self.vae = VAELoss(likelihood, likelihood_var, beta)

    def forward(self, x: torch.Tensor, decoder_out: torch.Tensor, mean: torch.Tensor,
                logvar: torch.Tensor) -> torch.Tensor:
        b = len(x) // 2
        if len(x) != 2 * b or b == 0:
            raise ValueError(f"CRVAELoss needs 2B rows (images, then augmentations); got {len(x)}")
        terms = vae_elbo(x, decoder_out.float(), mean.float(), logvar.float(),
                         likelihood=self.vae.likelihood, likelihood_var=self.vae.likelihood_var,
                         beta=self.vae.beta)
        m, lv = mean.float(), logvar.float()
        obj = cr_vae_objective(terms["elbo"][:b], terms["elbo"][b:], m[:b], lv[:b], m[b:],
                               lv[b:], self.weight)
        self._keep({"elbo": terms["elbo"], "consistency": obj["consistency"]})
        return -(obj["objective"] / 2).mean()


class NTXentLoss(_Loss):
    """SimCLR's NT-Xent for J ≥ 2 views (Chen et al. 2020, arXiv:2002.05709 Eq. 1;
    :func:`probssl.objectives.nt_xent.nt_xent`), with the negatives of every DDP process:
    probssl's ``simclr`` (its head's output in).

        criterion = NTXentLoss(temperature=0.5)
        loss = criterion(head(enc(x1)), head(enc(x2)))"""

    def __init__(self, temperature: float = 0.7) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(self, *codes: torch.Tensor) -> torch.Tensor:
        return nt_xent(_views(codes), self.temperature)


class VICRegLoss(_Loss):
    """VICReg at its published weights (λ = μ = 25, ν = 1; the released code's convention:
    variance averaged, covariance summed over the branches), statistics over every DDP
    process's batch: probssl's ``vicreg`` (its expander's output in).

        criterion = VICRegLoss()
        loss = criterion(expander(enc(x1)), expander(enc(x2)))

    For example, on random codes of 8 images:

        >>> VICRegLoss()(torch.randn(8, 4), torch.randn(8, 4)).shape
        torch.Size([])
    """

    def __init__(self, sim_coeff: float = 25.0, std_coeff: float = 25.0,
                 cov_coeff: float = 1.0) -> None:
        super().__init__()
        self.coeffs = (sim_coeff, std_coeff, cov_coeff)

    def forward(self, *codes: torch.Tensor) -> torch.Tensor:
        loss, terms = vicreg_loss(_views(codes), *self.coeffs)
        self._keep(terms)
        return loss


class MoCoLoss(_Loss):
    """MoCo's InfoNCE (He et al. 2020, arXiv:1911.05722 Eq. 1): queries against their keys
    (positives, no gradient) and a queue of negatives
    (:func:`probssl.objectives.moco.moco_infonce`). The queue and the momentum
    encoder are yours to keep (``probssl.objectives.moco.momentum_update``).

        criterion = MoCoLoss(temperature=0.2)
        loss = criterion(q=head(enc(x1)), k=head_m(enc_m(x2)), queue=queue)"""

    def __init__(self, temperature: float = 0.2) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(self, q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor) -> torch.Tensor:
        return moco_infonce(q, k, queue, self.temperature)


class InfoNCELoss(_Loss):
    """−I_N, the InfoNCE bound with any registered critic f (arXiv:2107.02495v3 Eq. 6): the
    RPM ELBO under the InfoNCE prior (Eq. 21-24), i.e. probssl's ``rpm`` with ``--prior
    infonce``. The critic's parameters (e.g. the RBF length-scale) are this module's: give
    ``criterion.parameters()`` to your optimiser too. Negatives are the other pairs of this
    process's batch (as in probssl's ``rpm``).

        criterion = InfoNCELoss("rbf", dim=10)
        optimiser = torch.optim.Adam([*encoder.parameters(), *criterion.parameters()])
        loss = criterion(encoder(x_t), encoder(x_t_plus_1))

    ``.terms`` holds I_N and I_B (the batch-marginal estimate, ≤ log B)."""

    def __init__(self, critic: str | nn.Module = "bilinear", dim: int | None = None,
                 **critic_settings) -> None:
        super().__init__()
        if isinstance(critic, str):
            if dim is None:
                raise ValueError(f"InfoNCELoss({critic!r}) needs dim, the code size")
            critic = build_critic(critic, dim, **critic_settings)
        self.critic = critic

    def forward(self, z: torch.Tensor, zp: torch.Tensor) -> torch.Tensor:
        scores = self.critic(z.float(), zp.float())
        i_n = infonce_bound(scores)
        self._keep({"I_N": i_n, "I_B": batch_marginal_infonce(scores)})
        return -i_n


__all__ = ["CRVAELoss", "InfoNCELoss", "MoCoLoss", "NTXentLoss", "SimVAELoss", "VAELoss",
           "VICRegLoss"]
