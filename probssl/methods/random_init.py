"""``random``: the method's encoder left at its random initialisation (the lower bound).

Nothing is trained; the trainer records the initial weights so the encoder can be evaluated
exactly like a trained one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from probssl.errors import UserError
from probssl.methods.base import Method, MethodConfig, register_method
from probssl.nn import build_encoder


@dataclass
class RandomConfig(MethodConfig):
    head: str = "gaussian"

    def validate(self) -> None:
        if self.head not in ("gaussian", "deterministic"):
            raise UserError(f"head must be 'gaussian' or 'deterministic'; got {self.head!r}")


@register_method("random", config=RandomConfig,
                 description="untrained encoder of the same architecture (lower bound)")
class RandomEncoder(Method):
    """``random`` (module docstring): the encoder at its random initialisation, never trained
    (``trainable = False``), the lower bound of every comparison."""
    trainable = False

    def __init__(self, config: RandomConfig, image_shape: tuple[int, int, int]):
        super().__init__(config)
        self.encoder = build_encoder(config.arch, image_shape, config.latent_dim, config.head)

    def forward(self, views: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise RuntimeError("the random encoder is not trained")
