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
import math
import sys
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from probssl.errors import UserError
from probssl.userio import (
    MAX_INT,
    MAX_NESTING,
    _guess_depth,
    nesting_depth,
    parse_json_text,
    read_text,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEVICES = ("auto", "cpu", "cuda")


@dataclass
class TrainConfig:
    """Settings every method shares: data, optimisation, device, bookkeeping."""

    method: str = "vae"
    dataset: str = "digits"
    preset: str | None = None  # recorded; its values are resolved into the fields below
    data_dir: str | None = None
    download: bool = False
    augmentation: str | None = None  # preset name; None = the dataset's default
    # Scales the preset's crop and colour jitter (simvae.txt Fig. 6): 0 = no crop, no jitter;
    # 1 = the preset as published; > 1 stronger. Flips and binarisation are unchanged.
    aug_strength: float = 1.0
    # How a step's J views arise: "augment" = J augmentations of each image; "next-frame" =
    # the training images are an ordered sequence and the views are frames t, t+1, ... t+J-1
    # (no augmentation), e.g. consecutive video frames for an RPM.
    views: str = "augment"
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    adam_eps: float = 1e-8
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # bfloat16 autocast, CUDA only
    compile: bool = False  # torch.compile the training forward (a C++ compiler on CPU)
    keep_checkpoints: int = 2
    # also checkpoint every N steps inside an epoch (0: only at epoch ends); a killed run
    # then loses at most N steps
    checkpoint_every: int = 0
    tensorboard: bool = True  # used only if the tensorboard package is installed
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_types(self, "config")
        from probssl.data.registry import check_dataset_name

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
        if self.seed < 0:
            raise UserError(f"seed must be >= 0; got {self.seed}")
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
        if self.preset is not None:
            from probssl.presets import PRESETS

            if self.preset not in PRESETS:
                raise UserError(f"unknown preset {self.preset!r}; choose from "
                                f"{', '.join(PRESETS)}")
        if self.augmentation is not None:
            from probssl.data.augment import get_preset

            get_preset(self.augmentation)
        from probssl.methods import make_method_config

        # The method and its params are checked now, before any data is loaded, so a typo
        # fails in the first second (dataset-dependent defaults are filled in later).
        make_method_config(self.method, self.params, arch="mlp", latent_dim=1)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp)).replace("NoneType", "None")


def _check_value(value: Any, tp: Any, where: str) -> Any:
    """Check (and lightly coerce: int -> float, list -> tuple) ``value`` against ``tp``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_value(value, arg, where)
            except UserError as exc:
                errors.append(str(exc))
        raise UserError(errors[0] if errors else f"{where}: bad value {value!r}")
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            # one bound for every integer setting (seeds, sizes, counts): larger values
            # overflow torch/numpy seeds and shapes long before they mean anything
            if abs(value) > MAX_INT:
                raise UserError(f"{where} is out of range (must lie in [-{MAX_INT}, "
                                f"{MAX_INT}]); got "
                                f"{str(value)[:30]}{'...' if len(str(value)) > 30 else ''}")
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                value = float(value)
            except OverflowError:  # an int too large for a float
                raise UserError(f"{where} is too large; got {str(value)[:30]}...") from None
            # NaN/inf are refused for every float setting (they pass `x < 0` checks)
            if not math.isfinite(value):
                raise UserError(f"{where} must be finite; got {value}")
            return value
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin is tuple:
        args = typing.get_args(tp)
        if isinstance(value, (list, tuple)) and len(value) == len(args):
            return tuple(_check_value(v, a, where) for v, a in zip(value, args, strict=True))
    elif origin is dict or tp is dict:
        if isinstance(value, dict):
            return value
    else:  # pragma: no cover - a field type we forgot to support is a bug
        raise TypeError(f"unsupported config type {tp!r}")
    raise UserError(f"{where} must be {_type_name(tp) if origin is None else tp}; "
                    f"got {value!r} ({type(value).__name__})")


def check_types(obj: Any, prefix: str) -> None:
    """Validate every field of a config dataclass against its annotation, in place."""
    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):
        value = getattr(obj, f.name)
        setattr(obj, f.name, _check_value(value, hints[f.name], f"{prefix} key '{f.name}'"))


def field_names(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


def build_dataclass(cls: type, values: dict[str, Any], where: str):
    """``cls(**values)`` with unknown keys reported by name."""
    known = set(field_names(cls))
    for key in values:
        if key not in known:
            raise UserError(f"unknown {where} key '{key}'; valid keys: "
                            f"{', '.join(sorted(known))}")
    return cls(**values)


def parse_scalar(text: str, tp: Any, where: str) -> Any:
    """Parse a command-line string for a field of type ``tp``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if text.lower() in ("none", "null") and len(args) < len(typing.get_args(tp)):
            return None
        tp = args[0]
        origin = typing.get_origin(tp)
    try:
        if tp is bool:
            low = text.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if tp is int:
            return int(text)
        if tp is float:
            return float(text)
        if origin is tuple:
            parts = [p for p in text.replace("(", "").replace(")", "").split(",") if p.strip()]
            return tuple(parse_scalar(p.strip(), a, where)
                         for p, a in zip(parts, typing.get_args(tp), strict=True))
    except ValueError:
        raise UserError(f"{where}: cannot read {text!r} as {_type_name(tp)}") from None
    return text


def parse_assignments(items: list[str], cls: type, where: str) -> dict[str, Any]:
    """``["beta=4", "likelihood=bernoulli"]`` -> typed dict for dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--set expects KEY=VALUE; got {item!r}")
        key, text = item.split("=", 1)
        key = key.strip().replace("-", "_")
        if key not in hints:
            raise UserError(f"unknown {where} key '{key}'; valid keys: "
                            f"{', '.join(sorted(field_names(cls)))}")
        out[key] = parse_scalar(text.strip(), hints[key], f"{where} key '{key}'")
    return out


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML (.toml), YAML (.yaml/.yml) or JSON file into a dict; every I/O, decoding
    or parsing error (binary, not UTF-8, invalid, nested too deep) is one line naming it."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml", ".json"):
        raise UserError(f"{path}: config files must end in .toml, .yaml, .yml or .json")
    text = read_text(path, "config file", max_bytes=1 << 20)
    where = f"config file {path}"
    if _guess_depth(text) > MAX_NESTING:
        raise UserError(f"{where}: nested deeper than {MAX_NESTING} levels")
    try:
        if suffix == ".toml":
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise UserError(f"{where}: invalid TOML ({_first_line(exc)})") from None
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise UserError(f"{where}: reading YAML needs PyYAML (pip install pyyaml), "
                                "or use a .toml file") from None
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise UserError(f"{where}: invalid YAML ({_first_line(exc)})") from None
            data = {} if data is None else data
        else:
            data = parse_json_text(text, where)
    except RecursionError:
        raise UserError(f"{where}: nested too deeply") from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. a YAML date out of range
        raise UserError(f"{where}: unreadable value ({_first_line(exc)})") from None
    if not isinstance(data, dict):
        raise UserError(f"{where}: the top level must be a table of keys, not "
                        f"{type(data).__name__}")
    if nesting_depth(data) > MAX_NESTING:
        raise UserError(f"{where}: nested deeper than {MAX_NESTING} levels")
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise UserError(f"{where}: keys must be names; got {bad[0]!r}")
    return data


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300]
