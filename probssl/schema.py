"""The config schema: typed dataclasses validated when built, config files, ``KEY=VALUE``.

Dependency-free (the standard library, :mod:`probssl.errors` and :mod:`probssl.userio`), so
every config dataclass in the package — TrainConfig, each method's, critic's and prior's —
validates with the same rules without importing anything that imports it back:

* :func:`check_types` checks every field against its annotation (ints bounded by
  ``MAX_INT``, floats finite, tuples of the right length), naming the bad key;
* :func:`build_dataclass` reports unknown keys by name;
* :func:`parse_assignments` reads ``--set KEY=VALUE`` flags, including dotted keys for the
  nested settings of a component (``critic.hidden=128`` -> ``critic_params``);
* :func:`load_config_file` reads TOML, YAML or JSON, every error one line naming the file.
"""

from __future__ import annotations

import math
import sys
import types
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any

from probssl.errors import UserError, exception_line
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


def _why(exc: BaseException) -> str:
    return exception_line(exc, 300, all_lines=True)  # a YAML message spans several lines


def check_types(obj: Any, prefix: str) -> None:
    """Validate every field of a config dataclass against its annotation, in place."""
    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):
        value = getattr(obj, f.name)
        setattr(obj, f.name, _check_value(value, hints[f.name], f"{prefix} key '{f.name}'"))


def field_names(cls: type) -> list[str]:
    """The field names of dataclass ``cls``, in definition order."""
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


def parse_literal(text: str) -> Any:
    """A command-line value whose type is not known yet (a component's nested setting, typed
    when the component's config is built): bool, int, float, none, else the string."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return text.strip()


def nested_fields(cls: type) -> set[str]:
    """Components with their own settings: ``X`` for every dict field named ``X_params``
    (e.g. ``critic`` -> ``critic_params``), addressable as ``X.key``."""
    return {f.name[:-7] for f in fields(cls) if f.name.endswith("_params")}


def nest_dotted(values: dict[str, Any], cls: type, where: str) -> dict[str, Any]:
    """``{"critic.hidden": 128}`` -> ``{"critic_params": {"hidden": 128}}`` for a config
    class with a ``critic_params`` field; other keys unchanged. The same spelling then works
    in a config file's ``[params]``, in ``--set`` and from Python."""
    if not any(isinstance(k, str) and "." in k for k in values):
        return values
    out = {k: v for k, v in values.items() if "." not in k}
    nested = nested_fields(cls)
    for key, value in values.items():
        if "." not in key:
            continue
        head, sub = key.split(".", 1)
        if head not in nested or not sub:
            raise UserError(f"unknown {where} key '{key}'" + (
                f"; nested settings exist for: {', '.join(sorted(nested))}" if nested
                else " (it has no nested settings)"))
        table = dict(out.get(f"{head}_params") or {})
        table[sub] = value
        out[f"{head}_params"] = table
    return out


def parse_assignments(items: list[str], cls: type, where: str) -> dict[str, Any]:
    """``["beta=4", "likelihood=bernoulli", "critic.hidden=128"]`` -> typed dict for
    dataclass ``cls``; a dotted key addresses a component's settings (see
    :func:`nest_dotted`) and is typed when that component's config is built."""
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--set expects KEY=VALUE; got {item!r}")
        key, text = item.split("=", 1)
        key = key.strip().replace("-", "_")
        if "." in key:
            out.update(nest_dotted({**{k: v for k, v in out.items()
                                       if k.endswith("_params")},
                                    key: parse_literal(text)}, cls, where))
            continue
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
                raise UserError(f"{where}: invalid TOML ({_why(exc)})") from None
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise UserError(f"{where}: reading YAML needs PyYAML (pip install pyyaml), "
                                "or use a .toml file") from None
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise UserError(f"{where}: invalid YAML ({_why(exc)})") from None
            data = {} if data is None else data
        else:
            data = parse_json_text(text, where)
    except RecursionError:
        raise UserError(f"{where}: nested too deeply") from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. a YAML date out of range
        raise UserError(f"{where}: unreadable value ({_why(exc)})") from None
    if not isinstance(data, dict):
        raise UserError(f"{where}: the top level must be a table of keys, not "
                        f"{type(data).__name__}")
    if nesting_depth(data) > MAX_NESTING:
        raise UserError(f"{where}: nested deeper than {MAX_NESTING} levels")
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise UserError(f"{where}: keys must be names; got {bad[0]!r}")
    return data
