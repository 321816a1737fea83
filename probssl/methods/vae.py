"""``vae`` and ``beta-vae``: Gaussian encoder, Gaussian or Bernoulli decoder, N(0, I) prior.

Objective: :func:`probssl.objectives.vae.vae_elbo`. With J > 1 views each view is an
independent image (the augmentations only enlarge the data); the loss is the negative ELBO
averaged over images and views.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from probssl.errors import UserError
from probssl.methods.base import Method, MethodConfig, register_method
from probssl.nn import build_decoder, build_encoder
from probssl.objectives.vae import reparameterise, vae_elbo
from probssl.presets import GENERATIVE_PAPER

LIKELIHOODS = ("gaussian", "bernoulli")


@dataclass
class VAEConfig(MethodConfig):
    likelihood: str = "gaussian"
    likelihood_var: float = 0.02  # sigma_x^2 of the Gaussian likelihood (paper: 0.02)
    beta: float = 1.0

    def validate(self) -> None:
        if self.likelihood not in LIKELIHOODS:
            raise UserError(f"likelihood must be one of {', '.join(LIKELIHOODS)}; "
                            f"got {self.likelihood!r}")
        if not self.likelihood_var > 0:
            raise UserError(f"likelihood_var must be > 0; got {self.likelihood_var}")
        if self.beta < 0:
            raise UserError(f"beta must be >= 0; got {self.beta}")


@register_method("beta-vae", config=VAEConfig, defaults={"beta": 4.0},
                 description="beta-VAE (Higgins et al. 2017)",
                 presets={"paper": GENERATIVE_PAPER})
@register_method("vae", config=VAEConfig, description="VAE, N(0, I) prior (arXiv:1312.6114)",
                 presets={"paper": GENERATIVE_PAPER})
class VAE(Method):
    """``vae`` and ``beta-vae`` (module docstring): Gaussian encoder, decoder and N(0, I) prior
    trained by the ELBO of arXiv:2107.02495v3 Eq. 2 (the KL weighted by ``beta``), every view an
    independent image."""
    def __init__(self, config: VAEConfig, image_shape: tuple[int, int, int]):
        super().__init__(config)
        self.encoder = build_encoder(config.arch, image_shape, config.latent_dim, "gaussian")
        self.decoder = build_decoder(config.arch, config.latent_dim, image_shape)

    def image_decoder(self) -> nn.Module:
        return self.decoder

    def likelihood_model(self) -> tuple[nn.Module, nn.Module, str, float]:
        cfg = self.config
        return self.encoder, self.decoder, cfg.likelihood, cfg.likelihood_var  # type: ignore

    def forward(self, views: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x = views.flatten(0, 1)  # (B*J, C, H, W): every view is one image
        mean, logvar = self.encoder(x)
        z = reparameterise(mean, logvar)
        cfg: VAEConfig = self.config  # type: ignore[assignment]
        terms = vae_elbo(x, self.decoder(z).float(), mean.float(), logvar.float(),
                         likelihood=cfg.likelihood, likelihood_var=cfg.likelihood_var,
                         beta=cfg.beta)
        elbo = terms["elbo"].mean()
        metrics = {"elbo": elbo.detach(), "log_lik": terms["log_lik"].mean().detach(),
                   "kl": terms["kl"].mean().detach()}
        return -elbo, metrics
