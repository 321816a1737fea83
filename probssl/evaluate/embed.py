"""Embeddings of frozen encoders: computed once, cached in the run directory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from probssl.data.augment import AugmentConfig, preprocess


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


def run_embeddings(loaded, split: str, batch_size: int = 1024,
                   device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray | None]:
    """(z, y) of a split for a loaded run, cached as ``RUN/embeddings/SPLIT.npz``.

    The cache is keyed by the checkpoint epoch, so it is recomputed after more training.
    """
    path = Path(loaded.run_dir) / "embeddings" / f"{split}.npz"
    if path.is_file():
        try:
            with np.load(path) as f:
                if int(f["epoch"]) == loaded.epoch:
                    y = f["y"] if f["has_labels"] else None
                    return f["z"], y
        except (OSError, KeyError, ValueError):
            pass  # damaged cache: recompute
    x, y = loaded.resolved.data.split(split)
    z = compute_embeddings(loaded.method.encoder.embed, x, loaded.resolved.augment, batch_size,
                           device)
    y_np = y.numpy() if y is not None else None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{split}.tmp.npz")
    np.savez(tmp, z=z, y=y_np if y_np is not None else np.zeros(0, np.int64),
             has_labels=y_np is not None, epoch=loaded.epoch)
    tmp.replace(path)
    return z, y_np
