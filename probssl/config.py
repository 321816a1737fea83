"""Configuration: dataclasses validated when built, loaded from TOML/YAML, overridden by flags.

A run is described by a :class:`TrainConfig` (what every method shares) and the method's own
config dataclass (see :mod:`probssl.methods`). In a config file, the TrainConfig fields are
top-level keys and the method's fields live in a ``[params]`` table::

    method = "vae"
    dataset = "digits"
    epochs = 20
    [params]
    beta = 4.0

Every bad key, type or value raises :class:`~probssl.errors.UserError` naming it.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probssl.data.augment import get_preset
from probssl.data.registry import check_dataset_name
from probssl.errors import UserError
from probssl.methods import get_method_spec, make_method_config
from probssl.presets import PRESETS, combine
from probssl.schema import build_dataclass, check_types, load_config_file

DEVICES = ("auto", "cpu", "cuda")
OPTIMIZERS = ("adam", "adamw", "sgd", "lars")
SCHEDULES = ("constant", "warmup-cosine")


def _record_given(cls):
    """Wrap the dataclass ``__init__`` to record which fields the caller gave: a preset
    fills only the others, so ``TrainConfig(method="simvae", preset="paper", lr=1e-3)`` is
    the paper's settings with lr 1e-3 — what ``--preset paper --lr 1e-3`` means."""
    init = cls.__init__
    names = [f.name for f in dataclasses.fields(cls)]

    def __init__(self, *args, **kwargs):
        object.__setattr__(self, "_given", frozenset(names[:len(args)]) | frozenset(kwargs))
        init(self, *args, **kwargs)

    __init__.__doc__ = init.__doc__
    __init__.__signature__ = inspect.signature(init)
    cls.__init__ = __init__
    return cls


@_record_given
@dataclass
class TrainConfig:
    """Settings every method shares: data, optimisation, device, bookkeeping.

    ``preset`` fills every field (and method param) the caller did not give with the
    preset's value for this method and dataset (:mod:`probssl.presets`), so from Python
    ``TrainConfig(method="simvae", preset="paper")`` means what ``probssl train --method
    simvae --preset paper`` means."""

    method: str = "vae"
    dataset: str = "digits"
    preset: str | None = None  # recorded; its values are resolved into the fields below
    data_dir: str | None = None
    download: bool = False
    augmentation: str | None = None  # preset name; None = the dataset's default
    # Scales the preset's crop and colour jitter (arXiv:2402.01399 Fig. 6): 0 = no crop, no
    # jitter; 1 = the preset as published; > 1 stronger. Flips and binarisation unchanged.
    aug_strength: float = 1.0
    # How a step's J views arise: "augment" = J augmentations of each image; "next-frame" =
    # the training images are an ordered sequence and the views are frames t, t+1, ... t+J-1
    # (no augmentation), e.g. consecutive video frames for an RPM.
    views: str = "augment"
    epochs: int = 20
    batch_size: int = 128
    # optimisation (probssl.train.optim): Adam is the papers' choice for every method;
    # SGD with momentum (MoCo) and LARS with warmup + cosine (SimCLR, VICReg at large batch)
    # are what the discriminative baselines use at scale
    optimizer: str = "adam"
    lr: float = 1e-3
    adam_eps: float = 1e-8
    momentum: float = 0.9  # sgd and lars
    weight_decay: float = 0.0  # adamw, sgd and lars exclude biases and norm layers
    schedule: str = "constant"  # or "warmup-cosine" (per step)
    warmup_epochs: int = 0
    final_lr_ratio: float = 0.0  # warmup-cosine: the lr at the end, relative to lr
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # bfloat16 autocast, CUDA only
    compile: bool = False  # torch.compile the training forward (a C++ compiler on CPU)
    # under DDP, batch norm with statistics over every rank's batch (CUDA only: torch's
    # SyncBatchNorm rejects CPU tensors)
    sync_bn: bool = False
    keep_checkpoints: int = 2
    # also checkpoint every N steps inside an epoch (0: only at epoch ends); a killed run
    # then loses at most N steps
    checkpoint_every: int = 0
    tensorboard: bool = True  # used only if the tensorboard package is installed
    # experiment trackers (probssl.train.trackers): comma-separated tensorboard, wandb,
    # mlflow, or none; W&B and MLflow are optional extras
    logger: str = "tensorboard"
    # online evaluation (probssl.train.callbacks.OnlineKNN): every N epochs and after the
    # last, k-NN accuracy of eval_val_size validation images carved from the training set
    # against up to eval_ref_size other training images, logged as knn_val (0: off; the
    # weights are the same either way)
    eval_every: int = 0
    eval_val_size: int = 1000
    eval_ref_size: int = 5000
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        given = getattr(self, "_given", frozenset(f.name for f in dataclasses.fields(self)))
        if self.preset is not None and isinstance(self.preset, str):
            self._apply_preset(given)
        check_types(self, "config")
        check_dataset_name(self.dataset)
        if self.epochs < 0:
            raise UserError(f"epochs must be >= 0; got {self.epochs}")
        if self.batch_size < 1:
            raise UserError(f"batch_size must be >= 1; got {self.batch_size}")
        if not self.lr > 0:
            raise UserError(f"lr must be > 0; got {self.lr}")
        if not self.adam_eps > 0:
            raise UserError(f"adam_eps must be > 0; got {self.adam_eps}")
        if self.weight_decay < 0:
            raise UserError(f"weight_decay must be >= 0; got {self.weight_decay}")
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; "
                            f"got {self.optimizer!r}")
        if not 0 <= self.momentum < 1:
            raise UserError(f"momentum must lie in [0, 1); got {self.momentum}")
        if self.schedule not in SCHEDULES:
            raise UserError(f"schedule must be one of {', '.join(SCHEDULES)}; "
                            f"got {self.schedule!r}")
        if not 0 <= self.warmup_epochs <= max(self.epochs, 0):
            raise UserError(f"warmup_epochs must lie in [0, epochs={self.epochs}]; "
                            f"got {self.warmup_epochs}")
        if not 0 <= self.final_lr_ratio <= 1:
            raise UserError(f"final_lr_ratio must lie in [0, 1]; got {self.final_lr_ratio}")
        if self.seed < 0:
            raise UserError(f"seed must be >= 0; got {self.seed}")
        for name, low in (("eval_every", 0), ("eval_val_size", 1), ("eval_ref_size", 1)):
            if getattr(self, name) < low:
                raise UserError(f"{name} must be >= {low}; got {getattr(self, name)}")
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise UserError(f"device must be one of {', '.join(DEVICES)} or cuda:N; "
                            f"got {self.device!r}")
        if self.views not in ("augment", "next-frame"):
            raise UserError(f"views must be 'augment' or 'next-frame'; got {self.views!r}")
        if not 0.0 <= self.aug_strength <= 10.0:
            raise UserError(f"aug_strength must lie in [0, 10]; got {self.aug_strength}")
        if self.checkpoint_every < 0:
            raise UserError(f"checkpoint_every must be >= 0; got {self.checkpoint_every}")
        if self.keep_checkpoints < 1:
            raise UserError(f"keep_checkpoints must be >= 1; got {self.keep_checkpoints}")
        if self.augmentation is not None:
            get_preset(self.augmentation)
        from probssl.train.trackers import parse_loggers  # lazy: train imports config

        parse_loggers(self.logger)
        # The method and its params are checked now, before any data is loaded, so a typo
        # fails in the first second (dataset-dependent defaults are filled in later).
        make_method_config(self.method, self.params, arch="mlp", latent_dim=1)

    def _apply_preset(self, given: frozenset[str]) -> None:
        if not isinstance(self.method, str) or not isinstance(self.dataset, str):
            return  # check_types names the bad field
        if not isinstance(self.params, dict):
            return
        p_train, p_params = preset_values(self.preset, self.method, self.dataset)
        for key, value in p_train.items():
            if key not in given:
                setattr(self, key, value)
        self.params = {**p_params, **self.params}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def preset_values(preset: str, method: str, dataset: str) -> tuple[dict[str, Any],
                                                                    dict[str, Any]]:
    """(TrainConfig values, method params) of ``preset`` for ``method`` on ``dataset``: the
    shared layers of :mod:`probssl.presets` with the method's own (``register_method(...,
    presets=...)``)."""
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    return combine(preset, get_method_spec(method).presets, dataset)


def resolve(defaults: dict[str, Any] | None = None, preset: str | None = None,
            file: str | Path | dict[str, Any] | None = None,
            flags: dict[str, Any] | None = None, *, where: str = "config") -> TrainConfig:
    """The one config resolution: defaults < preset < config file < flags.

    ``defaults`` are the caller's starting values (TrainConfig's own defaults below them);
    ``file`` a config file path or its parsed table; ``flags`` the explicit settings (the
    command line's, a bench cell's). Method params merge key by key across the layers. The
    preset is the last layer's ``preset`` key, else ``preset``. Used by ``probssl train``,
    ``bench``/``compare`` cells and the Python API."""
    if isinstance(file, (str, Path)):
        where = f"config file {file}"
        file = load_config_file(file)
    layers = [dict(defaults or {}), dict(file or {}), dict(flags or {})]
    layer_params: list[dict[str, Any]] = []
    for layer in layers:
        p = layer.pop("params", None)
        if p is not None and not isinstance(p, dict):
            raise UserError(f"{where}: 'params' must be a table of method parameters, not "
                            f"{type(p).__name__}")
        layer_params.append(dict(p or {}))
    values = {k: v for layer in layers for k, v in layer.items()}
    if values.get("preset") is None and preset is not None:
        values["preset"] = preset
    preset = values.get("preset")
    p_train: dict[str, Any] = {}
    p_params: dict[str, Any] = {}
    if preset is not None:
        if not isinstance(preset, str):
            raise UserError(f"{where}: key 'preset' must be str; got {preset!r}")
        method = values.get("method", TrainConfig.method)
        dataset = values.get("dataset", TrainConfig.dataset)
        for key, value in (("method", method), ("dataset", dataset)):
            if not isinstance(value, str):
                raise UserError(f"{where}: key '{key}' must be str; got {value!r}")
        p_train, p_params = preset_values(preset, method, dataset)
    # defaults < preset < file < flags, for the fields and, key by key, the params
    values = {**layers[0], **p_train, **layers[1], **layers[2], "preset": preset}
    params = {**layer_params[0], **p_params, **layer_params[1], **layer_params[2]}
    values["params"] = params
    return build_dataclass(TrainConfig, values, where)
