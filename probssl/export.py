"""Export a run's encoder: its weights as a state_dict (``.pt``) or safetensors file plus
pure-PyTorch code that rebuilds the network, or a self-contained ``torch.export`` program.

Every format loads without unpickling code: ``torch.load(..., weights_only=True)``,
``safetensors.torch.load_file`` or ``torch.export.load``."""

from __future__ import annotations

import inspect
from pathlib import Path

import torch

from probssl.errors import UserError
from probssl.nn import resnet
from probssl.nn.mlp import mlp_encoder_source

FORMATS = ("state_dict", "safetensors", "torch-export")
SUFFIX = {"state_dict": ".pt", "safetensors": ".safetensors", "torch-export": ".pt2"}


def _load_line(weights: str) -> str:
    if weights.endswith(".safetensors"):
        return ("    from safetensors.torch import load_file\n"
                f"    net.load_state_dict(load_file('{weights}'))\n")
    return f"    net.load_state_dict(torch.load('{weights}', weights_only=True))\n"


def encoder_source(arch: str, in_shape, out_dim: int, latent_dim: int,
                   weights: str = "encoder.pt") -> str:
    """A standalone Python file (torch only) defining ``build_encoder()``; its docstring
    loads ``weights`` (a state_dict ``.pt`` or a ``.safetensors`` file)."""
    note = ('"""Rebuilds the exported probssl encoder in pure PyTorch.\n\n'
            "    import torch\n    net = build_encoder()\n"
            + _load_line(weights) +
            f"    z = net(x)[:, :{latent_dim}]  # representation: the posterior mean\n\n"
            f"Input: float images in [0, 1] of shape (N, {', '.join(map(str, in_shape))}), "
            f"preprocessed as in training (e.g. binarised for MNIST).\n"
            f"Output: {out_dim} numbers per image; the first {latent_dim} are the "
            f"representation{' (the rest: posterior log-variance)' if out_dim > latent_dim else ''}"
            '.\n"""\n\n')
    tail = f"\n\nLATENT_DIM = {latent_dim}  # the representation: the first LATENT_DIM outputs\n"
    if arch == "mlp":
        return note + mlp_encoder_source(in_shape, out_dim).rstrip("\n") + tail
    body = inspect.getsource(resnet).split('"""', 2)[2]  # drop resnet's module docstring
    return (note + body.lstrip() + "\n\ndef build_encoder() -> nn.Module:\n"
            f"    return ResNetEncoder({tuple(in_shape)}, {out_dim})" + tail)


def export_encoder(loaded, out: str | Path, fmt: str = "state_dict"
                   ) -> tuple[Path, Path | None]:
    """Write the encoder network to ``out`` in ``fmt`` (one of :data:`FORMATS`) and, for the
    weight formats, ``out`` with suffix ``.py`` (the code that rebuilds it); returns both
    paths (the second None for ``torch-export``, whose file holds the program itself)."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: choose from {', '.join(FORMATS)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    enc = loaded.method.encoder
    cfg = loaded.resolved.method
    net = enc.net.eval()
    if fmt == "torch-export":
        example = torch.zeros(2, *loaded.resolved.data.image_shape)
        # the batch size is left free: the program accepts any N >= 2 (N = 1 with batch norm
        # in eval mode works too, but torch.export specialises a size of 1)
        batch = torch.export.Dim("batch", min=2)
        program = torch.export.export(net, (example,), dynamic_shapes=({0: batch},))
        torch.export.save(program, out)
        return out, None
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    if fmt == "safetensors":
        try:
            from safetensors.torch import save_file  # noqa: PLC0415 - an optional extra
        except ImportError:
            raise UserError("--format safetensors needs the safetensors package: pip install "
                            "'probssl[safetensors]'") from None
        save_file(state, str(out))
    else:
        torch.save(state, out)
    src = out.with_suffix(".py")
    src.write_text(encoder_source(cfg.arch, loaded.resolved.data.image_shape, enc.out_dim,
                                  enc.latent_dim, weights=out.name))
    return out, src
