"""Experiment trackers beside TensorBoard: Weights & Biases and MLflow (optional extras).

``--logger tensorboard,wandb,mlflow`` (``TrainConfig.logger``) chooses them. Each tracker gets
the run's config when training starts, one row per epoch (the losses, the online k-NN
``knn_val``, views/s) with the epoch as its step, and — when ``probssl evaluate`` or ``bench``
evaluates the run later — the final evaluation's numbers under ``eval/`` (kNN, probes, GMM,
RankMe, FID, ...). Only the main rank logs.

Where the numbers go follows each tool's own environment variables:

- W&B: ``WANDB_PROJECT`` (default ``probssl``), ``WANDB_ENTITY``, ``WANDB_MODE`` (``offline``
  writes under ``RUN/wandb`` for a later ``wandb sync``; online needs ``wandb login``).
- MLflow: ``MLFLOW_TRACKING_URI`` (default: MLflow's own, a local ``sqlite:///mlflow.db``
  in the working directory, made absolute; a file store ``file:./mlruns`` needs
  ``MLFLOW_ALLOW_FILE_STORE=true`` since MLflow 3) and ``MLFLOW_EXPERIMENT_NAME`` (default
  ``probssl``).

The tracker runs' ids are kept in ``RUN/trackers.json``, so a resumed run and its later
evaluation log into the same W&B/MLflow run instead of starting new ones.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from probssl.errors import UserError, exception_line
from probssl.train.loop import Callback, Trainer
from probssl.userio import read_json, warn

TRACKERS_FILE = "trackers.json"
LOGGERS = ("tensorboard", "wandb", "mlflow")
# the package each tracker imports, and the extra that installs it
_PACKAGES = {"wandb": ("wandb", "wandb"), "mlflow": ("mlflow", "mlflow")}


def parse_loggers(spec: str) -> tuple[str, ...]:
    """``"tensorboard,wandb"`` -> ("tensorboard", "wandb"); ``"none"`` or ``""`` -> ().
    Unknown names, and W&B/MLflow without their package, are user errors (raised when the
    config is built, before any work)."""
    names = [s.strip() for s in str(spec).split(",") if s.strip()]
    if names == ["none"]:
        return ()
    out: list[str] = []
    for name in names:
        if name not in LOGGERS:
            raise UserError(f"logger must be a comma-separated list of {', '.join(LOGGERS)} "
                            f"(or none); got {name!r}")
        if name in _PACKAGES and importlib.util.find_spec(_PACKAGES[name][0]) is None:
            raise UserError(f"logger {name!r} needs the {_PACKAGES[name][0]} package: "
                            f"pip install 'probssl[{_PACKAGES[name][1]}]'")
        if name not in out:
            out.append(name)
    return tuple(out)


def flat_numbers(d: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    """The finite numeric leaves of a nested dict as ("a/b/c", value) pairs (bools and
    strings left out): what a tracker can plot."""
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from flat_numbers(value, name + "/")
        elif isinstance(value, (int, float)) and not isinstance(value, bool) \
                and math.isfinite(value):
            yield name, float(value)


def _flat_params(d: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from _flat_params(value, name + ".")
        else:
            yield name, json.dumps(value, default=str)[:500]  # MLflow's limit per value


def _read_ids(run_dir: Path) -> dict[str, Any]:
    path = run_dir / TRACKERS_FILE
    if not path.exists():
        return {}
    try:
        return read_json(path, "trackers file")
    except UserError as exc:  # a damaged file: start new tracker runs
        warn(f"{exc}; new tracker runs are started")
        return {}


def _write_ids(run_dir: Path, ids: dict[str, Any]) -> None:
    from probssl.runs.format import write_json_atomic  # lazy: runs imports train

    write_json_atomic(run_dir / TRACKERS_FILE, ids)


class _WandbRun:
    def __init__(self, run_dir: Path, config: dict[str, Any], ids: dict[str, Any]) -> None:
        import wandb

        known = ids.get("wandb", {})
        try:
            self.run = wandb.init(
                project=known.get("project") or os.environ.get("WANDB_PROJECT", "probssl"),
                entity=known.get("entity") or os.environ.get("WANDB_ENTITY"),
                id=known.get("id"), resume="allow", name=run_dir.name, dir=str(run_dir),
                config=config, reinit="create_new",
                # read now: wandb's process-wide settings keep the mode of its first init
                mode=os.environ.get("WANDB_MODE") or None)
        except Exception as exc:  # no login, no network, ...: one line, before training
            raise UserError(f"--logger wandb: wandb.init failed: {exception_line(exc)} (run "
                            "`wandb login`, or set WANDB_MODE=offline to log locally)") from None
        ids["wandb"] = {"id": self.run.id, "project": self.run.project,
                        "entity": self.run.entity or None}

    def log(self, numbers: dict[str, float], step: int | None) -> None:
        if step is None:
            self.run.summary.update(numbers)
        else:
            self.run.log(numbers, step=step)

    def close(self) -> None:
        self.run.finish()


class _MlflowRun:
    def __init__(self, run_dir: Path, config: dict[str, Any], ids: dict[str, Any]) -> None:
        import mlflow
        from mlflow.entities import Param

        # its sqlite store announces each schema migration at INFO on stderr
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        known = ids.get("mlflow", {})
        # MLFLOW_TRACKING_URI, else MLflow's own default (a local sqlite:///mlflow.db,
        # made absolute): remembered, so a resume or evaluation from elsewhere finds it
        uri = known.get("tracking_uri") or mlflow.get_tracking_uri()
        try:
            self.client = mlflow.MlflowClient(tracking_uri=uri)
            if known.get("run_id"):
                self.run_id = known["run_id"]
                self.client.get_run(self.run_id)  # still there?
                self.client.update_run(self.run_id, status="RUNNING")
            else:
                name = os.environ.get("MLFLOW_EXPERIMENT_NAME", "probssl")
                exp = self.client.get_experiment_by_name(name)
                exp_id = exp.experiment_id if exp else self.client.create_experiment(name)
                self.run_id = self.client.create_run(exp_id, run_name=run_dir.name).info.run_id
                params = [Param(k, v) for k, v in _flat_params(config)]
                for i in range(0, len(params), 100):  # MLflow takes 100 params per batch
                    self.client.log_batch(self.run_id, params=params[i:i + 100])
                self.client.set_tag(self.run_id, "probssl.run_dir", str(run_dir.resolve()))
        except Exception as exc:
            raise UserError(f"--logger mlflow: tracking at {uri} failed: "
                            f"{exception_line(exc)}") from None
        ids["mlflow"] = {"run_id": self.run_id, "tracking_uri": uri}

    def log(self, numbers: dict[str, float], step: int | None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step or 0) for k, v in numbers.items()]
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[i:i + 1000])

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


_OPENERS = {"wandb": _WandbRun, "mlflow": _MlflowRun}


def open_trackers(run_dir: Path, names: tuple[str, ...], config: dict[str, Any]
                  ) -> list[Any]:
    """The tracker runs of ``names`` (TensorBoard aside) for ``run_dir``, resumed when
    ``RUN/trackers.json`` names them; their ids are written back there."""
    names = tuple(n for n in names if n in _OPENERS)
    if not names:
        return []
    ids = _read_ids(run_dir)
    opened = []
    try:
        for name in names:
            opened.append(_OPENERS[name](run_dir, config, ids))
    except BaseException:
        for tracker in opened:
            tracker.close()
        raise
    _write_ids(run_dir, ids)
    return opened


class Trackers(Callback):
    """W&B / MLflow logging of a training run (main rank only): the config at the start,
    each epoch's row with the epoch as step, closed when the loop ends."""

    def __init__(self, run_dir: Path, names: tuple[str, ...], config: dict[str, Any],
                 enabled: bool) -> None:
        self.run_dir = run_dir
        self.names = names if enabled else ()
        self.config = config
        self.open: list[Any] = []

    def on_train_start(self, trainer: Trainer) -> None:
        self.open = open_trackers(self.run_dir, self.names, self.config)

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        numbers = dict(flat_numbers({k: v for k, v in row.items() if k != "epoch"}))
        for tracker in self.open:
            tracker.log(numbers, row["epoch"])

    def on_train_end(self, trainer: Trainer) -> None:
        for tracker in self.open:
            tracker.close()
        self.open = []


def log_evaluation(run_dir: Path, names: tuple[str, ...], config: dict[str, Any],
                   result: dict[str, Any]) -> None:
    """The final evaluation ``result`` (an ``eval.json`` record) as ``eval/...`` numbers in
    the run's trackers (W&B: the run summary; MLflow: metrics at the last epoch)."""
    numbers = {f"eval/{k}": v for k, v in
               flat_numbers({k: v for k, v in result.items()
                             if k not in ("protocol", "seed", "n_train", "n_test")})}
    trackers = open_trackers(run_dir, names, config)
    try:
        for tracker in trackers:
            tracker.log(numbers, None if isinstance(tracker, _WandbRun)
                        else int(result.get("epoch", 0)))
    finally:
        for tracker in trackers:
            tracker.close()


def log_run_evaluation(loaded: Any, result: dict[str, Any]) -> None:
    """:func:`log_evaluation` for a loaded run (a :class:`probssl.runs.LoadedRun`) whose
    config names W&B or MLflow; nothing otherwise."""
    names = tuple(n for n in parse_loggers(getattr(loaded.resolved.train, "logger",
                                                   "tensorboard")) if n in _OPENERS)
    if not names:
        return
    try:
        log_evaluation(Path(loaded.run_dir), names, loaded.resolved.config_dict(), result)
    except UserError as exc:  # the evaluation itself is written; say what did not reach
        warn(f"{exc}; the evaluation is in {Path(loaded.run_dir) / 'eval.json'} but not in "
             "the tracker")

