"""Loss functions as plain functions of tensors, one file per objective."""

from probssl.objectives.vae import (
    bernoulli_log_likelihood,
    gaussian_entropy,
    gaussian_kl_to_standard,
    gaussian_log_likelihood,
    log_likelihood,
    reparameterise,
    vae_elbo,
)

__all__ = ["bernoulli_log_likelihood", "gaussian_entropy", "gaussian_kl_to_standard",
           "gaussian_log_likelihood", "log_likelihood", "reparameterise", "vae_elbo"]
