"""Fig. 1 of arXiv:2107.02495v3 from our runs: (A) motion between frames, (B) decoded vs true
centres per method, (C) mean distance per method, (D, E) the prior's P(z'|z) for one ball's
next location under the RBF and the bilinear critic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure  # no pyplot: no GUI backend chosen, none needed

from probssl.critics import build_critic
from probssl.data.moving_balls import render
from probssl.experiments.figures import mean_se_band
from probssl.experiments.moving_balls.readout import (
    critic_coordinates,
    decode,
    embed,
    fit_readout,
    matched_distances,
)
from probssl.experiments.moving_balls.windows import BallWindows, make_windows

COLOURS = {"rbf": "tab:blue", "bilinear": "tab:red", "ring": "tab:purple",
           "supervised": "tab:green", "random": "tab:gray"}

# how each method is named in the figure and in table.md
LABELS = {"rbf": "InfoNCE, Gaussian (RBF) critic", "bilinear": "InfoNCE, linear (bilinear) critic",
          "ring": "InfoNCE, ring critic (knows the step)", "supervised": "supervised",
          "random": "untrained encoder"}


def _as_image(frame: torch.Tensor) -> np.ndarray:
    """(C, H, W) uint8 -> something imshow draws: gray (H, W) or RGB (H, W, 3)."""
    if frame.shape[0] == 1:
        return frame[0].numpy()
    rgb = torch.zeros(3, *frame.shape[1:], dtype=frame.dtype)
    for c in range(frame.shape[0]):  # more than three balls: wrap the colours around
        rgb[c % 3] = torch.maximum(rgb[c % 3], frame[c])
    return rgb.permute(1, 2, 0).numpy()


def _prior_heatmap(enc, critic_name: str, critic_state: dict, cfg, video, t: int,
                   ball: int = 0, grid: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    """P(next location of ``ball`` = g | frame t) ∝ f(z(x_t), z(x'_g)) over a grid of positions
    g, where x'_g is frame t+1 with that ball moved to g (R(z') taken as uniform, Eq. 26)."""
    size, r = cfg.size, cfg.diameter / 2
    g = torch.linspace(r, size - r, grid, dtype=torch.float64)
    gy, gx = torch.meshgrid(g, g, indexing="ij")
    cur = video.centres[t:t + 1]
    z = embed(enc, make_windows(render(cur, size, cfg.diameter, balls=cfg.balls), cur,
                                cfg.diameter))
    critic = build_critic(critic_name, z.shape[1])
    critic.load_state_dict(critic_state)
    logits = []
    for start in range(0, grid * grid, 256):
        cen = video.centres[t + 1].repeat(min(256, grid * grid - start), 1, 1).clone()
        cen[:, ball, 0] = gx.reshape(-1)[start:start + len(cen)]
        cen[:, ball, 1] = gy.reshape(-1)[start:start + len(cen)]
        zp = embed(enc, make_windows(render(cen, size, cfg.diameter, balls=cfg.balls), cen,
                                     cfg.diameter))
        u = critic_coordinates(z, size, cfg.coordinates)
        up = critic_coordinates(zp, size, cfg.coordinates)
        with torch.no_grad():
            logits.append(critic(u, up)[0])
    p = torch.softmax(torch.cat(logits), 0).view(grid, grid)
    return p, g


def draw_figure(cfg, video, win: BallWindows, encoders: dict[str, tuple[Any, dict | None]],
                summary: dict[str, Any], path: Path) -> None:
    """Draw Fig. 1 to ``path`` (PNG): (A) the first held-out frame and each ball's next moves,
    (B) decoded vs true centres on held-out frames per method (full readout), (C) both
    readouts' mean distance per method from ``summary``, (D-F) the prior P(z'|z) over ball 0's
    next location under the rbf, bilinear and ring critics present in ``encoders`` (method ->
    (encoder, critic state dict or None))."""
    n_tr, k, size = cfg.n_train, cfg.n_balls, cfg.size
    methods = list(encoders)
    fig = Figure(figsize=(4 * max(3, len(methods) + 1), 8), constrained_layout=True)
    cols = max(3, len(methods) + 1)
    axes = fig.subplots(2, cols, squeeze=False)
    t = n_tr  # first held-out frame
    # (A) a frame with each ball's next steps
    ax = axes[0, 0]
    ax.imshow(_as_image(video.frames[t]), cmap="gray", extent=(0, size, size, 0))
    path_c = video.centres[t:t + 6].numpy()
    for b in range(k):
        ax.plot(path_c[:, b, 0], path_c[:, b, 1], "-o", ms=3, color="tab:orange")
        ax.annotate("", xy=path_c[1, b], xytext=path_c[0, b],
                    arrowprops=dict(arrowstyle="->", color="yellow", lw=2))
    ax.set_title(f"A  frame {t} and the next 5 moves")
    ax.set_xlim(0, size), ax.set_ylim(size, 0)
    # (B) decoded vs true centres on held-out frames, one panel per method
    show = torch.arange(n_tr, min(len(win), n_tr + 40))
    for i, m in enumerate(methods):
        ax = axes[0, 1 + i]
        enc, _ = encoders[m]
        z = embed(enc, win)
        a = fit_readout(z[:n_tr], video.centres[:n_tr])
        pred = decode(a, z[show], k)
        true = video.centres[show].double()
        _, perm = matched_distances(pred, true)
        matched = true[torch.arange(len(show))[:, None], perm]
        for n in range(len(show)):
            for b in range(k):
                ax.plot([pred[n, b, 0], matched[n, b, 0]], [pred[n, b, 1], matched[n, b, 1]],
                        color="0.7", lw=0.6)
        ax.scatter(true[..., 0].flatten(), true[..., 1].flatten(), s=8, c="k", label="true")
        ax.scatter(pred[..., 0].flatten(), pred[..., 1].flatten(), s=8, c=COLOURS[m],
                   label="decoded")
        ax.set_xlim(0, size), ax.set_ylim(size, 0), ax.set_aspect("equal")
        ax.set_title(f"B  {LABELS[m]}", fontsize=9)
        ax.legend(loc="upper right", fontsize=7)
    for j in range(1 + len(methods), cols):
        axes[0, j].axis("off")
    # (C) mean distance per method, both readouts
    ax = axes[1, 0]
    methods = list(summary)  # every method, also one whose first seed diverged
    x = torch.arange(len(methods), dtype=torch.float64)
    for offset, key, hatch, label in ((-0.2, "detector_", "", "per detector"),
                                      (0.2, "", "//", "full readout")):
        means = [summary[m][f"{key}mean_px"] for m in methods]
        ses = [0 if summary[m][f"{key}se_px"] != summary[m][f"{key}se_px"]
               else summary[m][f"{key}se_px"] for m in methods]
        ax.bar((x + offset).tolist(), means, width=0.4, yerr=ses, capsize=3, hatch=hatch,
               color=[COLOURS[m] for m in methods], edgecolor="k", label=label)
    ax.set_xticks(range(len(methods)),
                  [m + (f"\n{len(d)} diverged" if (d := summary[m].get("diverged_seeds")) else "")
                   for m in methods])
    ax.set_ylabel("mean distance to true centre (px)")
    ax.legend(fontsize=7)
    ax.set_title(f"C  held-out error, mean ± s.e. over {len(cfg.seeds)} seeds", fontsize=9)
    # (D, E) prior over one ball's next location
    col = 1
    for m, letter in (("rbf", "D"), ("bilinear", "E"), ("ring", "F")):
        if m not in encoders:
            continue
        enc, state = encoders[m]
        p, g = _prior_heatmap(enc, m, state, cfg, video, t)
        ax = axes[1, col]
        lo, hi = float(g[0]), float(g[-1])
        ax.imshow(p.numpy(), extent=(lo, hi, hi, lo), cmap="magma")
        now, nxt = video.centres[t, 0], video.centres[t + 1, 0]
        ax.scatter([now[0]], [now[1]], marker="o", s=60, facecolors="none", edgecolors="cyan",
                   label="ball now")
        ax.scatter([nxt[0]], [nxt[1]], marker="x", s=60, c="lime", label="ball's true next")
        ax.set_xlim(0, size), ax.set_ylim(size, 0)
        ax.set_title(f"{letter}  prior over ball 0's next location, {m} critic", fontsize=9)
        ax.legend(loc="upper right", fontsize=7)
        col += 1
    for j in range(col, cols):
        axes[1, j].axis("off")
    fig.savefig(path, dpi=110)


def loss_curves(cfg, results: dict, path: Path) -> None:
    """Training loss against epoch per method (seed mean ± s.e.; diverged runs left out),
    one panel per method: whether a run had settled when it stopped."""
    methods = [m for m in cfg.methods if any(results[(m, s)].get("losses") for s in cfg.seeds)]
    if not methods:
        return
    fig = Figure(figsize=(3.6 * len(methods), 3.2), constrained_layout=True)
    axes = fig.subplots(1, len(methods), squeeze=False)[0]
    for ax, m in zip(axes, methods, strict=True):
        runs = [results[(m, s)]["losses"] for s in cfg.seeds
                if results[(m, s)].get("losses") and not results[(m, s)].get("diverged")]
        mean_se_band(ax, runs, color=COLOURS[m], alpha=0.25)
        ax.set_title(f"{LABELS[m]} ({len(runs)} seeds)", fontsize=8)
        ax.set_xlabel("epoch"), ax.set_ylabel("training loss"), ax.grid(alpha=0.3)
    fig.savefig(path, dpi=100)
