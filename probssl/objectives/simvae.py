r"""The SimVAE objective (arXiv:2402.01399 Eq. 4 with the prior of Eq. 9; App. A.4).

Model: content y; J views' latents z^j ~ p(z|y) = N(ψ_y, σ²I) independently; x^j ~ p(x|z^j).
With a flat prior on ψ integrated out,

.. math::
    \log p(z^1..z^J) = -\frac{1}{2σ^2}\sum_j |z^j - \bar z|^2
                       - \frac{(J-1)D}{2}\log(2πσ^2) - \frac{D}{2}\log J,
    \qquad \bar z = \frac1J \sum_j z^j

(∫ Π_j N(z^j; ψ, σ²I) dψ; the flat prior on ψ has unit density, which fixes the constant).
The ELBO of the J related samples (Eq. 4) is

.. math::
    \mathrm{ELBO}_{SSL} = \sum_j \mathbb{E}_q[\log p(x^j|z^j)] + \sum_j H[q(z^j|x^j)]
                          + \mathbb{E}_q[\log p(z^1..z^J)]

computed here exactly: one reparameterised sample per view for the two expectations, the
Gaussian entropy in closed form, every constant kept, so it is reportable in nats.

Algorithm 1 of the paper differs from Eq. 4 in two places and we follow Eq. 4: it *subtracts*
the entropy term (printed L_H = ½ Σ log|Σ| is minimised, which would shrink the posterior; the
ELBO adds H = ½ Σ log|Σ| + const, so the minimised term is −½ Σ log|Σ|), and it scales the
squared error by 1/D where a Gaussian likelihood of variance σ_x² = 0.02 weighs it by
1/(2σ_x²) per pixel. :func:`simvae_reference_code_loss` reproduces the authors' released
code instead (SPEC §4) for the ``reference-code`` preset.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from probssl.objectives.vae import LOG_2PI, gaussian_entropy, log_likelihood


def simvae_prior_log_prob(z: torch.Tensor, prior_var: float) -> torch.Tensor:
    """log p(z^1..z^J) of Eq. 9 with its constant; z (B, J, D) -> (B,)."""
    _, j, d = z.shape
    spread = (z - z.mean(dim=1, keepdim=True)).pow(2).sum(dim=(1, 2))
    const = -0.5 * (j - 1) * d * (math.log(prior_var) + LOG_2PI) - 0.5 * d * math.log(j)
    return -0.5 * spread / prior_var + const


def simvae_elbo(x: torch.Tensor, decoder_out: torch.Tensor, mean: torch.Tensor,
                logvar: torch.Tensor, z: torch.Tensor, *, prior_var: float = 0.15,
                likelihood: str = "gaussian", likelihood_var: float = 0.02
                ) -> dict[str, torch.Tensor]:
    """Per-sample ELBO_SSL terms (arXiv:2402.01399 Eq. 4 with the prior of Eq. 9);
    x (B, J, C, H, W), decoder_out like x, mean/logvar/z (B, J, D).

    Returns shape-(B,) tensors: ``elbo`` = ``log_lik`` + ``entropy`` + ``log_prior`` (each
    summed over the J views).
    """
    b, j = x.shape[:2]
    ll = log_likelihood(x.flatten(0, 1), decoder_out.flatten(0, 1), likelihood,
                        likelihood_var).view(b, j).sum(1)
    ent = gaussian_entropy(logvar).sum(1)
    lp = simvae_prior_log_prob(z, prior_var)
    return {"elbo": ll + ent + lp, "log_lik": ll, "entropy": ent, "log_prior": lp}


def simvae_reference_code_loss(x: torch.Tensor, decoder_out: torch.Tensor,
                               logvar: torch.Tensor, z: torch.Tensor, *, prior_var: float,
                               likelihood: str, log_var_x: float = -4.6
                               ) -> dict[str, torch.Tensor]:
    """The loss of the authors' released code, per sample (B,), terms as that code has them:

    * reconstruction: Bernoulli cross-entropy (``likelihood="bernoulli"``) or ½ squared error,
      summed over pixels and views, then divided by exp(log_var_x) (−4.6 -> σ_x² ≈ 0.01);
    * "entropy": 0.5 Σ 2π·log σ² (not the Gaussian entropy ½ Σ (log 2πe σ²)); subtracted;
    * prior on the *sampled* z with z̄ not detached: ½ Σ_j |z^j − z̄|²/σ² + ½ |z̄|² (the last
      term a Gaussian p(y)).

    The released code sums this over the batch (so Adam, with eps 1e-4, sees a summed loss).

        >>> x, code = torch.rand(3, 2, 1, 4, 4), torch.zeros(3, 2, 5)
        >>> terms = simvae_reference_code_loss(x, torch.zeros_like(x), code, code,
        ...                                    prior_var=0.15, likelihood="gaussian")
        >>> terms["loss"].shape
        torch.Size([3])
    """
    if likelihood == "bernoulli":
        rec = F.binary_cross_entropy(torch.sigmoid(decoder_out).clamp(1e-7, 1 - 1e-7), x,
                                     reduction="none")
    elif likelihood == "gaussian":
        rec = 0.5 * (torch.sigmoid(decoder_out) - x).pow(2)
    else:
        raise ValueError(f"unknown likelihood {likelihood!r}")
    rec = rec.flatten(1).sum(1) / math.exp(log_var_x)
    code_entropy = 0.5 * (2 * math.pi * logvar).sum(dim=(1, 2))
    zbar = z.mean(dim=1, keepdim=True)
    prior = 0.5 * (z - zbar).pow(2).sum(dim=(1, 2)) / prior_var + 0.5 * zbar.pow(2).sum((1, 2))
    return {"loss": rec - code_entropy + prior, "recon": rec, "code_entropy": code_entropy,
            "prior": prior}
