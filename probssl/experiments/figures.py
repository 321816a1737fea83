"""Image grids: reconstructions of several runs side by side (arXiv:2402.01399 Fig. 2) and
class-conditional samples (Fig. 3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure  # no pyplot: no GUI backend chosen, none needed

from probssl.data.augment import preprocess
from probssl.errors import UserError
from probssl.evaluate.generate import frozen_decoder, reconstruct
from probssl.runs.format import load_run


def _show(img: torch.Tensor) -> np.ndarray:
    img = img.clamp(0, 1).cpu()
    return img[0].numpy() if img.shape[0] == 1 else img.permute(1, 2, 0).numpy()


def reconstruction_figure(run_dirs: list[str | Path], out: str | Path, n: int = 8,
                          seed: int = 0, data_dir: str | None = None) -> Path:
    """Row 1: ``n`` test images (the same for every run, chosen by ``seed``); one row per run
    below: its reconstructions. Every run must be on the same dataset."""
    if not run_dirs:
        raise UserError("figure reconstructions needs at least one run")
    runs = [load_run(r, data_dir=data_dir) for r in run_dirs]
    names = {r.resolved.data.name for r in runs}
    if len(names) > 1:
        raise UserError(f"runs are on different datasets: {', '.join(sorted(names))}")
    x_test = runs[0].resolved.data.x_test
    n = min(n, len(x_test))
    idx = torch.randperm(len(x_test), generator=torch.Generator().manual_seed(seed))[:n]
    rows = [("original", preprocess(x_test[idx], runs[0].resolved.augment))]
    methods = [r.resolved.train.method for r in runs]
    for r in runs:
        _, source = frozen_decoder(r)
        label = r.resolved.train.method if len(set(methods)) == len(methods) else \
            Path(r.run_dir).name
        label += "" if source == "model" else "\n(+decoder)"
        rows.append((label, reconstruct(r, x_test[idx])))
    return _image_grid(rows, out, f"Reconstructions of {n} test images of {names.pop()} "
                       "(decoded encoder means)", cell=1.1)


def _image_grid(rows: list[tuple[str, torch.Tensor]], out: str | Path, title: str,
                cell: float) -> Path:
    """One row of images per (label, images) pair, saved as a PNG."""
    n = max(len(imgs) for _, imgs in rows)
    fig = Figure(figsize=(cell * n + 1.4, (cell + 0.05) * len(rows)))
    axes = fig.subplots(len(rows), n, squeeze=False)
    for i, (label, imgs) in enumerate(rows):
        for j in range(n):
            ax = axes[i, j]
            if j < len(imgs):
                ax.imshow(_show(imgs[j]), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
        axes[i, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return out


def sample_grid(images: torch.Tensor, labels: list[int], per_class: int, out: str | Path,
                title: str) -> Path:
    rows = [(str(c), images[[k for k, lab in enumerate(labels) if lab == c][:per_class]])
            for c in sorted(set(labels))]
    return _image_grid(rows, out, title, cell=0.9)
