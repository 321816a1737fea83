"""``cr-vae``: a VAE with the consistency regulariser of Sinha & Dieng (2021).

Objective: :func:`probssl.objectives.cr_vae.cr_vae_objective` on views 0 (x) and 1 (t(x)) of
each image. Both are drawn by the same augmentation pipeline as every other method's views (the
matched protocol), so "x" is itself an augmentation here. Loss = −objective / 2 per image
(nats per view, comparable with the VAE's).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from probssl.errors import UserError
from probssl.methods.base import Method, register_method
from probssl.methods.vae import VAEConfig
from probssl.nn import build_decoder, build_encoder
from probssl.objectives.cr_vae import cr_vae_objective
from probssl.objectives.vae import reparameterise, vae_elbo
from probssl.presets import GENERATIVE_PAPER


@dataclass
class CRVAEConfig(VAEConfig):
    n_views: int = 2
    weight: float = 0.1  # λ (SimVAE paper 0.1; CR-VAE code 1e-3)

    def validate(self) -> None:
        super().validate()
        if self.n_views != 2:
            raise UserError(f"cr-vae compares an image with one transform: n_views must be 2; "
                            f"got {self.n_views}")
        if self.weight < 0:
            raise UserError(f"weight must be >= 0; got {self.weight}")


@register_method(
    "cr-vae", config=CRVAEConfig,
    description="VAE + consistency KL(q(z|t(x)) || q(z|x)) (arXiv:2105.14859)",
    # λ: 0.1 in the SimVAE paper's baseline, 1e-3 in the CR-VAE code the authors released
    presets={"paper": (GENERATIVE_PAPER[0], {**GENERATIVE_PAPER[1], "weight": 0.1}),
             "reference-code": ({}, {"weight": 1e-3})})
class CRVAE(Method):
    """``cr-vae`` (module docstring): a Gaussian-encoder VAE trained on views 0 and 1 of each image
    with the consistency regulariser of Sinha & Dieng (2021).

        >>> model = CRVAE(CRVAEConfig(arch="mlp", latent_dim=4), (1, 8, 8))
        >>> loss, metrics = model(torch.rand(5, 2, 1, 8, 8))  # (B, J = 2, C, H, W)
        >>> sorted(metrics)
        ['consistency', 'elbo']
    """
    def __init__(self, config: CRVAEConfig, image_shape: tuple[int, int, int]):
        super().__init__(config)
        self.encoder = build_encoder(config.arch, image_shape, config.latent_dim, "gaussian")
        self.decoder = build_decoder(config.arch, config.latent_dim, image_shape)

    def image_decoder(self) -> nn.Module:
        return self.decoder

    def likelihood_model(self) -> tuple[nn.Module, nn.Module, str, float]:
        cfg = self.config
        return self.encoder, self.decoder, cfg.likelihood, cfg.likelihood_var  # type: ignore

    def forward(self, views: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg: CRVAEConfig = self.config  # type: ignore[assignment]
        b = views.shape[0]
        x = views.flatten(0, 1)
        mean, logvar = self.encoder(x)
        z = reparameterise(mean, logvar)
        terms = vae_elbo(x, self.decoder(z).float(), mean.float(), logvar.float(),
                         likelihood=cfg.likelihood, likelihood_var=cfg.likelihood_var,
                         beta=cfg.beta)
        elbo = terms["elbo"].view(b, 2)
        m, lv = mean.float().view(b, 2, -1), logvar.float().view(b, 2, -1)
        obj = cr_vae_objective(elbo[:, 0], elbo[:, 1], m[:, 0], lv[:, 0], m[:, 1], lv[:, 1],
                               cfg.weight)
        loss = -(obj["objective"] / 2).mean()
        return loss, {"elbo": terms["elbo"].mean().detach(),
                      "consistency": obj["consistency"].mean().detach()}
