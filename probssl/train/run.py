"""A run directory: the resolved config, versions and seed, metrics and checkpoints.

Layout::

    RUN/config.json       {"train": TrainConfig, "method": the method's config}
    RUN/meta.json         probssl/torch/python versions, seed, command line, dataset
    RUN/metrics.jsonl     one JSON row per epoch
    RUN/checkpoints/      epoch-NNNN.pt, the last K kept
    RUN/eval.json         results of `probssl evaluate`
    RUN/embeddings/       cached encoder means per split
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
from probssl.config import TrainConfig, build_dataclass
from probssl.data import DATASETS, ImageDataset, get_preset, load_dataset
from probssl.data.augment import AugmentConfig, with_strength
from probssl.errors import UserError
from probssl.methods import MethodConfig, make_method_config

CONFIG_FILE = "config.json"
META_FILE = "meta.json"
METRICS_FILE = "metrics.jsonl"


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
    info = DATASETS.get(data.name)
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
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def write_run_files(run_dir: Path, resolved: ResolvedRun, extra: dict[str, Any]) -> None:
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
        **extra,
    }
    write_json_atomic(run_dir / META_FILE, meta)


def read_run_config(run_dir: Path) -> TrainConfig:
    """The TrainConfig saved in a run directory (its ``params`` = the full method config)."""
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
    if not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} does not exist")
    if not path.is_file():
        raise UserError(f"{run_dir} is not a probssl run (no {CONFIG_FILE})")
    try:
        saved = json.loads(path.read_text())
        train = dict(saved["train"])
        train["params"] = _with_legacy_defaults(train.get("method", "vae"),
                                                dict(train.get("params") or {}))
        return build_dataclass(TrainConfig, train, f"{path}")
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"{path}: unreadable run config ({exc})") from None


def _with_legacy_defaults(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """A saved run holds every field its method config had *then*; a field added later takes
    the value that reproduces the old behaviour (the config class's ``LEGACY``), not today's
    default — so old runs stay loadable and mean what they meant."""
    from probssl.methods import METHODS

    spec = METHODS.get(method)
    legacy = getattr(spec.config_cls, "LEGACY", {}) if spec is not None else {}
    return {**{k: v for k, v in legacy.items() if k not in params}, **params}


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class LoadedRun:
    run_dir: Path
    resolved: ResolvedRun
    method: Any  # probssl.methods.Method
    epoch: int


def load_run(run_dir: str | Path, data_dir: str | None = None,
             device: str | torch.device = "cpu") -> LoadedRun:
    """Rebuild a run's method from its config and newest loadable checkpoint."""
    from probssl.methods import build_method
    from probssl.train import checkpoint as ckpt

    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    if data_dir is not None:
        cfg.data_dir = data_dir
    resolved = resolve(cfg)
    method = build_method(cfg.method, resolved.method, resolved.data.image_shape)
    state = ckpt.load_latest(run_dir)
    if state is None:
        raise UserError(f"{run_dir} has no loadable checkpoint (train it first)")
    try:
        method.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise UserError(f"{run_dir}: checkpoint does not match its config "
                        f"({str(exc).splitlines()[0]})") from None
    method.to(device).eval()
    return LoadedRun(run_dir, resolved, method, int(state["epoch"]))
