"""MLP encoder and decoder of the SimVAE paper (Table 3) for 28x28 grey images.

Encoder 784-500-500-2000-out, decoder z-2000-500-500-784, ReLU. Both are plain
``nn.Sequential`` so an exported state_dict loads into a Sequential written in pure PyTorch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

ENCODER_HIDDEN = (500, 500, 2000)
DECODER_HIDDEN = (2000, 500, 500)


def mlp_encoder(in_shape: Sequence[int], out_dim: int,
                hidden: Sequence[int] = ENCODER_HIDDEN) -> nn.Sequential:
    """Flatten -> [Linear, ReLU] * len(hidden) -> Linear(out_dim)."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(in_shape)
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


def mlp_decoder(latent_dim: int, out_shape: Sequence[int],
                hidden: Sequence[int] = DECODER_HIDDEN) -> nn.Sequential:
    """[Linear, ReLU] * len(hidden) -> Linear -> Unflatten(out_shape). Outputs logits."""
    layers: list[nn.Module] = []
    width = latent_dim
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers += [nn.Linear(width, math.prod(out_shape)), nn.Unflatten(1, tuple(out_shape))]
    return nn.Sequential(*layers)


def mlp_encoder_source(in_shape: Sequence[int], out_dim: int,
                       hidden: Sequence[int] = ENCODER_HIDDEN) -> str:
    """Pure-PyTorch source that rebuilds :func:`mlp_encoder` with matching state_dict keys."""
    lines = ["nn.Flatten()"]
    width = math.prod(in_shape)
    for h in hidden:
        lines += [f"nn.Linear({width}, {h})", "nn.ReLU()"]
        width = h
    lines.append(f"nn.Linear({width}, {out_dim})")
    body = ",\n        ".join(lines)
    return ("from torch import nn\n\n\ndef build_encoder() -> nn.Module:\n"
            f"    return nn.Sequential(\n        {body},\n    )\n")
