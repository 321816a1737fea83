"""The run directory format: what a run directory holds, how it is written and read back.

Layout::

    RUN/config.json       {"train": TrainConfig, "method": the method's config}
    RUN/meta.json         probssl/torch/python versions, seed, command line, dataset, and
                          provenance: git state, package versions, sha256 of the training data
    RUN/metrics.jsonl     one JSON row per epoch
    RUN/checkpoints/      epoch-NNNN.pt (+ .sha256 sidecar), the last K kept
    RUN/eval.json         results of `probssl evaluate` (a :class:`probssl.runs.RunResult`)
    RUN/result.json       a bench cell's result (the record's flat view)
    RUN/embeddings/       cached encoder means per split
    RUN/decoder.pt        a decoder fitted to the frozen encoder (`probssl train-decoder`)
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

import probssl
from probssl.config import TrainConfig
from probssl.data import DATASETS, ImageDataset, get_preset, load_dataset
from probssl.data.augment import AugmentConfig, with_strength
from probssl.errors import UserError, exception_line
from probssl.methods import METHODS, Method, MethodConfig, build_method, make_method_config
from probssl.runs import checkpoint as ckpt
from probssl.runs.checkpoint import as_json
from probssl.runs.provenance import provenance
from probssl.schema import build_dataclass
from probssl.userio import read_json_as, read_jsonl_as

CONFIG_FILE = "config.json"
META_FILE = "meta.json"
METRICS_FILE = "metrics.jsonl"
EVAL_FILE = "eval.json"
RESULT_FILE = "result.json"


@dataclass
class ResolvedRun:
    train: TrainConfig
    method: MethodConfig
    data: ImageDataset
    augment: AugmentConfig

    def config_dict(self) -> dict[str, Any]:
        return {"train": self.train.to_dict(), "method": asdict(self.method)}


def dataset_defaults(data: ImageDataset) -> tuple[str, int]:
    """(architecture, latent_dim) the paper uses for this data (MLP/10 for grey, ResNet/64)."""
    info = DATASETS.get(data.name, None)
    if info is not None:
        return info.architecture, info.latent_dim
    colour_or_big = data.image_shape[0] == 3 or data.image_shape[1] >= 32
    return ("resnet", 64) if colour_or_big else ("mlp", 10)


def resolve(train: TrainConfig, data: ImageDataset | None = None) -> ResolvedRun:
    """Load the data and fill every default, so the saved config is complete."""
    if data is None:
        data = load_dataset(train.dataset, train.data_dir, download=train.download)
    arch, latent = dataset_defaults(data)
    method_cfg = make_method_config(train.method, train.params, arch=arch, latent_dim=latent)
    if train.augmentation is None:
        train.augmentation = data.augmentation
    train.params = asdict(method_cfg)
    return ResolvedRun(train, method_cfg, data,
                       with_strength(get_preset(train.augmentation), train.aug_strength))


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON via a temp file and a rename: ``path`` holds the old or the new
    content, never a part. A path that cannot be written (a directory in the way, no space,
    no permission) is one error naming it, and leaves no temp file behind."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"cannot write {path}: it is a directory")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


def write_text_file(path: Path, text: str) -> None:
    """Write a table or report; a path that cannot be written is one error naming it."""
    try:
        Path(path).write_text(text)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None


def write_run_files(run_dir: Path, resolved: ResolvedRun, extra: dict[str, Any]) -> None:
    """Write ``config.json`` (the resolved config) and ``meta.json`` (versions, seed, command,
    host, time, the dataset and the provenance of its training data, then ``extra``) in
    ``run_dir``, creating it."""
    for name in (CONFIG_FILE, META_FILE):  # both writable, or neither is written
        if (run_dir / name).is_dir():
            raise UserError(f"cannot write {run_dir / name}: it is a directory")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_dir / CONFIG_FILE, resolved.config_dict())
    meta = {
        "probssl_version": probssl.__version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "seed": resolved.train.seed,
        "command": sys.argv,
        "hostname": socket.gethostname(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "dataset": resolved.data.describe(),
        "dataset_source": resolved.data.source,
        # the training data as used: images and labels after loading (hashing draws no
        # random numbers, so recording it changes nothing in the run)
        "provenance": provenance([resolved.data.x_train, resolved.data.y_train]),
        **extra,
    }
    write_json_atomic(run_dir / META_FILE, meta)


# What config.json must hold (fields added to TrainConfig later may be missing in older
# runs; these were there from the first version). Values are then checked by TrainConfig.
CONFIG_SCHEMA = {"train": {"method": str, "dataset": str, "epochs": int, "seed": int,
                           "params": dict},
                 "method?": dict}


def read_run_config(run_dir: Path) -> TrainConfig:
    """The TrainConfig saved in a run directory (its ``params`` = the full method config).

    Any damage (unreadable, not JSON, wrong structure, a wrong type or value) is one
    :class:`UserError` naming ``config.json``."""
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
    if not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} " + ("is not a directory" if run_dir.exists()
                                                       else "does not exist"))
    if not path.exists():
        raise UserError(f"{run_dir} is not a probssl run (no {CONFIG_FILE})")
    where = f"run config {path}"
    saved = read_json_as(path, "run config", CONFIG_SCHEMA)
    train = dict(saved["train"])
    try:
        train["params"] = _with_legacy_defaults(train["method"], dict(train["params"]))
        return build_dataclass(TrainConfig, train, "train")
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None


def _with_legacy_defaults(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """A saved run holds every field its method config had *then*; a field added later takes
    the value that reproduces the old behaviour (the config class's ``LEGACY``), not today's
    default — so old runs stay loadable and mean what they meant."""
    spec = METHODS.get(method)
    legacy = getattr(spec.config_cls, "LEGACY", {}) if spec is not None else {}
    return {**{k: v for k, v in legacy.items() if k not in params}, **params}


# One row of metrics.jsonl: the epoch and its wall time (the losses vary by method).
METRICS_ROW = {"epoch": int, "seconds?": float}


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of ``metrics.jsonl`` (none if the file does not exist yet); a damaged line is
    one :class:`UserError` naming file and line.

    A row for an epoch already logged means training resumed from an earlier checkpoint (the
    newest was damaged) and redid that epoch: the later rows replace the earlier ones, so the
    result is the history of the run as it now stands."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    rows: list[dict[str, Any]] = []
    for row in read_jsonl_as(path, "metrics", METRICS_ROW):
        while rows and rows[-1]["epoch"] >= row["epoch"]:
            rows.pop()
        rows.append(row)
    return rows


@dataclass
class LoadedRun:
    """A run directory loaded for use: its resolved config and data, and its method with the
    weights of the newest loadable checkpoint (in eval mode, on the requested device).

    The files of ``run_dir`` (see the module docstring): ``config.json`` (read),
    ``meta.json`` (never read back), ``metrics.jsonl``, ``checkpoints/epoch-NNNN.pt`` (the
    newest loadable one is loaded) and the caches and results written next to them
    (``eval.json``, ``result.json``, ``embeddings/``, ``decoder.pt``)."""

    run_dir: Path
    resolved: ResolvedRun
    method: Method
    epoch: int  # the epoch of the loaded checkpoint (0: untrained)


def load_run(run_dir: str | Path, data_dir: str | None = None,
             device: str | torch.device = "cpu") -> LoadedRun:
    """Rebuild a run's method from its config and newest loadable checkpoint."""
    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    if data_dir is not None:
        cfg.data_dir = data_dir
    resolved = resolve(cfg)
    found = ckpt.load_latest_with_path(run_dir)
    if found is None:
        raise UserError(f"{run_dir} has no checkpoint (train it first)")
    path, state = found
    check_checkpoint_matches_config(resolved, state, path, run_dir / CONFIG_FILE)
    method = build_method(cfg.method, resolved.method, resolved.data.image_shape)
    try:
        method.load_state_dict(state["model"])
    except (RuntimeError, TypeError, AttributeError, KeyError, ValueError) as exc:
        raise UserError(f"checkpoint {path} does not match the run config "
                        f"{run_dir / CONFIG_FILE} ({exception_line(exc)})") from None
    method.to(device).eval()
    return LoadedRun(run_dir, resolved, method, int(state["epoch"]))


def check_checkpoint_matches_config(resolved: ResolvedRun, state: dict[str, Any], path: Path,
                       config_path: Path) -> None:
    """The method config of ``config.json`` is the one the checkpoint was trained with (each
    checkpoint records it): an edited or damaged config fails here, naming the field, before
    any network is built from it."""
    saved = state.get("config")
    saved = saved.get("method") if isinstance(saved, dict) else None
    if not isinstance(saved, dict):
        return  # a checkpoint that does not record its config: load_state_dict checks
    now = asdict(resolved.method)
    diff = sorted(k for k in saved if k in now and as_json(saved[k]) != as_json(now[k]))
    if diff:
        k = diff[0]
        raise UserError(f"run config {config_path} does not match its checkpoint {path}: "
                        f"params.{k} is {now[k]!r} in the config, {saved[k]!r} in the "
                        "checkpoint")
