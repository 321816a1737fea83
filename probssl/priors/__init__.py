"""Priors P_θ(z, z') for the RPM ELBO. One file each; one registry line.

Each prior returns log P_θ(z_i, z'_i) for the batch's aligned pairs, given the batch context
(the critic scores and the recognition marginals it may be built from).
"""

from __future__ import annotations

from probssl.errors import UserError
from probssl.priors.base import PriorContext, RPMPrior
from probssl.priors.gaussian_dynamics import GaussianDynamicsPrior
from probssl.priors.independent import IndependentPrior
from probssl.priors.infonce import InfoNCEPrior

PRIORS: dict[str, type[RPMPrior]] = {
    "infonce": InfoNCEPrior,
    "gaussian-dynamics": GaussianDynamicsPrior,
    "independent": IndependentPrior,
}


def prior_class(name: str) -> type[RPMPrior]:
    try:
        return PRIORS[name]
    except KeyError:
        raise UserError(f"unknown prior {name!r}; choose from {', '.join(PRIORS)}") from None


__all__ = ["PRIORS", "GaussianDynamicsPrior", "IndependentPrior", "InfoNCEPrior",
           "PriorContext", "RPMPrior", "prior_class"]
