"""Critics f_θ(z, z'), the couplings of the RPM prior: one file each, registered in it with
``@register_critic`` (see :mod:`probssl.registry`; plugins add their own the same way)."""

from __future__ import annotations

from probssl.critics import bilinear, cosine, dot, mlp, rbf, ring  # noqa: F401 - registers them
from probssl.critics.base import CRITICS, Critic, build_critic, register_critic
from probssl.critics.bilinear import BilinearCritic
from probssl.critics.cosine import CosineCritic
from probssl.critics.dot import DotCritic
from probssl.critics.mlp import MLPCritic
from probssl.critics.rbf import RBFCritic
from probssl.critics.ring import RingCritic

__all__ = ["CRITICS", "BilinearCritic", "CosineCritic", "Critic", "DotCritic", "MLPCritic",
           "RBFCritic", "RingCritic", "build_critic", "register_critic"]
