"""One table across moving-balls experiments (readings), computed from their metrics.json:

    python -m probssl.experiments.moving_balls.summary "raw=results/mb-raw" "bank=results/mb-bank"

Each row is one method under one reading: both readouts (mean ± s.e. over the seeds that did
not diverge, px), how many seeds diverged, the seeds, and the settings that define the
reading (coordinates, negatives, balls, lr, epochs).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from probssl.errors import UserError
from probssl.experiments.moving_balls.experiment import PAPER
from probssl.experiments.moving_balls.figure import LABELS


def _pm(mean, se) -> str:
    if mean is None or mean != mean:
        return "all diverged"
    return f"{mean:.2f}" + ("" if se is None or se != se else f" ± {se:.2f}")


def summary_table(readings: dict[str, Path]) -> str:
    lines = ["| reading | method | per-detector (px) | full readout (px) | diverged | seeds | "
             "settings |", "|---|---|---|---|---|---|---|"]
    for label, folder in readings.items():
        path = Path(folder) / "metrics.json"
        try:
            metrics = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"{path}: not a moving-balls result ({exc})") from None
        # a setting added after the run was made has the default the run had
        cfg = {**asdict(PAPER), **metrics["config"]}
        settings = (f"{cfg['coordinates']} coords, {cfg['negatives']} negatives, "
                    f"{cfg['balls']} balls, lr {cfg['lr']:g}, {cfg['epochs']} epochs")
        for m, s in metrics["summary"].items():
            n_div = len(s.get("diverged_seeds", []))
            lines.append(f"| {label} | {LABELS.get(m, m)} | "
                         f"{_pm(s['detector_mean_px'], s['detector_se_px'])} | "
                         f"{_pm(s['mean_px'], s['se_px'])} | {n_div} of {len(s['per_seed'])} | "
                         f"{len(cfg['seeds'])} | {settings} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("readings", nargs="+", metavar="LABEL=FOLDER")
    args = p.parse_args(argv)
    readings = {}
    for item in args.readings:
        label, sep, folder = item.partition("=")
        if not sep:
            p.error(f"{item!r}: expected LABEL=FOLDER")
        readings[label] = Path(folder)
    print(summary_table(readings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
