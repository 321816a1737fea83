"""``simvae``: a VAE whose prior ties the J augmented views of an image (arXiv:2402.01399 Eq. 4, 9).

Objective: :func:`probssl.objectives.simvae.simvae_elbo` (the exact ELBO_SSL, default) or
:func:`probssl.objectives.simvae.simvae_reference_code_loss` (``objective="reference-code"``,
the authors' released code). The logged ``elbo`` is in nats per image (ELBO_SSL / J).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from probssl.errors import UserError
from probssl.methods.base import Method, MethodConfig, register_method
from probssl.methods.vae import LIKELIHOODS
from probssl.nn import build_decoder, build_encoder
from probssl.objectives.simvae import simvae_elbo, simvae_reference_code_loss
from probssl.objectives.vae import reparameterise
from probssl.presets import GENERATIVE_PAPER, MNIST_FAMILY

OBJECTIVES = ("elbo", "reference-code")


@dataclass
class SimVAEConfig(MethodConfig):
    n_views: int = 10  # J (paper: 10; the released scripts: 2)
    prior_var: float = 0.15  # σ² of p(z|y)
    likelihood: str = "gaussian"
    likelihood_var: float = 0.02  # σ_x² of the Gaussian likelihood (paper)
    objective: str = "elbo"
    log_var_x: float = -4.6  # reference-code objective only: recon divided by exp(log_var_x)

    def validate(self) -> None:
        if self.n_views < 2:
            raise UserError(f"simvae ties J >= 2 views of an image: n_views must be >= 2; "
                            f"got {self.n_views}")
        if not self.prior_var > 0:
            raise UserError(f"prior_var must be > 0; got {self.prior_var}")
        if self.likelihood not in LIKELIHOODS:
            raise UserError(f"likelihood must be one of {', '.join(LIKELIHOODS)}; "
                            f"got {self.likelihood!r}")
        if not self.likelihood_var > 0:
            raise UserError(f"likelihood_var must be > 0; got {self.likelihood_var}")
        if self.objective not in OBJECTIVES:
            raise UserError(f"objective must be one of {', '.join(OBJECTIVES)}; "
                            f"got {self.objective!r}")


def _reference_code(dataset: str) -> tuple[dict, dict]:
    """The authors' released code (SPEC §4): J = 2, its loss (Bernoulli likelihood for the
    MNIST family, Gaussian with log σ_x² = −4.6 otherwise, the extra −½|z̄|² term, its
    entropy term), Adam eps 1e-4, its augmentation (vertical flip; CIFAR10 jitter on)."""
    train: dict = {"adam_eps": 1e-4}
    aug = {"mnist": "mnist-reference-code", "mnist-test": "mnist-reference-code",
           "fashion-mnist": "fashion-mnist-reference-code",
           "cifar10": "cifar10-reference-code"}.get(dataset)
    if aug:
        train["augmentation"] = aug
    return train, {"n_views": 2, "objective": "reference-code", "log_var_x": -4.6,
                   "likelihood": "bernoulli" if dataset in MNIST_FAMILY else "gaussian"}


@register_method(
    "simvae", config=SimVAEConfig,
    description="SimVAE: VAE with a prior tying J views (arXiv:2402.01399)",
    presets={"paper": (GENERATIVE_PAPER[0], {**GENERATIVE_PAPER[1], "n_views": 10,
                                             "prior_var": 0.15, "objective": "elbo"}),
             "reference-code": _reference_code,
             "quick": ({}, {"n_views": 4})})
class SimVAE(Method):
    """``simvae`` (module docstring): Gaussian encoder and decoder trained by ELBO_SSL
    (arXiv:2402.01399 Eq. 4 with the prior of Eq. 9) over the J views of each image, or by the
    authors' released loss (``objective="reference-code"``)."""
    def __init__(self, config: SimVAEConfig, image_shape: tuple[int, int, int]):
        super().__init__(config)
        self.encoder = build_encoder(config.arch, image_shape, config.latent_dim, "gaussian")
        self.decoder = build_decoder(config.arch, config.latent_dim, image_shape)

    def image_decoder(self) -> nn.Module:
        return self.decoder

    def forward(self, views: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg: SimVAEConfig = self.config  # type: ignore[assignment]
        b, j = views.shape[:2]
        mean, logvar = self.encoder(views.flatten(0, 1))
        z = reparameterise(mean, logvar)
        out = self.decoder(z).float().view(views.shape)
        mean, logvar, z = (t.float().view(b, j, -1) for t in (mean, logvar, z))
        if cfg.objective == "reference-code":
            terms = simvae_reference_code_loss(views, out, logvar, z, prior_var=cfg.prior_var,
                                               likelihood=cfg.likelihood,
                                               log_var_x=cfg.log_var_x)
            return terms["loss"].sum(), {k: v.mean().detach() for k, v in terms.items()}
        terms = simvae_elbo(views, out, mean, logvar, z, prior_var=cfg.prior_var,
                            likelihood=cfg.likelihood, likelihood_var=cfg.likelihood_var)
        per_image = {k: (v / j).mean() for k, v in terms.items()}
        return -per_image["elbo"], {k: v.detach() for k, v in per_image.items()}
