"""The independent prior P(z, z') = R(z) R(z'): no coupling, so the RPM ELBO is exactly the
data constant (0 here) whatever the encoder — the MI = 0 check of Eq. 18."""

from __future__ import annotations

from probssl.priors.base import PriorContext, RPMPrior, register_prior


@register_prior("independent")
class IndependentPrior(RPMPrior):
    """The independent prior P(z, z') = R(z) R(z'): no coupling, so the RPM ELBO is exactly the
    data constant (0 here) whatever the encoder, the MI = 0 case of arXiv:2107.02495v3 Eq. 18:
    ``log_prob`` is ``ctx.log_rz + ctx.log_rzp``."""
    def log_prob(self, z, zp, ctx: PriorContext):
        return ctx.log_rz + ctx.log_rzp
