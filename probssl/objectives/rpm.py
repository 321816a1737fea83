r"""The RPM ELBO (arXiv:2107.02495v3 Sec. 4) as plain functions of tensors.

With the approximate posterior set to the recognition model (Eq. 14), the ELBO per pair is
(Eq. 15-16)

    L = const + E_{R(z|x) R(z'|x')}[ log P_θ(z, z') − log R(z) − log R(z') ].

R(z) is the recognition marginal. With the empirical marginal (App. A.1, Eq. 29 / 37) it is
the mixture (1/N) Σ_n R_φ(z | x_n) over the batch: :func:`log_empirical_marginal`. When the
marginals are known in closed form (the "true marginal RPM", App. A.2) pass them directly.

The general ELBO of Eq. 12 with a separate approximate posterior Q_ψ(z, z' | x, x')
(Walker et al. 2023) is :func:`rpm_elbo_general`; Eq. 15 is its special case Q = R_φ R_φ.
"""

from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2 * math.pi)


def diag_gaussian_log_prob(z: torch.Tensor, mean: torch.Tensor,
                           logvar: torch.Tensor | float) -> torch.Tensor:
    """log N(z; mean, diag exp(logvar)) summed over the last dim (broadcasting), e.g. the
    Gaussian recognition densities R_φ(z|x) whose mixture is the marginal R(z) (Eq. 29/37).

        >>> diag_gaussian_log_prob(torch.zeros(2), torch.zeros(2), 0.0)
        tensor(-1.8379)
    """
    logvar = torch.as_tensor(logvar, dtype=z.dtype, device=z.device)
    return -0.5 * (((z - mean) ** 2) * torch.exp(-logvar) + logvar + LOG_2PI).sum(-1)


def log_empirical_marginal(z: torch.Tensor, means: torch.Tensor,
                           logvars: torch.Tensor | float) -> torch.Tensor:
    """log R(z_k) = log (1/N) Σ_n N(z_k; μ_n, diag σ_n²) (Eq. 29/37), shape (K,).

    ``z`` (K, d) are points, ``means``/``logvars`` (N, d) the recognition Gaussians of the
    batch (``logvars`` may be a scalar: a fixed recognition variance ε = exp(logvar)).
    """
    if not isinstance(logvars, torch.Tensor) or logvars.dim() == 0:
        logvars_b = torch.as_tensor(logvars, dtype=z.dtype, device=z.device)
    else:
        logvars_b = logvars.unsqueeze(0)
    comp = diag_gaussian_log_prob(z.unsqueeze(1), means.unsqueeze(0), logvars_b)  # (K, N)
    return torch.logsumexp(comp, dim=1) - math.log(means.shape[0])


def rpm_elbo(log_prior: torch.Tensor, log_rz: torch.Tensor,
             log_rzp: torch.Tensor) -> torch.Tensor:
    """Eq. 15/16 Monte-Carlo estimate (without its data constant) from per-sample terms:
    mean of log P_θ(z, z') − log R(z) − log R(z')."""
    return (log_prior - log_rz - log_rzp).mean()


def rpm_elbo_general(log_prior: torch.Tensor, log_rz: torch.Tensor, log_rzp: torch.Tensor,
                     log_recog: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """Eq. 12 with samples (z, z') ~ Q_ψ(z, z' | x, x'):
    mean of log P_θ − log R(z) − log R(z') + log R_φ(z|x) R_φ(z'|x') − log Q_ψ.
    With Q = R_φ R_φ the last two terms cancel and this is :func:`rpm_elbo`."""
    return (log_prior - log_rz - log_rzp + log_recog - log_q).mean()
