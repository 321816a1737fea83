"""Train several methods on one dataset over several seeds, evaluate each, tabulate.

Resumable: a run whose last checkpoint already reached the requested epochs is not trained
again (if that checkpoint turns out damaged, training resumes from the one before it), and an
evaluation is reused when ``eval.json`` matches the checkpoint and protocol (a damaged
``eval.json`` is a cache: it is evaluated again and replaced, with one warning line).
The table reports mean ± standard error over seeds; its footer states the protocol, the
machine and the wall time.
"""

from __future__ import annotations

import os
import platform
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from probssl.config import TrainConfig
from probssl.errors import UserError
from probssl.evaluate import EvalConfig, evaluate_run
from probssl.methods import is_trainable
from probssl.train import train
from probssl.train.checkpoint import list_checkpoints
from probssl.train.run import CONFIG_FILE, LoadedRun, load_run, read_metrics, write_json_atomic
from probssl.userio import check_output_dir, file_key, read_json_as, warn

EVAL_FILE = "eval.json"
# What a reused eval.json must hold (the keys compare and bench read from it).
EVAL_SCHEMA = {"epoch": int, "protocol": dict, "knn": {"best": float},
               "knn_val_k": {"accuracy": float}, "linear_probe": {"test_accuracy": float},
               "mlp_probe?": {"test_accuracy": float},
               "gmm?": {"accuracy": float, "nmi": float, "ari": float}}

COLUMNS = {
    "knn_best": ("kNN % (best k on test)", lambda r: 100 * r["knn"]["best"]),
    "knn_val_k": ("kNN % (k on val)", lambda r: 100 * r["knn_val_k"]["accuracy"]),
    "linear_probe": ("linear probe %", lambda r: 100 * r["linear_probe"]["test_accuracy"]),
    "mlp_probe": ("MLP probe %", lambda r: 100 * r["mlp_probe"]["test_accuracy"]),
    "gmm": ("GMM acc %", lambda r: 100 * r["gmm"]["accuracy"]),
    "nmi": ("NMI ×100", lambda r: 100 * r["gmm"]["nmi"]),
}


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error (NaN for one value)."""
    if len(values) < 2:
        return float(values[0]), float("nan")
    return statistics.fmean(values), statistics.stdev(values) / len(values) ** 0.5


def fmt(m: float, s: float) -> str:
    return f"{m:.1f}" if s != s else f"{m:.1f} ± {s:.1f}"


def machine_line() -> str:
    return (f"{socket.gethostname()}, {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} CPUs, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), "
            f"{'CUDA ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'}")


def command_line() -> str:
    """How this process was invoked, as a user would type it."""
    prog = Path(sys.argv[0]).name
    if prog in ("__main__.py", "probssl"):
        return "probssl " + " ".join(sys.argv[1:])
    return " ".join(sys.argv)


def _has(results: dict[str, list[dict]], column) -> bool:
    """Whether every evaluation has this column (MLP probe and GMM can be switched off)."""
    try:
        for rs in results.values():
            for r in rs:
                column(r)
    except KeyError:
        return False
    return True


def _trained(run_dir: Path, epochs: int, method: str) -> bool:
    ck = list_checkpoints(run_dir)
    return (run_dir / CONFIG_FILE).exists() and bool(ck) and \
        ck[-1][0] >= (epochs if is_trainable(method) else 0)


def _cached_evaluation(run_dir: Path) -> dict | None:
    """``RUN/eval.json`` if it is readable and well-formed; a damaged one is a cache miss
    (one warning line); a directory in its place is an error (it could not be replaced)."""
    cached = run_dir / EVAL_FILE
    if not cached.exists():
        return None
    if not cached.is_file():
        raise UserError(f"evaluation {cached} is not a file; move it out of the way")
    try:
        return read_json_as(cached, "evaluation", EVAL_SCHEMA)
    except UserError as exc:
        warn(f"{exc}; evaluating again", key=("eval", file_key(cached)))
        return None


def _evaluate(run_dir: Path, eval_cfg: EvalConfig, loaded=None) -> dict:
    old = _cached_evaluation(run_dir)
    loaded = loaded if loaded is not None else load_run(run_dir)
    if old is not None and old["epoch"] == loaded.epoch and \
            old["protocol"] == eval_cfg.__dict__:
        return old
    result = evaluate_run(loaded, eval_cfg)
    write_json_atomic(run_dir / EVAL_FILE, result)
    return result


def write_text_file(path: Path, text: str) -> None:
    """Write a table or report; a path that cannot be written is one error naming it."""
    try:
        Path(path).write_text(text)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None


def load_trained(run_dir: Path, cfg: TrainConfig, log=print, tag: str = "[compare]"
                 ) -> LoadedRun:
    """The trained run; if its newest checkpoint is damaged (so the run loads an earlier
    one), training resumes from there to ``cfg.epochs`` first."""
    loaded = load_run(run_dir)
    if is_trainable(cfg.method) and loaded.epoch < cfg.epochs:
        log(f"{tag} {run_dir.name}: its newest checkpoint does not load; training again "
            f"from epoch {loaded.epoch}")
        train(cfg, run_dir, resume=True, progress=False, verbose=False)
        loaded = load_run(run_dir)
    return loaded


def compare(methods: list[str], dataset: str, seeds: list[int], epochs: int, out: Path,
            train_overrides: dict[str, Any] | None = None,
            eval_cfg: EvalConfig | None = None, log=print,
            params: dict[str, dict[str, Any]] | None = None) -> dict:
    out = check_output_dir(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot create it ({exc.strerror or exc})") from None
    eval_cfg = eval_cfg or EvalConfig()
    overrides = dict(train_overrides or {})
    t0 = time.perf_counter()
    results: dict[str, list[dict]] = {m: [] for m in methods}
    train_seconds: dict[str, list[float]] = {m: [] for m in methods}
    for seed in seeds:
        for method in methods:
            run_dir = out / f"{method}-{dataset.replace(':', '_').replace('/', '_')}-seed{seed}"
            cfg = TrainConfig(method=method, dataset=dataset, epochs=epochs, seed=seed,
                              params=dict((params or {}).get(method, {})), **overrides)
            if not _trained(run_dir, epochs, method):
                resume = (run_dir / CONFIG_FILE).exists()
                what = f"training for {epochs} epochs" if is_trainable(method) else \
                    "initialising (no training)"
                log(f"[compare] {method} on {dataset}, seed {seed}: {what}")
                train(cfg, run_dir, resume=resume, verbose=False)
            loaded = load_trained(run_dir, cfg, log)
            train_seconds[method].append(sum(r.get("seconds", 0.0)
                                             for r in read_metrics(run_dir)))
            res = _evaluate(run_dir, eval_cfg, loaded)
            results[method].append(res)
            log(f"[compare] {method} seed {seed}: kNN {100 * res['knn']['best']:.1f}%, "
                f"linear probe {100 * res['linear_probe']['test_accuracy']:.1f}%")
    columns = {c: v for c, v in COLUMNS.items() if _has(results, v[1])}
    summary = {m: {c: mean_se([f(r) for r in rs]) for c, (_, f) in columns.items()}
               for m, rs in results.items()}
    wall = time.perf_counter() - t0
    header = "| method | " + " | ".join(name for name, _ in columns.values()) + \
        " | train s / seed |"
    lines = [header, "|" + "---|" * (len(columns) + 2)]
    for m in methods:
        cells = [fmt(*summary[m][c]) for c in columns]
        secs = statistics.fmean(train_seconds[m]) if train_seconds[m] else 0.0
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {secs:.0f} |")
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
        "per_seed": {m: [{c: f(r) for c, (_, f) in columns.items()} for r in rs]
                     for m, rs in results.items()},
        "wall_s": wall, "machine": machine_line(), "command": command_line()})
    log(text)
    return summary
