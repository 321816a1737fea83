"""Benchmark grids: methods × datasets × seeds (× one swept parameter), resumable.

Every cell is an ordinary run directory under ``OUT/runs/`` plus a ``result.json`` written
atomically after its evaluation. A finished cell (result present, same epoch and protocol) is
never re-run; a killed grid continues where it stopped (a half-trained run resumes from its
last checkpoint, as does a run whose newest checkpoint is damaged), and reports only ever read
finished cells. A damaged ``result.json`` (or ``eval.json``) is recomputed, with one warning
line; damage to what cannot be recomputed (a run's config, metrics, all its checkpoints) is one
error naming the file. ``OUT/grid.json`` records the grid so ``probssl report OUT`` can lay
the tables out.

Every cell's TrainConfig is built (and so validated) before the first one trains: a typo in
a method parameter fails in the first second, not an hour into the grid.
"""

from __future__ import annotations

import time
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from probssl.config import TrainConfig, resolve
from probssl.errors import UserError
from probssl.evaluate import EvalConfig
from probssl.evaluate.protocol import extra_evaluations
from probssl.experiments.compare import (
    _evaluate,
    _trained,
    command_line,
    load_trained,
    machine_line,
)
from probssl.methods import get_method_spec, is_trainable
from probssl.schema import field_names, parse_assignments, parse_scalar
from probssl.train import train
from probssl.train.run import CONFIG_FILE, LoadedRun, read_metrics, write_json_atomic
from probssl.userio import Check, check_output_dir, file_key, read_json_as, safe_name, warn

GRID_FILE = "grid.json"
RESULT_FILE = "result.json"
SWEEP_ALIASES = {"J": "n_views"}

_SCALAR = (str, int, float, bool)
# What a result.json must hold to be trusted (by a resumed bench and by report).
RESULT_SCHEMA = {
    "cell": str, "method": str, "dataset": str, "seed": int, "epochs": int, "protocol": dict,
    "sweep": (None, Check(list, lambda v: len(v) == 2 and isinstance(v[0], str)
                          and isinstance(v[1], _SCALAR), "[key, value]")),
    "knn_best": float, "knn_val_k": float, "linear_probe": float, "mlp_probe?": float,
    "gmm_accuracy?": float, "nmi?": float, "ari?": float, "mse?": float, "fid?": float,
    "fid_features?": str, "content?": float, "train_seconds?": float,
    "factors?": {str: {"metric": str, "value": float}},
    "attributes?": Check({"attributes": {str: float}, "majority": {str: float},
                          "probe": str, "hair_colour?": float},
                         lambda a: bool(a["attributes"]) and set(a["attributes"])
                         <= set(a["majority"]),
                         "attribute accuracies with a majority baseline for each"),
}
# What grid.json must hold (report lays its tables out from it).
GRID_SCHEMA = {
    "cells": [Check(str, safe_name, "a plain folder name")],
    "methods": [str], "datasets": [str], "seeds": [int],
    "sweep?": (None, {"key": str, "values": [_SCALAR]}),
    "protocol": {"knn_metric": str, "k_max": int, "probe_lr": float, "probe_epochs": int,
                 "probe_batch_size": int, "gmm_n_init": int},
    "command": str, "machine": str,
}


def read_result(path: Path) -> dict:
    """A cell's result.json, checked against :data:`RESULT_SCHEMA` (one error naming it)."""
    return read_json_as(path, "bench result", RESULT_SCHEMA)


def read_grid(path: Path) -> dict:
    return read_json_as(path, "bench grid", GRID_SCHEMA)


@dataclass(frozen=True)
class Cell:
    method: str
    dataset: str
    seed: int
    sweep: tuple[str, Any] | None = None

    @property
    def name(self) -> str:
        ds = self.dataset.replace(":", "_").replace("/", "_")
        sw = "" if self.sweep is None else f"__{self.sweep[0]}={self.sweep[1]}"
        return f"{self.method}__{ds}{sw}__seed{self.seed}"


def parse_sweep(text: str | None) -> tuple[str, list[str]] | None:
    """``J=2,4,6`` -> ("n_views", ["2", "4", "6"])."""
    if not text:
        return None
    if "=" not in text:
        raise UserError(f"--sweep {text!r}: expected KEY=V1,V2,...")
    key, values = text.split("=", 1)
    key = SWEEP_ALIASES.get(key.strip(), key.strip().replace("-", "_"))
    vals = [v.strip() for v in values.split(",") if v.strip()]
    if not vals:
        raise UserError(f"--sweep {text!r}: no values")
    return key, vals


def _cell_config(cell: Cell, preset: str | None, epochs: int | None,
                 train_overrides: dict[str, Any], params: dict[str, Any]) -> TrainConfig:
    """The cell's TrainConfig by the one resolution (:func:`probssl.config.resolve`): the
    grid's preset, then its overrides, epochs and the cell's swept value as flags."""
    flags: dict[str, Any] = {**train_overrides, "method": cell.method,
                             "dataset": cell.dataset, "seed": cell.seed,
                             "params": dict(params)}
    if epochs is not None:
        flags["epochs"] = epochs
    if cell.sweep is not None:
        key, raw = cell.sweep
        hints = typing.get_type_hints(TrainConfig)
        if key in hints:
            flags[key] = parse_scalar(str(raw), hints[key], f"--sweep {key}")
        else:
            cls = get_method_spec(cell.method).config_cls
            if key not in field_names(cls):
                raise UserError(f"--sweep {key}: method {cell.method!r} has no parameter "
                                f"{key!r} (and it is not a training setting)")
            flags["params"].update(parse_assignments([f"{key}={raw}"], cls,
                                                     f"--sweep for {cell.method}"))
    return resolve(preset=preset, flags=flags, where=f"bench cell {cell.name}")


def plan_grid(methods: list[str], datasets: list[str], seeds: list[int], *,
              preset: str | None = None, epochs: int | None = None,
              train_overrides: dict[str, Any] | None = None,
              params: dict[str, dict[str, Any]] | None = None,
              sweep: tuple[str, list[str]] | None = None) -> list[tuple[Cell, TrainConfig]]:
    if not methods or not datasets or not seeds:
        raise UserError("bench needs at least one method, dataset and seed")
    sweep_values: list[Any] = [None] if sweep is None else list(sweep[1])
    plan = []
    for dataset in datasets:
        for value in sweep_values:
            for seed in seeds:
                for method in methods:
                    sw = None if sweep is None else (sweep[0], value)
                    cell = Cell(method, dataset, seed, sw)
                    cfg = _cell_config(cell, preset, epochs, train_overrides or {},
                                       (params or {}).get(method, {}))
                    plan.append((cell, cfg))
    return plan


def _finished(run_dir: Path, eval_cfg: EvalConfig, epochs: int, method: str) -> dict | None:
    path = run_dir / RESULT_FILE
    if not path.exists():
        return None
    if not path.is_file():
        raise UserError(f"bench result {path} is not a file; move it out of the way")
    if not _trained(run_dir, epochs, method):
        return None
    try:
        res = read_result(path)
    except UserError as exc:  # a damaged record is recomputed, never trusted
        warn(f"{exc}; evaluating the cell again", key=("result", file_key(path)))
        return None
    want = eval_cfg.__dict__
    return res if res["protocol"] == want and res["epochs"] == epochs else None


def _cell_result(run_dir: Path, cell: Cell, cfg: TrainConfig, eval_cfg: EvalConfig,
                 loaded: LoadedRun) -> dict:
    # one load: evaluation, MSE and factor probes share it
    train_seconds = sum(r.get("seconds", 0.0) for r in read_metrics(run_dir))  # fail fast
    ev = _evaluate(run_dir, eval_cfg, loaded)
    res: dict[str, Any] = {"cell": cell.name, "method": cell.method, "dataset": cell.dataset,
                           "seed": cell.seed, "sweep": list(cell.sweep) if cell.sweep else None,
                           "epochs": cfg.epochs, "protocol": eval_cfg.__dict__,
                           "knn_best": ev["knn"]["best"], "knn_val_k": ev["knn_val_k"]["accuracy"],
                           "linear_probe": ev["linear_probe"]["test_accuracy"]}
    if "mlp_probe" in ev:
        res["mlp_probe"] = ev["mlp_probe"]["test_accuracy"]
    if "gmm" in ev:
        res.update(gmm_accuracy=ev["gmm"]["accuracy"], nmi=ev["gmm"]["nmi"], ari=ev["gmm"]["ari"])
    extra = extra_evaluations(loaded, eval_cfg)
    if "mse" in extra:
        res["mse"] = extra["mse"]
    if "fid" in extra:
        res["fid"], res["fid_features"] = extra["fid"]["value"], extra["fid"]["features"]
    if "factors" in extra:
        res["factors"], res["content"] = extra["factors"], res["linear_probe"]
    if "attributes" in extra:
        res["attributes"] = extra["attributes"]
    res["train_seconds"] = train_seconds
    return res


def run_grid(plan: list[tuple[Cell, TrainConfig]], out: Path, eval_cfg: EvalConfig,
             progress: bool = True, log=print) -> list[dict]:
    out = check_output_dir(out)
    if (out / "runs").exists() and not (out / "runs").is_dir():
        raise UserError(f"{out / 'runs'} is not a directory; a bench grid keeps its runs there")
    try:
        (out / "runs").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot create it ({exc.strerror or exc})") from None
    grid = {"cells": [c.name for c, _ in plan], "command": command_line(),
            "machine": machine_line(), "protocol": eval_cfg.__dict__,
            "methods": list(dict.fromkeys(c.method for c, _ in plan)),
            "datasets": list(dict.fromkeys(c.dataset for c, _ in plan)),
            "seeds": sorted({c.seed for c, _ in plan}),
            "sweep": None if plan[0][0].sweep is None else {
                "key": plan[0][0].sweep[0],
                "values": list(dict.fromkeys(c.sweep[1] for c, _ in plan))}}
    write_json_atomic(out / GRID_FILE, grid)
    results, t0, done_before = [], time.perf_counter(), 0
    bar = tqdm(plan, desc="bench", unit="cell", disable=not progress or None)
    for cell, cfg in bar:
        run_dir = out / "runs" / cell.name
        res = _finished(run_dir, eval_cfg, cfg.epochs, cell.method)
        if res is not None:
            done_before += 1
            results.append(res)
            continue
        bar.set_postfix(cell=cell.name)
        if not _trained(run_dir, cfg.epochs, cell.method):
            resume = (run_dir / CONFIG_FILE).exists()
            what = "training" if is_trainable(cell.method) else "initialising"
            log(f"[bench] {cell.name}: {what}" + (" (resumed)" if resume else ""))
            train(cfg, run_dir, resume=resume, progress=False, verbose=False)
        loaded = load_trained(run_dir, cfg, log, "[bench]")
        res = _cell_result(run_dir, cell, cfg, eval_cfg, loaded)
        write_json_atomic(run_dir / RESULT_FILE, res)
        results.append(res)
    bar.close()
    log(f"[bench] {len(plan)} cells ({done_before} already finished) in "
        f"{time.perf_counter() - t0:.0f} s -> {out}")
    return results
