"""Methods by name. Adding one = one new file + one line in ``METHODS``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from probssl.config import build_dataclass
from probssl.errors import UserError
from probssl.methods.base import Method, MethodConfig
from probssl.methods.cr_vae import CRVAE, CRVAEConfig
from probssl.methods.moco import MoCo, MoCoConfig
from probssl.methods.random_init import RandomConfig, RandomEncoder
from probssl.methods.rpm import RPM, RPMConfig
from probssl.methods.simclr import SimCLR, SimCLRConfig
from probssl.methods.simvae import SimVAE, SimVAEConfig
from probssl.methods.vae import VAE, VAEConfig
from probssl.methods.vicreg import VICReg, VICRegConfig


@dataclass(frozen=True)
class MethodSpec:
    name: str
    config_cls: type[MethodConfig]
    build: Callable[[Any, tuple[int, int, int]], Method]
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)


METHODS: dict[str, MethodSpec] = {
    "vae": MethodSpec("vae", VAEConfig, VAE, "VAE, N(0, I) prior (Kingma & Welling 2014)"),
    "beta-vae": MethodSpec("beta-vae", VAEConfig, VAE, "beta-VAE (Higgins et al. 2017)",
                           {"beta": 4.0}),
    "cr-vae": MethodSpec("cr-vae", CRVAEConfig, CRVAE,
                         "VAE + consistency KL(q(z|t(x)) || q(z|x)) (Sinha & Dieng 2021)"),
    "simvae": MethodSpec("simvae", SimVAEConfig, SimVAE,
                         "SimVAE: VAE with a prior tying J views (Bizeul et al. 2024)"),
    "simclr": MethodSpec("simclr", SimCLRConfig, SimCLR, "SimCLR, NT-Xent (Chen et al. 2020)"),
    "moco": MethodSpec("moco", MoCoConfig, MoCo, "MoCo v2: momentum encoder + queue (He et al.)"),
    "vicreg": MethodSpec("vicreg", VICRegConfig, VICReg, "VICReg (Bardes et al. 2022)"),
    "rpm": MethodSpec("rpm", RPMConfig, RPM,
                      "recognition-parameterised model: InfoNCE as an ELBO (Aitchison & Walker)"),
    "random": MethodSpec("random", RandomConfig, RandomEncoder,
                         "untrained encoder of the same architecture (lower bound)"),
}


def get_method_spec(name: str) -> MethodSpec:
    try:
        return METHODS[name]
    except KeyError:
        raise UserError(f"unknown method {name!r}; choose from {', '.join(METHODS)}") from None


def make_method_config(name: str, params: dict[str, Any], *, arch: str,
                       latent_dim: int) -> MethodConfig:
    """The method's validated config: its defaults, then ``params``; dataset defaults fill
    ``arch``/``latent_dim`` when left unset."""
    spec = get_method_spec(name)
    values = {**spec.defaults, **params}
    cfg = build_dataclass(spec.config_cls, values, f"params for method '{name}'")
    if cfg.arch is None:
        cfg.arch = arch
    if cfg.latent_dim is None:
        cfg.latent_dim = latent_dim
    return cfg


def is_trainable(name: str) -> bool:
    """False for methods that are evaluated as initialised (``random``)."""
    return bool(getattr(get_method_spec(name).build, "trainable", True))


def build_method(name: str, config: MethodConfig, image_shape: tuple[int, int, int]) -> Method:
    return get_method_spec(name).build(config, image_shape)


__all__ = ["METHODS", "Method", "MethodConfig", "MethodSpec", "build_method",
           "get_method_spec", "is_trainable", "make_method_config"]
