"""`probssl demo`: VAE vs the random encoder on scikit-learn's digits, trained and evaluated.

Runs on any machine with no download; writes the runs and ``table.md`` under ``--out``.
"""

from __future__ import annotations

from pathlib import Path

from probssl.experiments.compare import compare


def run_demo(out: Path, epochs: int = 60, seeds: int = 1) -> dict:
    return compare(["vae", "random"], "digits", list(range(seeds)), epochs, out)
