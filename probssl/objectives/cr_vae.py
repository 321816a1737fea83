r"""The CR-VAE consistency regulariser (Sinha & Dieng 2021).

For an image x and a transformed view t(x), both encoded by the same Gaussian encoder:

.. math::
    \mathcal{L} = \mathrm{ELBO}(x) + \mathrm{ELBO}(t(x))
                  - λ\,\mathrm{KL}\big(q(z|t(x))\,\|\,q(z|x)\big)

(maximised), the KL summed over latent dimensions; λ = 0.1 in the SimVAE paper's baseline,
1e-3 in the CR-VAE code.
"""

from __future__ import annotations

import torch


def gaussian_kl(mean_a: torch.Tensor, logvar_a: torch.Tensor, mean_b: torch.Tensor,
                logvar_b: torch.Tensor) -> torch.Tensor:
    """KL(N(mean_a, e^logvar_a) || N(mean_b, e^logvar_b)), diagonal, summed over the last dim.

        >>> gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2, 3), torch.zeros(2, 3))
        tensor([1.5000, 1.5000])
    """
    return 0.5 * (logvar_b - logvar_a + (logvar_a.exp() + (mean_a - mean_b).pow(2))
                  / logvar_b.exp() - 1.0).sum(-1)


def cr_vae_objective(elbo_x: torch.Tensor, elbo_tx: torch.Tensor, mean_x: torch.Tensor,
                     logvar_x: torch.Tensor, mean_tx: torch.Tensor, logvar_tx: torch.Tensor,
                     weight: float) -> dict[str, torch.Tensor]:
    """Per-image terms (N,): ``objective`` = elbo_x + elbo_tx − weight · ``consistency``,
    the module docstring's objective with ``consistency`` = KL(q(z|t(x)) ‖ q(z|x)).

        >>> m, lv = torch.zeros(1, 2), torch.zeros(1, 2)
        >>> out = cr_vae_objective(torch.tensor([-10.0]), torch.tensor([-12.0]), m, lv, m + 1, lv,
        ...                        weight=0.1)
        >>> out["consistency"], out["objective"]
        (tensor([1.]), tensor([-22.1000]))
    """
    kl = gaussian_kl(mean_tx, logvar_tx, mean_x, logvar_x)
    return {"objective": elbo_x + elbo_tx - weight * kl, "consistency": kl}
