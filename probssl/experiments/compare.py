"""Train several methods on one dataset over several seeds, evaluate each, tabulate: a
one-dataset :mod:`bench <probssl.experiments.bench>` grid (the same engine) whose runs sit
directly under ``OUT`` as ``METHOD-DATASET-seedS`` and whose table is ``OUT/table.md``
(with ``OUT/results.json``).

Resumable: a run whose last checkpoint already reached the requested epochs is not trained
again (if that checkpoint turns out damaged, training resumes from the one before it), and an
evaluation is reused when ``eval.json`` (or the cell's ``result.json``) matches the checkpoint
and protocol (a damaged one is a cache: it is evaluated again and replaced, with one warning
line). The table reports mean ± standard error over seeds; its footer states the protocol, the
machine and the wall time.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from probssl.config import TrainConfig
from probssl.errors import UserError
from probssl.evaluate import EvalConfig
from probssl.experiments.bench import Cell, run_cells
from probssl.experiments.report import fmt, mean_se
from probssl.methods import is_trainable
from probssl.runs.format import write_json_atomic, write_text_file
from probssl.runs.provenance import command_line, machine_line
from probssl.userio import check_output_dir

# table column -> (its heading, the flat result key it shows ×100)
COLUMNS = {
    "knn_best": ("kNN % (best k on test)", "knn_best"),
    "knn_val_k": ("kNN % (k on val)", "knn_val_k"),
    "linear_probe": ("linear probe %", "linear_probe"),
    "mlp_probe": ("MLP probe %", "mlp_probe"),
    "gmm": ("GMM acc %", "gmm_accuracy"),
    "nmi": ("NMI ×100", "nmi"),
}


def run_dir_name(method: str, dataset: str, seed: int) -> str:
    """The folder of one run under ``OUT``: ``METHOD-DATASET-seedS`` (``:`` and ``/`` in the
    dataset name replaced by ``_``)."""
    return f"{method}-{dataset.replace(':', '_').replace('/', '_')}-seed{seed}"


def compare(methods: list[str], dataset: str, seeds: list[int], epochs: int, out: Path,
            train_overrides: dict[str, Any] | None = None,
            eval_cfg: EvalConfig | None = None, log=print,
            params: dict[str, dict[str, Any]] | None = None) -> dict:
    """Train and evaluate every method on ``dataset`` for every seed (resumable: module
    docstring), write ``out/table.md`` and ``out/results.json``, and return the summary:
    method -> column -> (mean, standard error) over seeds, in percent."""
    out = check_output_dir(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot create it ({exc.strerror or exc})") from None
    eval_cfg = eval_cfg or EvalConfig()
    overrides = dict(train_overrides or {})
    t0 = time.perf_counter()
    cells = []
    for seed in seeds:
        for method in methods:
            cfg = TrainConfig(method=method, dataset=dataset, epochs=epochs, seed=seed,
                              params=dict((params or {}).get(method, {})), **overrides)
            cells.append((Cell(method, dataset, seed), cfg,
                          out / run_dir_name(method, dataset, seed)))

    def announce(cell: Cell, cfg: TrainConfig, resume: bool) -> str:
        what = f"training for {epochs} epochs" if is_trainable(cell.method) else \
            "initialising (no training)"
        return f"[compare] {cell.method} on {dataset}, seed {cell.seed}: {what}"

    def on_result(cell: Cell, res: dict) -> None:
        log(f"[compare] {cell.method} seed {cell.seed}: kNN {100 * res['knn_best']:.1f}%, "
            f"linear probe {100 * res['linear_probe']:.1f}%")

    flat, _ = run_cells(cells, eval_cfg, progress=False, log=log, tag="[compare]",
                        announce=announce, train_progress=True, extras=False,
                        on_result=on_result)
    results: dict[str, list[dict]] = {m: [] for m in methods}
    for (cell, _, _), res in zip(cells, flat, strict=True):
        results[cell.method].append(res)
    # MLP probe and GMM can be switched off: a column only when every run has it
    columns = {c: v for c, v in COLUMNS.items()
               if all(v[1] in r for rs in results.values() for r in rs)}
    summary = {m: {c: mean_se([100 * r[key] for r in rs]) for c, (_, key) in columns.items()}
               for m, rs in results.items()}
    wall = time.perf_counter() - t0
    header = "| method | " + " | ".join(name for name, _ in columns.values()) + \
        " | train s / seed |"
    lines = [header, "|" + "---|" * (len(columns) + 2)]
    for m in methods:
        cells_ = [fmt(*summary[m][c]) for c in columns]
        secs = statistics.fmean([r.get("train_seconds", 0.0) for r in results[m]]) \
            if results[m] else 0.0
        lines.append(f"| {m} | " + " | ".join(cells_) + f" | {secs:.0f} |")
    settings = ", ".join([f"{k}={v}" for k, v in overrides.items()]
                         + [f"{m}.{k}={v}" for m, ps in (params or {}).items()
                            for k, v in ps.items()])
    text = (f"{dataset}: {', '.join(methods)}; seeds {seeds}; {epochs} epochs"
            + (f"; {settings}" if settings else "") + "\n\n" + "\n".join(lines) + "\n\n"
            + f"Mean ± standard error over {len(seeds)} seed(s). {eval_cfg.footer()}\n\n"
            + f"Command: `{command_line()}`  \nMachine: {machine_line()}  \n"
            + f"Wall time of this invocation: {wall:.0f} s (training time per seed in the "
              "table, from metrics.jsonl).\n")
    write_text_file(out / "table.md", text)
    write_json_atomic(out / "results.json", {
        "dataset": dataset, "methods": methods, "seeds": seeds, "epochs": epochs,
        "train_overrides": overrides, "params": params or {}, "protocol": eval_cfg.__dict__,
        "summary": summary,
        "per_seed": {m: [{c: 100 * r[key] for c, (_, key) in columns.items()} for r in rs]
                     for m, rs in results.items()},
        "wall_s": wall, "machine": machine_line(), "command": command_line()})
    log(text)
    return summary
