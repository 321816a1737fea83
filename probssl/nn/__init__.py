"""Encoders, decoders and heads."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from probssl.errors import UserError
from probssl.nn.heads import Encoder
from probssl.nn.mlp import mlp_decoder, mlp_encoder
from probssl.nn.resnet import ResNetDecoder, ResNetEncoder

ARCHITECTURES = ("mlp", "resnet")


def build_backbone(arch: str, in_shape: Sequence[int], out_dim: int) -> nn.Module:
    """The network of architecture ``arch`` (``mlp`` or ``resnet``) mapping images of
    ``in_shape`` (C, H, W) to ``out_dim`` numbers; an unknown ``arch`` is a :class:`UserError`."""
    if arch == "mlp":
        return mlp_encoder(in_shape, out_dim)
    if arch == "resnet":
        return ResNetEncoder(in_shape, out_dim)
    raise UserError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHITECTURES)}")


def build_encoder(arch: str, in_shape: Sequence[int], latent_dim: int,
                  head: str = "gaussian") -> Encoder:
    """An :class:`Encoder` of architecture ``arch``: its backbone has 2·``latent_dim`` outputs,
    read as (mean, log-variance), for ``head="gaussian"``, or ``latent_dim`` outputs (the code
    itself) for ``head="deterministic"``."""
    out = 2 * latent_dim if head == "gaussian" else latent_dim
    return Encoder(build_backbone(arch, in_shape, out), latent_dim, head)


def build_decoder(arch: str, latent_dim: int, out_shape: Sequence[int]) -> nn.Module:
    """The decoder of architecture ``arch``: (N, ``latent_dim``) codes -> (N, C, H, W) logits,
    ``out_shape`` = (C, H, W) (the objectives apply the sigmoid)."""
    if arch == "mlp":
        return mlp_decoder(latent_dim, out_shape)
    if arch == "resnet":
        return ResNetDecoder(latent_dim, out_shape)
    raise UserError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHITECTURES)}")


__all__ = ["ARCHITECTURES", "Encoder", "ResNetDecoder", "ResNetEncoder", "build_backbone",
           "build_decoder", "build_encoder", "mlp_decoder", "mlp_encoder"]
