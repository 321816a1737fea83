"""Priors P_θ(z, z') for the RPM ELBO: one file each, registered in it with
``@register_prior`` (see :mod:`probssl.registry`; plugins add their own the same way).

Each prior returns log P_θ(z_i, z'_i) for the batch's aligned pairs, given the batch context
(the critic scores and the recognition marginals it may be built from).
"""

from __future__ import annotations

from probssl.priors import gaussian_dynamics, independent, infonce  # noqa: F401 - registers
from probssl.priors.base import PRIORS, PriorContext, RPMPrior, build_prior, register_prior
from probssl.priors.gaussian_dynamics import GaussianDynamicsPrior
from probssl.priors.independent import IndependentPrior
from probssl.priors.infonce import InfoNCEPrior

__all__ = ["PRIORS", "GaussianDynamicsPrior", "IndependentPrior", "InfoNCEPrior",
           "PriorContext", "RPMPrior", "build_prior", "register_prior"]
