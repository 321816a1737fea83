"""Held-out ELBO and importance-weighted log-likelihood (nats per image) of a VAE-type model.

For an image x, a Gaussian encoder q(z|x), a decoder p(x|z) and the prior p(z) = N(0, I):

    ELBO(x)    = E_q[log p(x|z)] − KL(q(z|x) ‖ p(z))          (one-sample reconstruction term)
    log p̂_K(x) = log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x),   z_k ~ q(z|x)   (Burda et al. 2016)

log p̂_K is a lower bound on log p(x) that tightens as K grows (the number VAE papers call NLL
when negated; pythae reports it). Both are for the data as the model sees it (e.g. MNIST
binarised) under the model's own likelihood: a Gaussian likelihood with a fixed variance gives
a density, not a probability, so its numbers compare only between runs of the same likelihood
and variance.
"""

from __future__ import annotations

import math

import torch

from probssl.objectives.vae import LOG_2PI, gaussian_kl_to_standard, log_likelihood

IWAE_SAMPLES = 100  # K; recorded with every result


def run_likelihood(loaded, seed: int = 0) -> dict[str, float] | None:
    """:func:`heldout_likelihood` of a loaded run on its test split (preprocessed as in
    training), or None when its method is not a density model of single images
    (``Method.likelihood_model()``)."""
    from probssl.data.augment import preprocess  # lazy: keeps this module light

    model = loaded.method.likelihood_model()
    if model is None:
        return None
    x_test = preprocess(loaded.resolved.data.x_test, loaded.resolved.augment)
    return heldout_likelihood(*model, x_test, seed=seed)


@torch.no_grad()
def heldout_likelihood(encoder: torch.nn.Module, decoder: torch.nn.Module, likelihood: str,
                       likelihood_var: float, x: torch.Tensor, k: int = IWAE_SAMPLES,
                       batch_size: int = 64, seed: int = 0) -> dict[str, float]:
    """Mean held-out ELBO and log p̂_K over the float images ``x`` (N, C, H, W), in nats; the
    first four arguments are what ``Method.likelihood_model()`` returns."""
    gen = torch.Generator(device=x.device).manual_seed(seed)
    elbos, iwaes = [], []
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size]
        mean, logvar = (t.float() for t in encoder(xb))
        std = (0.5 * logvar).exp()
        eps = torch.randn((k, *mean.shape), generator=gen, device=x.device)
        z = mean + std * eps  # (K, B, D)
        out = decoder(z.flatten(0, 1)).float()
        ll = log_likelihood(xb.repeat(k, *([1] * (xb.ndim - 1))), out, likelihood,
                            likelihood_var).view(k, len(xb))
        d = mean.shape[-1]
        log_prior = -0.5 * (z.pow(2).sum(-1) + d * LOG_2PI)
        log_q = -0.5 * (eps.pow(2).sum(-1) + logvar.sum(-1) + d * LOG_2PI)
        iwaes.append(torch.logsumexp(ll + log_prior - log_q, dim=0) - math.log(k))
        elbos.append(ll[0] - gaussian_kl_to_standard(mean, logvar))
    return {"elbo": float(torch.cat(elbos).mean()), "iwae": float(torch.cat(iwaes).mean()),
            "k": k, "likelihood": likelihood, "likelihood_var": likelihood_var,
            "n": len(x)}
