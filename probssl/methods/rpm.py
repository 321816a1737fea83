"""``rpm``: a recognition-parameterised model trained by its ELBO (arXiv:2107.02495v3 Sec. 4).

Pairs (x, x') are two augmentations of one image (J = 2 views). Recognition models are the
encoder(s) (shared by default, or separate for x and x'), Gaussian or deterministic. The
prior is chosen by name (``probssl.priors``); the critic (``probssl.critics``) builds the
InfoNCE prior. Both are registries: any registered critic or prior (plugins included) is
selected by name, and its settings are addressed as ``critic.KEY`` / ``prior.KEY`` (``--set
critic.hidden=128``; stored in ``critic_params`` / ``prior_params``). Objective:

* ``prior="infonce"``: the finite-sample bound actually used in practice, I_N (Eq. 6) on the
  critic's in-batch score matrix; I_B (Eq. 24's I_∞ with the batch's empirical marginal = the
  ELBO under the InfoNCE prior; ≤ log B, see :func:`batch_marginal_infonce`) is logged beside
  it as ``I_B``.
* any other prior: the RPM ELBO of Eq. 15/16 with the empirical-marginal R(z), R(z') over the
  batch (Eq. 29/37). With deterministic recognition the marginals use the fixed variance
  ``recognition_var`` (ε of App. B, Eq. 46-47).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from probssl.critics import CRITICS
from probssl.errors import UserError
from probssl.methods.base import Method, MethodConfig, register_method
from probssl.nn import build_encoder
from probssl.objectives.infonce import (
    batch_marginal_infonce,
    infonce_bound,
    pair_retrieval_accuracy,
)
from probssl.objectives.rpm import log_empirical_marginal, rpm_elbo
from probssl.objectives.vae import reparameterise
from probssl.priors import PRIORS, PriorContext

# Settings that were RPMConfig fields before critics had their own configs: still accepted,
# forwarded to the critic when it has a setting of that name (critic.KEY wins over them).
LEGACY_CRITIC_SETTINGS = ("temperature", "length_scale")


@dataclass
class RPMConfig(MethodConfig):
    n_views: int = 2
    critic: str = "cosine"
    critic_params: dict[str, Any] = field(default_factory=dict)  # critic.KEY settings
    temperature: float = 0.5  # cosine critic (legacy spelling of critic.temperature)
    length_scale: float = 1.0  # initial RBF length-scale (legacy: critic.length_scale)
    prior: str = "infonce"
    prior_params: dict[str, Any] = field(default_factory=dict)  # prior.KEY settings
    recognition: str = "deterministic"  # or "gaussian"
    recognition_var: float = 0.01  # ε for deterministic recognition's marginals
    shared_encoder: bool = True

    def validate(self) -> None:
        if self.n_views != 2:
            raise UserError(f"rpm trains on pairs: n_views must be 2; got {self.n_views}")
        CRITICS.get(self.critic).config(self.critic_settings())  # a typo fails here, now
        PRIORS.get(self.prior).config(self.prior_params)
        if self.recognition not in ("deterministic", "gaussian"):
            raise UserError("recognition must be 'deterministic' or 'gaussian'; got "
                            f"{self.recognition!r}")
        for name in ("temperature", "length_scale", "recognition_var"):
            if not getattr(self, name) > 0:
                raise UserError(f"{name} must be > 0; got {getattr(self, name)}")

    def critic_settings(self) -> dict[str, Any]:
        """The critic's settings: the legacy fields it knows, then ``critic_params``."""
        known = CRITICS.get(self.critic).config_cls.__dataclass_fields__
        legacy = {k: getattr(self, k) for k in LEGACY_CRITIC_SETTINGS if k in known}
        return {**legacy, **self.critic_params}


@register_method("rpm", config=RPMConfig,
                 description="recognition-parameterised model: InfoNCE as an ELBO "
                             "(arXiv:2107.02495)")
class RPM(Method):
    """``rpm`` (module docstring): recognition model(s), critic and prior; maximises I_N
    (arXiv:2107.02495v3 Eq. 6) with the InfoNCE prior, else the RPM ELBO of Eq. 15-16 with the
    batch's empirical marginals (Eq. 29/37)."""
    def __init__(self, config: RPMConfig, image_shape: tuple[int, int, int]):
        super().__init__(config)
        head = "gaussian" if config.recognition == "gaussian" else "deterministic"
        d = config.latent_dim
        self.encoder = build_encoder(config.arch, image_shape, d, head)
        self.encoder_prime = (self.encoder if config.shared_encoder
                              else build_encoder(config.arch, image_shape, d, head))
        self.critic = CRITICS.get(config.critic).build(d, config.critic_settings())
        self.prior = PRIORS.get(config.prior).build(d, config.prior_params)

    def pair_critic(self) -> nn.Module:
        return self.critic

    def _recognise(self, encoder, x):
        mean, logvar = encoder(x)
        if logvar is None:
            return mean, mean, math.log(self.config.recognition_var)
        return reparameterise(mean, logvar), mean, logvar

    def forward(self, views: torch.Tensor):
        cfg: RPMConfig = self.config  # type: ignore[assignment]
        z, mean, logvar = self._recognise(self.encoder, views[:, 0])
        zp, mean_p, logvar_p = self._recognise(self.encoder_prime, views[:, 1])
        z, zp = z.float(), zp.float()
        scores = self.critic(z, zp)
        i_n = infonce_bound(scores)
        metrics = {"I_N": i_n.detach(), "I_B": batch_marginal_infonce(scores).detach(),
                   "pair_top1": torch.tensor(pair_retrieval_accuracy(scores.detach()))}
        for k, v in {**self.critic.log_params(), **self.prior.log_params()}.items():
            metrics[k] = torch.tensor(v)
        if cfg.prior == "infonce":
            objective = i_n
        else:
            lv = logvar if isinstance(logvar, float) else logvar.float()
            lvp = logvar_p if isinstance(logvar_p, float) else logvar_p.float()
            log_rz = log_empirical_marginal(z, mean.float(), lv)
            log_rzp = log_empirical_marginal(zp, mean_p.float(), lvp)
            ctx = PriorContext(log_rz, log_rzp, scores)
            objective = rpm_elbo(self.prior.log_prob(z, zp, ctx), log_rz, log_rzp)
            metrics["elbo"] = objective.detach()
        metrics["objective"] = objective.detach()
        return -objective, metrics
