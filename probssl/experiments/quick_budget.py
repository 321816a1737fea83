"""The smallest training budget at which every method beats the untrained encoder.

For each method and each candidate budget (epochs, with the ``quick`` preset's batch size and
learning rate), train one run per seed and score the test embeddings with an *independent*
kNN: scikit-learn's 5-nearest-neighbour classifier, 5-fold cross-validated on the test
embeddings alone (not probssl's evaluator, which uses the training split as reference). The
``random`` method (the untrained encoder, same architecture) is the bar to beat.

    python -m probssl.experiments.quick_budget --dataset digits --epochs 3,5,10,20 \\
        --seeds 0,1,2 --out results/quick-budget-digits

Writes ``table.md`` and ``results.json`` in ``--out``; runs are kept there and resumed
(a finished run is not retrained).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from probssl.config import TrainConfig
from probssl.errors import UserError
from probssl.evaluate import run_embeddings
from probssl.runs.format import load_run
from probssl.train import train

METHODS = ("vae", "beta-vae", "cr-vae", "simvae", "simclr", "moco", "vicreg")


def independent_knn(z: np.ndarray, y: np.ndarray, seed: int = 0) -> float:
    """5-NN accuracy, 5-fold cross-validated on (z, y) (features standardised)."""
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    clf = make_pipeline(StandardScaler(), KNeighborsClassifier(5))
    return float(cross_val_score(clf, z, y, cv=folds).mean())


def score_run(run_dir: Path, epochs: int, method: str, dataset: str, seed: int) -> float:
    """Train (or resume) one ``quick``-preset run of ``method`` for ``epochs`` epochs on the CPU in
    ``run_dir``; returns the independent 5-NN accuracy of its test embeddings
    (:func:`independent_knn`)."""
    cfg = TrainConfig(method=method, dataset=dataset, preset="quick", device="cpu",
                      epochs=epochs, seed=seed)
    train(cfg, run_dir, resume=(run_dir / "config.json").exists(), progress=False,
          verbose=False)
    z, y = run_embeddings(load_run(run_dir), "test")
    return independent_knn(z, y, seed)


def main(argv: list[str] | None = None) -> int:
    """Command line (module docstring): score the ``random`` encoder and every method at every
    budget over the seeds, write ``results.json`` and ``table.md`` to ``--out``; returns the
    exit status."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="digits")
    p.add_argument("--epochs", default="3,5,10,20", help="candidate budgets")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    try:
        budgets = [int(e) for e in a.epochs.split(",") if e.strip()]
        seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
    except ValueError:
        raise SystemExit("--epochs and --seeds take comma-separated integers") from None
    methods = [m.strip() for m in a.methods.split(",") if m.strip()]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results: dict = {"dataset": a.dataset, "seeds": seeds, "budgets": budgets,
                     "random": {}, "methods": {}}
    for s in seeds:
        results["random"][s] = score_run(out / f"random-s{s}", 0, "random", a.dataset, s)
    bar = float(np.mean(list(results["random"].values())))
    print(f"random encoder: {100 * bar:.1f}%", file=sys.stderr, flush=True)
    for m in methods:
        results["methods"][m] = {}
        for e in budgets:
            accs = [score_run(out / f"{m}-e{e}-s{s}", e, m, a.dataset, s) for s in seeds]
            results["methods"][m][e] = accs
            print(f"{m} {e} epochs: {100 * np.mean(accs):.1f}%", file=sys.stderr, flush=True)
    results["wall_s"] = time.perf_counter() - t0
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [f"Independent 5-NN accuracy (%) on {a.dataset} test embeddings, 5-fold CV, mean "
             f"over seeds {', '.join(map(str, seeds))}; `quick` preset with the epochs of "
             f"the column. Untrained encoder (random): {100 * bar:.1f}%.", "",
             "| method | " + " | ".join(f"{e} ep" for e in budgets) + " |",
             "|---|" + "---|" * len(budgets)]
    for m, row in results["methods"].items():
        cells = []
        for e in budgets:
            v = float(np.mean(row[e]))
            cells.append(f"{100 * v:.1f}" + ("" if min(row[e]) > bar else " ✗"))
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("✗: at least one seed does not beat the untrained encoder's mean. Wall time "
                 f"{results['wall_s']:.0f} s.")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as exc:
        print(f"quick_budget: {exc}", file=sys.stderr)
        sys.exit(2)
