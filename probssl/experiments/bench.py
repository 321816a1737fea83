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

:func:`run_cells` is the one engine: ``bench`` runs it over ``OUT/runs/CELL``, ``compare`` (a
one-dataset bench with its own folder names and table) over ``OUT/METHOD-DATASET-seedS``.
"""

from __future__ import annotations

import time
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from probssl.config import TrainConfig, resolve
from probssl.errors import UserError
from probssl.evaluate import EvalConfig
from probssl.evaluate.embed import run_embeddings
from probssl.evaluate.external import InputConvention, evaluate_encoder, load_encoder
from probssl.evaluate.likelihood import run_likelihood
from probssl.evaluate.protocol import evaluate_run_result, extra_evaluations
from probssl.evaluate.rankme import rankme
from probssl.methods import Method, get_method_spec, is_trainable
from probssl.runs.checkpoint import list_checkpoints
from probssl.runs.format import (
    CONFIG_FILE,
    EVAL_FILE,
    RESULT_FILE,
    LoadedRun,
    load_run,
    read_metrics,
    write_json_atomic,
)
from probssl.runs.provenance import command_line, machine_line
from probssl.runs.result import EVAL_SCHEMA, RunResult, read_result
from probssl.schema import field_names, parse_assignments, parse_scalar
from probssl.train import train
from probssl.train.trackers import log_run_evaluation
from probssl.userio import Check, check_output_dir, file_key, read_json_as, safe_name, warn

GRID_FILE = "grid.json"
# what the frozen-encoder protocol reports for every run (evaluate_embeddings)
PROTOCOL_METRICS = ("knn", "knn_val_k", "linear_probe", "mlp_probe", "gmm", "rankme")
SWEEP_ALIASES = {"J": "n_views"}

_SCALAR = (str, int, float, bool)
# What grid.json must hold (report lays its tables out from it).
GRID_SCHEMA = {
    "cells": [Check(str, safe_name, "a plain folder name")],
    "methods": [str], "datasets": [str], "seeds": [int],
    "sweep?": (None, {"key": str, "values": [_SCALAR]}),
    "protocol": {"knn_metric": str, "k_max": int, "probe_lr": float, "probe_epochs": int,
                 "probe_batch_size": int, "gmm_n_init": int},
    "command": str, "machine": str,
}
__all__ = ["GRID_FILE", "RESULT_FILE", "Cell", "parse_sweep", "plan_grid", "read_grid",
           "read_result", "run_cells", "run_grid"]


def read_grid(path: Path) -> dict:
    """A grid's ``grid.json``, read and checked against :data:`GRID_SCHEMA` (any damage is one
    :class:`UserError` naming the file)."""
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
    """Every cell of the grid (datasets × swept values × seeds × methods, in that nesting) with
    its TrainConfig, resolved and validated now: ``preset``, then ``train_overrides``,
    ``epochs``, the method's ``params`` and the cell's swept value (module docstring)."""
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


def _trained(run_dir: Path, epochs: int, method: str) -> bool:
    ck = list_checkpoints(run_dir)
    return (run_dir / CONFIG_FILE).exists() and bool(ck) and \
        ck[-1][0] >= (epochs if is_trainable(method) else 0)


def load_trained(run_dir: Path, cfg: TrainConfig, log=print, tag: str = "[bench]"
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


def evaluate_cached(run_dir: Path, eval_cfg: EvalConfig, loaded: LoadedRun | None = None
                    ) -> RunResult:
    """The run's evaluation under ``eval_cfg``: ``eval.json`` when it is for the loaded
    checkpoint and this protocol, else evaluated now and written there."""
    old = _cached_evaluation(run_dir)
    loaded = loaded if loaded is not None else load_run(run_dir)
    if old is not None and old["epoch"] == loaded.epoch and \
            old["protocol"] == eval_cfg.__dict__:
        if "rankme" not in old:  # evaluated before RankMe existed: from the cached embeddings
            z_train, _ = run_embeddings(loaded, "train")
            old["rankme"] = {"rank": rankme(z_train), "on": "train"}
            write_json_atomic(run_dir / EVAL_FILE, old)
        tc = loaded.resolved.train
        return RunResult.from_json(old, method=tc.method, dataset=tc.dataset, seed=tc.seed)
    result = evaluate_run_result(loaded, eval_cfg)
    write_json_atomic(run_dir / EVAL_FILE, result.to_json())
    log_run_evaluation(loaded, result.to_json())
    return result


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
    if res["protocol"] != want or res["epochs"] != epochs:
        return None
    if "rankme" not in res:  # a cell finished before RankMe existed: add it, cheaply
        z_train, _ = run_embeddings(load_run(run_dir), "train")
        res["rankme"] = rankme(z_train)
        write_json_atomic(path, res)
    if "iwae_ll" not in res and _is_density_model(method):
        # a cell finished before the held-out likelihood existed: add it (seconds on CPU)
        lk = run_likelihood(load_run(run_dir), eval_cfg.seed)
        if lk is not None:
            res["heldout_elbo"], res["iwae_ll"] = lk["elbo"], lk["iwae"]
            write_json_atomic(path, res)
    return res


def _is_density_model(method: str) -> bool:
    """Whether ``method``'s class declares :meth:`Method.likelihood_model`."""
    build = get_method_spec(method).build
    return getattr(build, "likelihood_model", Method.likelihood_model) is not \
        Method.likelihood_model


def _cell_result(run_dir: Path, cell: Cell, cfg: TrainConfig, eval_cfg: EvalConfig,
                 loaded: LoadedRun, extras: bool = True) -> RunResult:
    # one load: evaluation, MSE and factor probes share it
    train_seconds = sum(r.get("seconds", 0.0) for r in read_metrics(run_dir))  # fail fast
    ev = evaluate_cached(run_dir, eval_cfg, loaded)
    metrics = {k: ev.metrics[k] for k in PROTOCOL_METRICS if k in ev.metrics}
    if extras:
        metrics.update(extra_evaluations(loaded, eval_cfg))
    return RunResult(method=cell.method, dataset=cell.dataset, seed=cell.seed,
                     epoch=loaded.epoch, protocol=eval_cfg.__dict__, metrics=metrics,
                     run=str(run_dir), cell=cell.name, sweep=cell.sweep, epochs=cfg.epochs,
                     train_seconds=train_seconds)


# what the engine says when a cell is trained: (cell, cfg, resumed) -> the log line
Announce = Callable[[Cell, TrainConfig, bool], str]


def _bench_announce(cell: Cell, cfg: TrainConfig, resume: bool) -> str:
    what = "training" if is_trainable(cell.method) else "initialising"
    return f"[bench] {cell.name}: {what}" + (" (resumed)" if resume else "")


def stack_groups(cells: list[tuple[Cell, TrainConfig, Path]], parallel: int
                 ) -> list[list[tuple[Cell, TrainConfig, Path]]]:
    """The cells still to train, in groups of at most ``parallel`` that differ only by seed
    (same method, dataset, swept value and settings), in grid order; singletons dropped."""
    by_key: dict[str, list[tuple[Cell, TrainConfig, Path]]] = {}
    for cell, cfg, run_dir in cells:
        if _trained(run_dir, cfg.epochs, cell.method) or not is_trainable(cell.method):
            continue
        key = repr(sorted({**cfg.to_dict(), "seed": None}.items()))
        by_key.setdefault(key, []).append((cell, cfg, run_dir))
    groups = []
    for members in by_key.values():
        for i in range(0, len(members), parallel):
            if len(members[i:i + parallel]) > 1:
                groups.append(members[i:i + parallel])
    return groups


def train_stacked(cells: list[tuple[Cell, TrainConfig, Path]], parallel: int, log=print,
                  tag: str = "[bench]", progress: bool = False) -> None:
    """Train the grid's unfinished cells ``parallel`` seeds at a time as one stacked model
    (:mod:`probssl.train.parallel`); a group that cannot be stacked is left, with one line
    saying why, to be trained one by one (as are the cells no group holds)."""
    from probssl.train.parallel import CannotStack, train_parallel  # lazy: torch.func

    for group in stack_groups(cells, parallel):
        names = ", ".join(c.name for c, _, _ in group)
        resume = [(d / CONFIG_FILE).exists() for _, _, d in group]
        try:
            log(f"{tag} {names}: training {len(group)} seeds side by side"
                + (" (resumed)" if any(resume) else ""))
            results = train_parallel([cfg for _, cfg, _ in group], [d for _, _, d in group],
                                     resume, progress=progress)
        except CannotStack as exc:
            log(f"{tag} {names}: trained one by one ({exc})")
            continue
        for (cell, cfg, _), r in zip(group, results, strict=True):
            if r.epochs_done < cfg.epochs:
                log(f"{tag} {cell.name}: its loss diverged; it is run alone next, to report it")


def run_cells(cells: list[tuple[Cell, TrainConfig, Path]], eval_cfg: EvalConfig, *,
              progress: bool = True, log=print, tag: str = "[bench]",
              announce: Announce = _bench_announce, train_progress: bool = False,
              extras: bool = True,
              on_result: Callable[[Cell, dict], None] | None = None,
              parallel: int = 1) -> tuple[list[dict], int]:
    """The engine: each cell trained (or resumed) in its run directory, evaluated, and its
    flat result written to ``RUN/result.json``; a finished cell is read back, not re-run.
    Returns the flat results (:meth:`RunResult.flat`) in the order of ``cells``, and how
    many cells were finished before.
    ``extras``: also the evaluations only some runs allow (MSE, FID, factors, attributes).
    ``parallel``: train up to that many seeds of a cell at once (:func:`train_stacked`)."""
    if parallel > 1:
        train_stacked([c for c in cells
                       if _finished(c[2], eval_cfg, c[1].epochs, c[0].method) is None],
                      parallel, log, tag, train_progress)
    results: list[dict] = []
    done_before = 0
    bar = tqdm(cells, desc="bench", unit="cell", disable=not progress or None)
    for cell, cfg, run_dir in bar:
        res = _finished(run_dir, eval_cfg, cfg.epochs, cell.method)
        if res is not None:
            done_before += 1
            results.append(res)
            if on_result is not None:
                on_result(cell, res)
            continue
        bar.set_postfix(cell=cell.name)
        if not _trained(run_dir, cfg.epochs, cell.method):
            resume = (run_dir / CONFIG_FILE).exists()
            log(announce(cell, cfg, resume))
            train(cfg, run_dir, resume=resume, progress=train_progress, verbose=False)
        loaded = load_trained(run_dir, cfg, log, tag)
        res = _cell_result(run_dir, cell, cfg, eval_cfg, loaded, extras).flat()
        write_json_atomic(run_dir / RESULT_FILE, res)
        results.append(res)
        if on_result is not None:
            on_result(cell, res)
    bar.close()
    return results, done_before


@dataclass(frozen=True)
class ExternalEncoder:
    """An encoder trained elsewhere, evaluated as a row of a grid (``bench --encoder``):
    ``name`` (the row), ``spec`` and ``code`` as for ``probssl evaluate --encoder``."""

    name: str
    spec: str
    code: str | None = None


def parse_encoders(items: list[str] | None) -> list[ExternalEncoder]:
    """``NAME=SPEC`` or ``NAME=SPEC@MODULE:BUILDER`` -> ExternalEncoder; names are checked."""
    out = []
    for item in items or []:
        name, sep, rest = item.partition("=")
        if not sep or not name or not rest:
            raise UserError(f"--encoder {item!r}: expected NAME=SPEC or NAME=SPEC@MODULE:BUILDER")
        if not safe_name(name) or "__" in name:
            raise UserError(f"--encoder {item!r}: the name must be a plain folder name "
                            "without '__'")
        spec, _, code = rest.partition("@")
        out.append(ExternalEncoder(name, spec, code or None))
    names = [e.name for e in out]
    if len(set(names)) != len(names):
        raise UserError(f"--encoder: the names must differ; got {', '.join(names)}")
    return out


def external_cell(enc: ExternalEncoder, dataset: str) -> Cell:
    """The grid cell of an external encoder on ``dataset``: method = the encoder's name, seed 0."""
    return Cell(enc.name, dataset, 0)


def _external_result(enc: ExternalEncoder, dataset: str, run_dir: Path, eval_cfg: EvalConfig,
                     convention: Any, log=print) -> dict:
    """The flat result of an external encoder's cell; reused when its protocol, input
    convention and file are the same."""
    path = run_dir / RESULT_FILE
    want = {"file": enc.spec, "code": enc.code}
    if path.is_file():
        try:
            old = read_result(path)
            if old["protocol"] == eval_cfg.__dict__ and old.get("external") == want and \
                    old.get("input_convention") == asdict(convention):
                return old
        except UserError as exc:
            warn(f"{exc}; evaluating the encoder again", key=("result", file_key(path)))
    log(f"[bench] {enc.name} on {dataset}: evaluating the external encoder {enc.spec}")
    fn, info = load_encoder(enc.spec, enc.code)
    r = evaluate_encoder(fn, dataset, eval_cfg, convention)
    # the protocol's numbers and what the dataset's ground truth allows (factors, attributes)
    metrics = {k: r[k] for k in (*PROTOCOL_METRICS, "factors", "attributes") if k in r}
    res = RunResult(method=enc.name, dataset=dataset, seed=0, epoch=0,
                    protocol=eval_cfg.__dict__, metrics=metrics, run=str(run_dir),
                    cell=external_cell(enc, dataset).name, sweep=None, epochs=0).flat()
    res.update(external=want, encoder=info, input=r["input"],
               input_convention=asdict(convention))
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, res)
    return res


def run_grid(plan: list[tuple[Cell, TrainConfig]], out: Path, eval_cfg: EvalConfig,
             progress: bool = True, log=print, external: list[ExternalEncoder] = (),
             convention: Any = None, parallel: int = 1) -> list[dict]:
    """Train, evaluate and record every cell of ``plan`` in ``out`` (resumable), then
    evaluate each ``external`` encoder on each dataset of the plan as a row of its own
    (input ``convention``: :class:`probssl.evaluate.external.InputConvention`).
    ``parallel``: seeds trained side by side (:func:`train_stacked`)."""
    out = check_output_dir(out)
    if (out / "runs").exists() and not (out / "runs").is_dir():
        raise UserError(f"{out / 'runs'} is not a directory; a bench grid keeps its runs there")
    try:
        (out / "runs").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot create it ({exc.strerror or exc})") from None
    datasets = list(dict.fromkeys(c.dataset for c, _ in plan))
    if external and plan[0][0].sweep is not None:
        raise UserError("bench: --encoder rows and --sweep do not go together (an external "
                        "encoder has no swept parameter)")
    clash = {e.name for e in external} & {c.method for c, _ in plan}
    if clash:
        raise UserError(f"--encoder {sorted(clash)[0]!r}: a method of the grid has that name")
    ext_cells = [(e, d, external_cell(e, d)) for e in external for d in datasets]
    grid = {"cells": [c.name for c, _ in plan] + [c.name for _, _, c in ext_cells],
            "command": command_line(),
            "machine": machine_line(), "protocol": eval_cfg.__dict__,
            "methods": list(dict.fromkeys([c.method for c, _ in plan]
                                          + [e.name for e in external])),
            "datasets": datasets,
            "seeds": sorted({c.seed for c, _ in plan} | ({0} if external else set())),
            "sweep": None if plan[0][0].sweep is None else {
                "key": plan[0][0].sweep[0],
                "values": list(dict.fromkeys(c.sweep[1] for c, _ in plan))}}
    write_json_atomic(out / GRID_FILE, grid)
    t0 = time.perf_counter()
    results, done_before = run_cells([(c, cfg, out / "runs" / c.name) for c, cfg in plan],
                                     eval_cfg, progress=progress, log=log,
                                     parallel=parallel)
    if ext_cells:
        conv = convention if convention is not None else InputConvention()
        for enc, d, cell in ext_cells:
            results.append(_external_result(enc, d, out / "runs" / cell.name, eval_cfg,
                                            conv, log))
    log(f"[bench] {len(plan)} cells ({done_before} already finished) in "
        f"{time.perf_counter() - t0:.0f} s -> {out}")
    return results
