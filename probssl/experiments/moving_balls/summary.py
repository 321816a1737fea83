"""One table across moving-balls experiments (readings), computed from their metrics.json:

    python -m probssl.experiments.moving_balls.summary "raw=results/mb-raw" "bank=results/mb-bank" \
        --curves curves.png

Each row is one method under one reading: both readouts (mean ± s.e. over the seeds that did
not diverge, px), how many seeds diverged, the seeds, and the settings that define the
reading (coordinates, negatives, balls, lr, epochs).
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from probssl.errors import UserError
from probssl.experiments.figures import mean_se_band
from probssl.experiments.moving_balls.experiment import PAPER
from probssl.experiments.moving_balls.figure import LABELS
from probssl.userio import read_json


def _pm(mean, se) -> str:
    if mean is None or mean != mean:
        return "all diverged"
    return f"{mean:.2f}" + ("" if se is None or se != se else f" ± {se:.2f}")


def _read_result(folder: str | Path) -> dict:
    """``FOLDER/metrics.json`` of a moving-balls experiment; anything else is one line."""
    path = Path(folder) / "metrics.json"
    try:
        metrics = read_json(path, "moving-balls result")
    except UserError as exc:
        raise UserError(f"{exc} (not a moving-balls result)") from None
    if not isinstance(metrics.get("config"), dict) or not isinstance(metrics.get("summary"),
                                                                         dict):
        raise UserError(f"{path}: not a moving-balls result (no 'config' and 'summary')")
    return metrics


def summary_table(readings: dict[str, Path]) -> str:
    """Markdown table, one row per (reading, method): both readouts' mean ± s.e. (px), how many
    seeds diverged, the number of seeds and the reading's settings, from each folder's
    ``metrics.json`` (``readings``: label -> folder)."""
    lines = ["| reading | method | per-detector (px) | full readout (px) | diverged | seeds | "
             "settings |", "|---|---|---|---|---|---|---|"]
    for label, folder in readings.items():
        metrics = _read_result(folder)
        # a setting added after the run was made has the default the run had
        cfg = {**asdict(PAPER), **metrics["config"]}
        settings = (f"{cfg['coordinates']} coords, {cfg['negatives']} negatives, "
                    f"{cfg['balls']} balls, {cfg['optimizer']} lr {cfg['lr']:g}, "
                    f"{cfg['epochs']} epochs")
        for m, s in metrics["summary"].items():
            n_div = len(s.get("diverged_seeds", []))
            lines.append(f"| {label} | {LABELS.get(m, m)} | "
                         f"{_pm(s['detector_mean_px'], s['detector_se_px'])} | "
                         f"{_pm(s['mean_px'], s['se_px'])} | {n_div} of {len(s['per_seed'])} | "
                         f"{len(cfg['seeds'])} | {settings} |")
    return "\n".join(lines)


def curves_figure(readings: dict[str, Path], path: Path) -> Path:
    """Training loss against epoch (seed mean ± s.e., diverged runs left out), one panel per
    method, one line per reading: whether the runs had settled when they stopped."""
    by_method: dict[str, dict[str, list[list[float]]]] = {}
    for label, folder in readings.items():
        metrics = _read_result(folder)
        for run in metrics["runs"]:
            if run.get("losses") and not run.get("diverged"):
                by_method.setdefault(run["method"], {}).setdefault(label, []).append(
                    run["losses"])
    methods = list(by_method)
    fig = Figure(figsize=(4.2 * max(1, len(methods)), 3.4), constrained_layout=True)
    axes = fig.subplots(1, max(1, len(methods)), squeeze=False)[0]
    palette = matplotlib.colormaps["tab10" if len(readings) <= 10 else "tab20"]
    colour = {label: palette(i % palette.N) for i, label in enumerate(readings)}  # every panel
    for ax, m in zip(axes, methods, strict=False):
        for label, runs in by_method[m].items():
            mean_se_band(ax, runs, label=f"{label} ({len(runs)})", color=colour[label])
        ax.set_title(LABELS.get(m, m), fontsize=8)
        ax.set_yscale("symlog", linthresh=1.0)  # losses span 0.1 to thousands
        ax.set_xlabel("epoch"), ax.set_ylabel("training loss (symlog)"), ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.savefig(path, dpi=100)
    return path


def main(argv: list[str] | None = None) -> int:
    """Command line (module docstring): print the table of the ``LABEL=FOLDER`` readings and draw
    ``--curves`` if asked; returns the exit status."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("readings", nargs="+", metavar="LABEL=FOLDER")
    p.add_argument("--curves", default=None, metavar="PNG",
                   help="also draw every reading's training-loss curves")
    args = p.parse_args(argv)
    readings = {}
    for item in args.readings:
        label, sep, folder = item.partition("=")
        if not sep:
            p.error(f"{item!r}: expected LABEL=FOLDER")
        readings[label] = Path(folder)
    print(summary_table(readings))
    if args.curves:
        print(f"wrote {curves_figure(readings, Path(args.curves))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
