"""``probssl train``: one flag per :class:`~probssl.config.TrainConfig` field, generated from
the dataclass, resolved by :func:`probssl.config.resolve` (defaults < preset < config file <
flags)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any

from probssl.cli.common import add_command, add_progress_arg, add_set_arg
from probssl.config import TrainConfig, resolve
from probssl.errors import UserError
from probssl.methods import get_method_spec
from probssl.schema import load_config_file, parse_assignments, parse_scalar
from probssl.train import train
from probssl.userio import check_output_dir

# Help for the generated flags (a bool field defaulting to True is the flag --no-FIELD); a
# TrainConfig field without an entry still gets its flag.
HELP: dict[str, str] = {
    "method": "method name (see `probssl methods`)",
    "dataset": "dataset name, folder:PATH or npz:FILE",
    "preset": "paper, reference-code or quick (flags and config override it)",
    "data_dir": "folder holding the dataset's files (skips the cache)",
    "download": "download the dataset first if it is not cached",
    "augmentation": "augmentation preset (default: the dataset's)",
    "aug_strength": "scale of the preset's crop and colour jitter (0 none, 1 as published)",
    "views": "augment (J augmentations) or next-frame (frames t..t+J-1)",
    "epochs": "training epochs",
    "batch_size": "images per step per process",
    "optimizer": "adam, adamw, sgd or lars",
    "lr": "learning rate",
    "adam_eps": "Adam's epsilon",
    "momentum": "sgd and lars momentum",
    "weight_decay": "adamw, sgd and lars (biases and norm layers excluded)",
    "schedule": "constant or warmup-cosine (per step)",
    "warmup_epochs": "warmup-cosine: epochs of linear warmup",
    "final_lr_ratio": "warmup-cosine: the final lr relative to --lr",
    "seed": "random seed",
    "device": "auto (CUDA if available), cpu, cuda or cuda:N",
    "amp": "disable bfloat16 autocast on CUDA",
    "compile": "torch.compile the training forward (GPU; on CPU needs a C++ compiler)",
    "sync_bn": "under torchrun, batch norm over every process's batch (SyncBatchNorm; CUDA "
               "only): MoCo's and VICReg's heads, ResNet encoders",
    "keep_checkpoints": "how many epoch checkpoints to keep",
    "checkpoint_every": "also checkpoint every N steps inside an epoch (0: at epoch ends only)",
    "tensorboard": "no TensorBoard logs (written only if tensorboard is installed)",
    "logger": "experiment trackers, comma-separated: tensorboard, wandb, mlflow or none "
              "(W&B/MLflow: optional extras; see probssl.train.trackers)",
    "eval_every": "online evaluation: k-NN accuracy on a validation split of the training "
                  "set every N epochs and after the last, logged as knn_val (0: off)",
    "eval_val_size": "online evaluation: validation images (at most a fifth of the training set)",
    "eval_ref_size": "online evaluation: other training images as the k-NN reference",
}
# set by --set KEY=VALUE (and the --critic/--prior shortcuts), not a flag of their own
NOT_FLAGS = ("params",)


def _fields() -> dict[str, tuple[Any, Any]]:
    """TrainConfig field -> (flag type, default) for every field that is a flag. An optional
    field's flag reads its value type (``--augmentation none`` is the preset named "none";
    not given is None)."""
    hints = typing.get_type_hints(TrainConfig)
    out = {}
    for f in dataclasses.fields(TrainConfig):
        if f.name in NOT_FLAGS:
            continue
        tp = hints[f.name]
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        out[f.name] = (tp, f.default)
    return out


def add_train_args(p: argparse.ArgumentParser) -> None:
    """``--config``, one flag per TrainConfig field, ``--set``, ``--out``, ``--resume``.

    Every flag defaults to None (not given), so a config file's value is overridden only by
    a flag that was given. A bool field is a switch away from its default (``--download``,
    ``--no-amp``); other values are read with the field's type in
    :func:`train_config_from_args`, so their errors name the flag."""
    p.add_argument("--config", help="TOML/YAML/JSON file of settings (flags override it)")
    for name, (tp, default) in _fields().items():
        help_ = HELP.get(name, name.replace("_", " "))
        flag = name.replace("_", "-")
        if tp is bool:
            if default:
                p.add_argument(f"--no-{flag}", dest=name, action="store_false", default=None,
                               help=help_)
            else:
                p.add_argument(f"--{flag}", dest=name, action="store_true", default=None,
                               help=help_)
            continue
        p.add_argument(f"--{flag}", dest=name, default=None, metavar=tp.__name__.upper(),
                       help=help_ if default is None else f"{help_} (default {default})")
    p.add_argument("--critic", default=None, help="shortcut for --set critic=NAME (rpm)")
    p.add_argument("--prior", default=None, help="shortcut for --set prior=NAME (rpm)")
    add_set_arg(p, "a method parameter, e.g. --set beta=4 or --set critic.hidden=128 "
                   "(repeatable)")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    add_progress_arg(p)


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The config of ``probssl train``: :func:`probssl.config.resolve` of the config file and
    the flags given, so defaults < preset < file < flags, params merged key by key.

    ``--preset`` is a flag like any other: given, it overrides the file's ``preset`` key, and
    the preset fills only what neither the file nor a flag sets — what ``TrainConfig(...,
    preset=...)`` means from Python."""
    file: dict[str, Any] = load_config_file(args.config) if args.config else {}
    where = f"config file {args.config}" if args.config else "config (command line)"
    flags: dict[str, Any] = {}
    for name, (tp, _) in _fields().items():
        value = getattr(args, name)
        if value is None:
            continue
        flags[name] = (parse_scalar(value, tp, f"--{name.replace('_', '-')}")
                       if isinstance(value, str) else value)
    assignments = list(args.assignments) + [f"{k}={getattr(args, k)}" for k in
                                            ("critic", "prior")
                                            if getattr(args, k) is not None]
    if assignments:
        method = flags.get("method", file.get("method", TrainConfig.method))
        if not isinstance(method, str):
            raise UserError(f"{where}: key 'method' must be str; got {method!r}")
        flags["params"] = parse_assignments(assignments, get_method_spec(method).config_cls,
                                            f"params for method '{method}'")
    return resolve(file=file, flags=flags, where=where)


def cmd_train(args: argparse.Namespace) -> int:
    check_output_dir(args.out)
    cfg = train_config_from_args(args)
    result = train(cfg, Path(args.out), resume=args.resume, progress=not args.no_progress)
    if os.environ.get("RANK", "0") != "0":
        return 0  # under torchrun only rank 0 reports
    last = result.history[-1] if result.history else {}
    shown = ", ".join(f"{k} {v:.4g}" for k, v in last.items()
                      if k not in ("epoch", "seconds", "views_per_s"))
    print(f"trained {cfg.method} on {cfg.dataset} for {result.epochs_done} epochs -> "
          f"{args.out}" + (f" ({shown})" if shown else ""))
    return 0


def register(subparsers) -> None:
    add_train_args(add_command(subparsers, "train", cmd_train,
                               "train a method; writes a run directory"))
