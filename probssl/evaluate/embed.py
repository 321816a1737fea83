"""Embeddings of frozen encoders: computed once, cached in the run directory."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from probssl.data.augment import AugmentConfig, preprocess
from probssl.errors import UserError
from probssl.userio import file_key, load_npz, warn

CACHE_DIR = "embeddings"


@torch.no_grad()
def compute_embeddings(encode: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                       augment_cfg: AugmentConfig | None = None, batch_size: int = 1024,
                       device: str | torch.device = "cpu") -> np.ndarray:
    """``encode`` applied to ``x`` (uint8 or float, (N, C, H, W)) in batches.

    Images go through the deterministic part of the pipeline only (float, resize, binarise):
    no augmentation at evaluation, as in the paper. Any callable mapping a float batch to
    (N, d) works, so this runs on anyone's encoder.
    """
    out = []
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size].to(device)
        xb = preprocess(xb, augment_cfg) if augment_cfg is not None else xb.float()
        out.append(encode(xb).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)


def cache_path(run_dir: str | Path, split: str) -> Path:
    """The embedding cache of a run's ``split`` (``train`` or ``test``):
    ``run_dir/embeddings/SPLIT.npz``."""
    return Path(run_dir) / CACHE_DIR / f"{split}.npz"


def _read_cache(path: Path, n: int, dim: int | None
                ) -> tuple[int, np.ndarray, np.ndarray | None]:
    """(epoch, z, y) of a cache file, checked: keys, shapes, dtypes, and ``n`` rows of ``dim``
    columns (the split it caches). Anything else is a :class:`UserError` saying what."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise UserError(f"embedding cache {path}: cannot read it ({exc.strerror or exc})"
                        ) from None
    if head != b"PK\x03\x04":  # every .npz is a zip archive
        raise UserError(f"embedding cache {path} is not an .npz archive "
                        f"({'empty' if not head else 'no zip header'})")
    f = load_npz(path, "embedding cache")
    missing = [k for k in ("z", "y", "has_labels", "epoch") if k not in f]
    if missing:
        raise UserError(f"embedding cache {path}: missing array '{missing[0]}'")
    z, y, has_labels, epoch = f["z"], f["y"], f["has_labels"], f["epoch"]
    if epoch.shape != () or epoch.dtype.kind not in "iu":
        raise UserError(f"embedding cache {path}: 'epoch' is not an integer")
    if has_labels.shape != () or has_labels.dtype.kind != "b":
        raise UserError(f"embedding cache {path}: 'has_labels' is not a boolean")
    if z.ndim != 2 or z.dtype.kind != "f" or len(z) != n or (dim is not None and
                                                             z.shape[1] != dim):
        raise UserError(f"embedding cache {path}: 'z' has shape {z.shape} ({z.dtype}), "
                        f"expected ({n}, {dim if dim is not None else 'd'}) floats")
    if bool(has_labels) and (y.shape != (n,) or y.dtype.kind not in "iu"):
        raise UserError(f"embedding cache {path}: 'y' has shape {y.shape} ({y.dtype}), "
                        f"expected ({n},) integers")
    return int(epoch), z, (y if bool(has_labels) else None)


def run_embeddings(loaded, split: str, batch_size: int = 1024,
                   device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray | None]:
    """(z, y) of a split for a loaded run, cached as ``RUN/embeddings/SPLIT.npz``.

    The cache is keyed by the checkpoint epoch, so it is recomputed after more training. A
    damaged cache (truncated, not an archive, wrong arrays or shapes) is recomputed and
    replaced, with one warning line; a directory in the cache's place is an error.
    """
    path = cache_path(loaded.run_dir, split)
    x, y = loaded.resolved.data.split(split)
    if path.parent.exists() and not path.parent.is_dir():
        raise UserError(f"embedding cache folder {path.parent} is not a directory; move it "
                        "out of the way")
    if path.exists() and not path.is_file():
        raise UserError(f"embedding cache {path} is a directory, not a file; move it out of "
                        "the way")
    if path.exists():
        dim = getattr(loaded.method.encoder, "latent_dim", None)
        try:
            epoch, z_c, y_c = _read_cache(path, len(x), dim if isinstance(dim, int) else None)
            if epoch == loaded.epoch and (y_c is None) == (y is None):
                return z_c, y_c
        except UserError as exc:
            warn(f"{exc}; recomputing it", key=("embeddings", file_key(path)))
    z = compute_embeddings(loaded.method.encoder.embed, x, loaded.resolved.augment, batch_size,
                           device)
    y_np = y.numpy() if y is not None else None
    tmp = path.with_name(f".{split}.tmp-{os.getpid()}.npz")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(tmp, z=z, y=y_np if y_np is not None else np.zeros(0, np.int64),
                 has_labels=y_np is not None, epoch=loaded.epoch)
        tmp.replace(path)
    except OSError as exc:
        raise UserError(f"cannot write embedding cache {path}: {exc.strerror or exc}"
                        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    return z, y_np
