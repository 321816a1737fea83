r"""The VAE evidence lower bound (Kingma & Welling 2014), per image, in nats.

.. math::
    \mathrm{ELBO}(x) = \mathbb{E}_{q(z|x)}[\log p(x|z)] - \beta\,\mathrm{KL}(q(z|x)\,\|\,N(0, I))

with a diagonal Gaussian q(z|x) = N(mu, diag(exp(logvar))) and either a Gaussian likelihood
p(x|z) = N(x; sigmoid(decoder(z)), sigma_x^2 I) (the SimVAE paper's choice, sigma_x^2 = 0.02)
or a Bernoulli likelihood with logits decoder(z). beta = 1 is the VAE; beta != 1 the beta-VAE.
All terms keep their constants, so the value is the true ELBO (a bound on log p(x) for
beta = 1), reportable in nats per image.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2.0 * math.pi)


def gaussian_kl_to_standard(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, diag e^logvar) || N(0, I)) summed over the last dim: shape (...,). The KL
    term of the ELBO (arXiv:2107.02495v3 Eq. 2) with the prior P(z) = N(0, I)."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


def gaussian_entropy(logvar: torch.Tensor) -> torch.Tensor:
    """Entropy of N(., diag e^logvar) summed over the last dim: 0.5 * sum(log 2 pi e sigma^2),
    the entropy terms H[q(z^j|x^j)] of ELBO_SSL (arXiv:2402.01399 Eq. 4).

        >>> gaussian_entropy(torch.zeros(1, 2))
        tensor([2.8379])
    """
    return 0.5 * (logvar + LOG_2PI + 1.0).sum(-1)


# While set, reparameterise takes its noise from this function of ``mean`` instead of drawing
# it (see :func:`noise_from`).
_noise_source: Callable[[torch.Tensor], torch.Tensor] | None = None


@contextlib.contextmanager
def noise_from(source: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """While active, :func:`reparameterise` uses ``source(mean)`` as its ε instead of drawing
    it. Why: K seeds trained as one batched model (:mod:`probssl.train.parallel`) must give each
    seed the noise its own run would draw, from its own generator, drawn outside ``vmap``
    (whose random ops cannot use per-seed generators) and handed in here.

        >>> with noise_from(torch.ones_like):
        ...     reparameterise(torch.zeros(1, 2), torch.zeros(1, 2))
        tensor([[1., 1.]])
    """
    global _noise_source
    previous, _noise_source = _noise_source, source
    try:
        yield
    finally:
        _noise_source = previous


def reparameterise(mean: torch.Tensor, logvar: torch.Tensor,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """z = mean + sigma * eps, eps ~ N(0, I), sigma = exp(logvar / 2) (the reparameterisation
    trick; ``generator`` draws eps from a stream of its own).

        >>> reparameterise(torch.zeros(4, 2), torch.zeros(4, 2)).shape
        torch.Size([4, 2])
    """
    if _noise_source is not None:  # seeds trained side by side (probssl.train.parallel)
        eps = _noise_source(mean)
    # randn_like without a generator: torch.compile traces it (an explicit generator=None
    # argument breaks the graph); same default stream, same numbers
    elif generator is None:
        eps = torch.randn_like(mean)
    else:
        eps = torch.randn(mean.shape, generator=generator, device=mean.device,
                          dtype=mean.dtype)
    return mean + torch.exp(0.5 * logvar) * eps


def gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, var: float) -> torch.Tensor:
    """log N(x; mean, var I), summed over all but the first dim: shape (N,). The Gaussian
    log p(x|z) of the ELBO's reconstruction term (arXiv:2107.02495v3 Eq. 2).

        >>> gaussian_log_likelihood(torch.zeros(1, 2), torch.zeros(1, 2), 1.0)
        tensor([-1.8379])
    """
    sq = (x - mean).pow(2).flatten(1).sum(1)
    d = x[0].numel()
    return -0.5 * sq / var - 0.5 * d * (math.log(var) + LOG_2PI)


def bernoulli_log_likelihood(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """log Bernoulli(x; sigmoid(logits)), summed over all but the first dim: shape (N,).

    ``x`` may be fractional in [0, 1] (continuous relaxation, as in most VAE code). The
    Bernoulli log p(x|z) of the ELBO's reconstruction term (arXiv:2107.02495v3 Eq. 2).

        >>> bernoulli_log_likelihood(torch.ones(1, 2), torch.zeros(1, 2))
        tensor([-1.3863])
    """
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def log_likelihood(x: torch.Tensor, decoder_out: torch.Tensor, likelihood: str,
                   var: float) -> torch.Tensor:
    """log p(x|z) per image for the decoder's raw output (logits): the reconstruction term of
    the ELBO (arXiv:2107.02495v3 Eq. 2) under the ``gaussian`` (mean sigmoid(logits),
    variance ``var``) or ``bernoulli`` likelihood."""
    if likelihood == "gaussian":
        return gaussian_log_likelihood(x, torch.sigmoid(decoder_out), var)
    if likelihood == "bernoulli":
        return bernoulli_log_likelihood(x, decoder_out)
    raise ValueError(f"unknown likelihood {likelihood!r}")


def vae_elbo(x: torch.Tensor, decoder_out: torch.Tensor, mean: torch.Tensor,
             logvar: torch.Tensor, *, likelihood: str = "gaussian", likelihood_var: float = 0.02,
             beta: float = 1.0) -> dict[str, torch.Tensor]:
    """Per-image ELBO terms (arXiv:2107.02495v3 Eq. 2 with P(z) = N(0, I), the KL weighted by
    ``beta``; one-sample Monte Carlo for the reconstruction term).

    Returns a dict of shape-(N,) tensors: ``elbo`` = ``log_lik`` - beta * ``kl``.
    """
    ll = log_likelihood(x, decoder_out, likelihood, likelihood_var)
    kl = gaussian_kl_to_standard(mean, logvar)
    return {"elbo": ll - beta * kl, "log_lik": ll, "kl": kl}
