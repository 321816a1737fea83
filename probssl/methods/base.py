"""What a method is: networks + an objective, behind one ``forward(views)``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from probssl.errors import UserError
from probssl.nn import ARCHITECTURES, Encoder
from probssl.presets import PresetLayer
from probssl.registry import Registry, decorator
from probssl.schema import build_dataclass, check_types, nest_dotted


@dataclass
class MethodConfig:
    """Fields shared by every method. ``None`` means "the dataset's default"."""

    arch: str | None = None  # "mlp" or "resnet"
    latent_dim: int | None = None
    n_views: int = 1  # J, views of each image per step

    def __post_init__(self) -> None:
        check_types(self, "params")
        if self.arch is not None and self.arch not in ARCHITECTURES:
            raise UserError(f"unknown architecture {self.arch!r}; choose from "
                            f"{', '.join(ARCHITECTURES)}")
        if self.latent_dim is not None and self.latent_dim < 1:
            raise UserError(f"latent_dim must be >= 1; got {self.latent_dim}")
        if self.n_views < 1:
            raise UserError(f"n_views must be >= 1; got {self.n_views}")
        self.validate()

    def validate(self) -> None:
        """Method-specific checks; raise UserError naming the bad field."""


class Method(nn.Module):
    """A trainable method. Subclasses own their networks and call a pure objective.

    ``forward(views)`` takes a float batch (B, J, C, H, W) and returns the scalar loss to
    minimise and a dict of scalar tensors to log (e.g. the ELBO in nats per image).
    """

    encoder: Encoder
    trainable: bool = True

    def __init__(self, config: MethodConfig):
        super().__init__()
        self.config = config

    @property
    def n_views(self) -> int:
        return self.config.n_views

    def forward(self, views: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def after_step(self) -> None:
        """Called by the trainer after every optimiser step (e.g. MoCo's momentum update)."""

    # What evaluation may ask of a method (instead of probing attributes): a decoder turns
    # latents into images (reconstructions, samples, FID); a critic scores pairs.
    def image_decoder(self) -> nn.Module | None:
        """The network mapping latents to images, if the method has one."""
        return None

    def pair_critic(self) -> nn.Module | None:
        """The critic f(z, z') of an RPM-style method, if it has one."""
        return None

    def likelihood_model(self) -> tuple[nn.Module, nn.Module, str, float] | None:
        """(Gaussian encoder, decoder, likelihood, likelihood variance) of a method that is a
        density model of single images with the N(0, I) prior, so that a held-out ELBO and an
        importance-weighted log-likelihood mean something; None otherwise (SimVAE's prior
        over J views has a flat p(y): one image has no proper marginal likelihood)."""
        return None


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: its config class, its builder (usually the Method subclass), a
    one-line description, default params, and its presets (``{"paper": layer, ...}``; see
    :mod:`probssl.presets` for how layers combine)."""

    name: str
    config_cls: type[MethodConfig]
    build: Callable[[Any, tuple[int, int, int]], Method]
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)
    presets: dict[str, PresetLayer] = field(default_factory=dict)

    @property
    def trainable(self) -> bool:
        return bool(getattr(self.build, "trainable", True))


METHODS: Registry[MethodSpec] = Registry("method")


def _method_spec(name: str, build, *, config: type[MethodConfig], description: str,
                 defaults: dict[str, Any] | None = None,
                 presets: dict[str, PresetLayer] | None = None) -> MethodSpec:
    return MethodSpec(name, config, build, description, dict(defaults or {}),
                      dict(presets or {}))


register_method = decorator(METHODS, _method_spec)
register_method.__doc__ = """``@register_method(name, config=..., description=..., defaults=...,
presets=...)`` on a :class:`Method` subclass (or any builder ``(config, image_shape) ->
Method``): the method is then trainable by name (``probssl train --method name``)."""


def get_method_spec(name: str) -> MethodSpec:
    """The registered :class:`MethodSpec` called ``name``; an unknown name is a :class:`UserError`
    listing the methods."""
    return METHODS.get(name)


def make_method_config(name: str, params: dict[str, Any], *, arch: str,
                       latent_dim: int) -> MethodConfig:
    """The method's validated config: its defaults, then ``params`` (dotted keys such as
    ``critic.hidden`` address nested settings); dataset defaults fill ``arch``/``latent_dim``
    when left unset."""
    spec = get_method_spec(name)
    where = f"params for method '{name}'"
    values = nest_dotted({**spec.defaults, **params}, spec.config_cls, where)
    cfg = build_dataclass(spec.config_cls, values, where)
    if cfg.arch is None:
        cfg.arch = arch
    if cfg.latent_dim is None:
        cfg.latent_dim = latent_dim
    return cfg


def is_trainable(name: str) -> bool:
    """False for methods that are evaluated as initialised (``random``)."""
    return get_method_spec(name).trainable


def build_method(name: str, config: MethodConfig, image_shape: tuple[int, int, int]) -> Method:
    """The method ``name`` built from its validated ``config`` (:func:`make_method_config`) for
    images of ``image_shape`` (C, H, W)."""
    return get_method_spec(name).build(config, image_shape)
