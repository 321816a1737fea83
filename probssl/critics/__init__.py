"""Critics f_θ(z, z'), the couplings of the RPM prior. One file each; one registry line."""

from __future__ import annotations

from probssl.critics.base import Critic
from probssl.critics.bilinear import BilinearCritic
from probssl.critics.cosine import CosineCritic
from probssl.critics.dot import DotCritic
from probssl.critics.mlp import MLPCritic
from probssl.critics.rbf import RBFCritic
from probssl.errors import UserError

CRITICS: dict[str, type[Critic]] = {
    "bilinear": BilinearCritic,
    "dot": DotCritic,
    "cosine": CosineCritic,
    "rbf": RBFCritic,
    "mlp": MLPCritic,
}


def build_critic(name: str, dim: int, **kwargs) -> Critic:
    try:
        cls = CRITICS[name]
    except KeyError:
        raise UserError(f"unknown critic {name!r}; choose from {', '.join(CRITICS)}") from None
    return cls(dim, **kwargs)


__all__ = ["CRITICS", "BilinearCritic", "CosineCritic", "Critic", "DotCritic", "MLPCritic",
           "RBFCritic", "build_critic"]
