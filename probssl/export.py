"""Export a run's encoder as a plain state_dict plus pure-PyTorch code that rebuilds it."""

from __future__ import annotations

import inspect
from pathlib import Path

import torch

from probssl.nn import resnet
from probssl.nn.mlp import mlp_encoder_source


def encoder_source(arch: str, in_shape, out_dim: int, latent_dim: int) -> str:
    """A standalone Python file (torch only) defining ``build_encoder()``."""
    note = (f'"""Rebuilds the exported probssl encoder in pure PyTorch.\n\n'
            f"    import torch\n    net = build_encoder()\n"
            f"    net.load_state_dict(torch.load('encoder.pt', weights_only=True))\n"
            f"    z = net(x)[:, :{latent_dim}]  # representation: the posterior mean\n\n"
            f"Input: float images in [0, 1] of shape (N, {', '.join(map(str, in_shape))}), "
            f"preprocessed as in training (e.g. binarised for MNIST).\n"
            f"Output: {out_dim} numbers per image; the first {latent_dim} are the "
            f"representation{' (the rest: posterior log-variance)' if out_dim > latent_dim else ''}"
            '.\n"""\n\n')
    if arch == "mlp":
        return note + mlp_encoder_source(in_shape, out_dim)
    body = inspect.getsource(resnet).split('"""', 2)[2]  # drop resnet's module docstring
    return (note + body.lstrip() + "\n\ndef build_encoder() -> nn.Module:\n"
            f"    return ResNetEncoder({tuple(in_shape)}, {out_dim})\n")


def export_encoder(loaded, out: str | Path) -> tuple[Path, Path]:
    """Write ``out`` (state_dict of the encoder network) and ``out`` with suffix ``.py``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    enc = loaded.method.encoder
    cfg = loaded.resolved.method
    state = {k: v.detach().cpu() for k, v in enc.net.state_dict().items()}
    torch.save(state, out)
    src = out.with_suffix(".py")
    src.write_text(encoder_source(cfg.arch, loaded.resolved.data.image_shape, enc.out_dim,
                                  enc.latent_dim))
    return out, src
