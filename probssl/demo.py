"""`probssl demo`: VAE vs the random encoder on scikit-learn's digits, trained and evaluated.

Runs on any machine with no download. Writes one run directory per method and seed, plus
``summary.md`` and ``summary.json`` under the output folder.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from probssl.config import TrainConfig
from probssl.evaluate import EvalConfig, evaluate_run
from probssl.train import train
from probssl.train.checkpoint import list_checkpoints
from probssl.train.run import load_run, read_run_config


def mean_se(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], float("nan")
    return statistics.fmean(values), statistics.stdev(values) / len(values) ** 0.5


def run_demo(out: Path, epochs: int = 60, seeds: int = 1) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    eval_cfg = EvalConfig()
    t0 = time.perf_counter()
    results: dict[str, list[dict]] = {"vae": [], "random": []}
    for seed in range(seeds):
        for method in results:
            run_dir = out / f"{method}-digits-seed{seed}"
            cfg = TrainConfig(method=method, dataset="digits", epochs=epochs, seed=seed)
            done = (run_dir / "config.json").is_file() and list_checkpoints(run_dir) and \
                list_checkpoints(run_dir)[-1][0] >= (epochs if method != "random" else 0)
            if not done:
                resume = (run_dir / "config.json").is_file() and \
                    read_run_config(run_dir).method == method
                print(f"[demo] training {method} on digits, seed {seed}")
                train(cfg, run_dir, resume=resume, verbose=False)
            res = evaluate_run(load_run(run_dir), eval_cfg)
            results[method].append(res)
            print(f"[demo] {method} seed {seed}: kNN {100 * res['knn']['best']:.1f}%, "
                  f"linear probe {100 * res['linear_probe']['test_accuracy']:.1f}%")
    lines = ["| method | kNN acc % (best k) | kNN acc % (val k) | linear probe acc % |",
             "|---|---|---|---|"]
    summary = {}
    for method, rs in results.items():
        cols = {
            "knn_best": [100 * r["knn"]["best"] for r in rs],
            "knn_val_k": [100 * r["knn_val_k"]["accuracy"] for r in rs],
            "linear_probe": [100 * r["linear_probe"]["test_accuracy"] for r in rs],
        }
        summary[method] = {k: mean_se(v) for k, v in cols.items()}
        cells = [f"{m:.1f} ± {s:.1f}" if s == s else f"{m:.1f}"
                 for m, s in summary[method].values()]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    wall = time.perf_counter() - t0
    text = (f"# probssl demo: digits ({seeds} seed(s), VAE {epochs} epochs)\n\n"
            + "\n".join(lines) + f"\n\n{eval_cfg.footer()}\n\nWall time: {wall:.0f} s.\n")
    (out / "summary.md").write_text(text)
    (out / "summary.json").write_text(json.dumps({"summary": summary, "epochs": epochs,
                                                  "seeds": seeds, "wall_s": wall}, indent=2))
    print(text)
    return summary
