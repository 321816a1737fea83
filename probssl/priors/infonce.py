r"""The InfoNCE prior (arXiv:2107.02495v3 Eq. 21-22), built from any critic:

    P(z) = R(z),   P_θ(z' | z) = R(z') f_θ(z, z') / Z(z),   Z(z) = E_{R(z')}[f_θ(z, z')].

Z(z) is estimated with the batch's z' (the empirical marginal), so the RPM ELBO under this
prior is exactly I_B, Eq. 24's I_∞ with that empirical marginal (the R(z) R(z') terms cancel;
:func:`probssl.objectives.infonce.batch_marginal_infonce`).
"""

from __future__ import annotations

import math

import torch

from probssl.priors.base import PriorContext, RPMPrior, register_prior


@register_prior("infonce")
class InfoNCEPrior(RPMPrior):
    """The InfoNCE prior (arXiv:2107.02495v3 Eq. 21-22), built from any critic:
    log P(z, z') = log R(z) + log R(z') + log f(z, z') − log Z(z), with log Z(z) =
    log mean_j f(z, z'_j) over the batch's z', from the critic scores in ``ctx.scores``."""
    def log_prob(self, z, zp, ctx: PriorContext) -> torch.Tensor:
        if ctx.scores is None:
            raise ValueError("the InfoNCE prior needs the critic score matrix")
        b = ctx.scores.shape[1]
        log_z = torch.logsumexp(ctx.scores, dim=1) - math.log(b)
        return ctx.log_rz + ctx.log_rzp + torch.diagonal(ctx.scores) - log_z
