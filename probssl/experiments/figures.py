"""Figures from runs: reconstructions of several runs side by side (arXiv:2402.01399 Fig. 2),
class-conditional samples (Fig. 3) and learning curves (loss and online k-NN against epoch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure  # no pyplot: no GUI backend chosen, none needed

from probssl.data.augment import preprocess
from probssl.errors import UserError
from probssl.evaluate.generate import frozen_decoder, reconstruct
from probssl.runs.format import load_run, read_metrics, read_run_config


def mean_se_band(ax, runs: list[list[float]], x: list | None = None, label: str | None = None,
                 color: str | None = None, alpha: float = 0.2, **plot_kw) -> None:
    """Seed mean of ``runs`` (equal-length curves; the longer ones are cut to the shortest)
    as a line with a ± one standard error band, on matplotlib axes ``ax``; ``x`` defaults
    to 1, 2, ... (epochs). A single run gets no band."""
    n = min(len(r) for r in runs)
    t = torch.tensor([r[:n] for r in runs], dtype=torch.float64)
    mean = t.mean(0)
    se = t.std(0) / len(runs) ** 0.5 if len(runs) > 1 else torch.zeros(n)
    x = list(x[:n]) if x is not None else list(range(1, n + 1))
    line = ax.plot(x, mean.tolist(), label=label, color=color, **plot_kw)[0]
    ax.fill_between(x, (mean - se).tolist(), (mean + se).tolist(), alpha=alpha,
                    color=line.get_color())


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


def reconstruction_grid(originals: torch.Tensor, reconstructions: torch.Tensor,
                        out: str | Path, title: str) -> Path:
    """Two rows: images and their reconstructions (floats in [0, 1])."""
    return _image_grid([("original", originals), ("decoded", reconstructions)], out, title,
                       cell=1.1)


def sample_grid(images: torch.Tensor, labels: list[int], per_class: int, out: str | Path,
                title: str) -> Path:
    """Save a PNG of class-conditional samples: one row per label (sorted) holding up to
    ``per_class`` of the ``images`` (N, C, H, W), floats in [0, 1], of that label; returns
    ``out``."""
    rows = [(str(c), images[[k for k, lab in enumerate(labels) if lab == c][:per_class]])
            for c in sorted(set(labels))]
    return _image_grid(rows, out, title, cell=0.9)


def curves_figure(run_dirs: list[str | Path], out: str | Path) -> Path:
    """Learning curves of several runs: the training loss (left) and the online k-NN
    accuracy on the validation split, ``knn_val`` of ``--eval-every`` (right), against epoch,
    one line per run, labelled by its directory name. Runs trained without online
    evaluation draw only their loss; a run with no finished epoch is an error naming it."""
    if not run_dirs:
        raise UserError("figure curves needs at least one run")
    runs = []
    for r in run_dirs:
        read_run_config(Path(r))  # one line naming a directory that is not a run
        rows = read_metrics(Path(r))
        if not rows:
            raise UserError(f"{r}: no finished epoch in its metrics.jsonl yet")
        runs.append((Path(r).name, rows))
    fig = Figure(figsize=(11, 4), constrained_layout=True)
    loss_ax, knn_ax = fig.subplots(1, 2)
    any_knn = False
    for name, rows in runs:
        loss_ax.plot([r["epoch"] for r in rows if "loss" in r],
                     [r["loss"] for r in rows if "loss" in r], label=name)
        knn = [(r["epoch"], 100 * r["knn_val"]) for r in rows if "knn_val" in r]
        if knn:
            any_knn = True
            knn_ax.plot(*zip(*knn, strict=True), "-o", ms=3, label=name)
    loss_ax.set_xlabel("epoch"), loss_ax.set_ylabel("training loss (epoch mean)")
    loss_ax.set_title("loss", fontsize=10)
    loss_ax.legend(fontsize=7)
    knn_ax.set_xlabel("epoch"), knn_ax.set_ylabel("k-NN accuracy on the validation split (%)")
    knn_ax.set_title("online evaluation (--eval-every)" if any_knn else
                     "online evaluation: none of these runs used --eval-every", fontsize=10)
    if any_knn:
        knn_ax.legend(fontsize=7)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return out
