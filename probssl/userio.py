"""Where user input enters: files read, numbers parsed, output paths chosen.

Every reader of a user-supplied file goes through here, so that an I/O, decoding or parsing
error becomes one :class:`~probssl.errors.UserError` line naming the file (exit status 2),
never a traceback; every output path is checked before any work starts.
"""

from __future__ import annotations

import json
import math
import os
import sys
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from probssl.errors import UserError

# The largest integer any count/seed/size field takes: numpy's RandomState and torch's
# manual_seed both take 32/64-bit seeds; 2**31 - 1 keeps every library and dtype happy.
MAX_INT = 2**31 - 1
# JSON/TOML/YAML nested deeper than this is refused before Python's recursion limit is hit.
MAX_NESTING = 64


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def read_bytes(path: str | Path, what: str = "file", max_bytes: int | None = None) -> bytes:
    """The bytes of ``path``; a missing, unreadable or oversized file is one line."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{what} {path} does not exist")
    if path.is_dir():
        raise UserError(f"{what} {path} is a directory, not a file")
    try:
        if max_bytes is not None and path.stat().st_size > max_bytes:
            raise UserError(f"{what} {path} is larger than {max_bytes} bytes")
        return path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {_describe(exc)}") from None


def read_text(path: str | Path, what: str = "file", max_bytes: int | None = 64 << 20) -> str:
    """The UTF-8 text of ``path``; binary or non-UTF-8 content is one line naming it."""
    data = read_bytes(path, what, max_bytes)
    if b"\x00" in data:
        raise UserError(f"{what} {path} is binary, not a text file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{what} {path} is not UTF-8 text (byte {exc.start})") from None


def nesting_depth(obj: Any, limit: int = MAX_NESTING) -> int:
    """Depth of nested dicts/lists, counted iteratively (never recursion-limited)."""
    depth, stack = 0, [(obj, 1)]
    while stack:
        item, d = stack.pop()
        if isinstance(item, dict):
            items: Iterable[Any] = item.values()
        elif isinstance(item, list | tuple):
            items = item
        else:
            continue
        depth = max(depth, d)
        if depth > limit:
            return depth
        stack.extend((v, d + 1) for v in items)
    return depth


def _guess_depth(text: str) -> int:
    """The bracket depth of a text, so that a pathological file is refused before a parser
    recurses into it."""
    depth = best = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            best = max(best, depth)
        elif ch in "]}":
            depth = max(depth - 1, 0)
    return best


def parse_json_text(text: str, where: str) -> Any:
    if _guess_depth(text) > MAX_NESTING:
        raise UserError(f"{where}: nested deeper than {MAX_NESTING} levels")
    try:
        return json.loads(text, parse_constant=lambda c: float(c))
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise UserError(f"{where}: invalid JSON ({_describe(exc)})") from None


def read_json(path: str | Path, what: str = "file", *, expect: type | None = dict) -> Any:
    """Parse a JSON file; errors (missing, binary, not UTF-8, invalid, wrong top-level type)
    are one line naming the file."""
    value = parse_json_text(read_text(path, what), f"{what} {path}")
    if expect is not None and not isinstance(value, expect):
        raise UserError(f"{what} {path}: expected a JSON "
                        f"{'object' if expect is dict else expect.__name__}, "
                        f"got {type(value).__name__}")
    return value


def read_jsonl(path: str | Path, what: str = "file") -> list[dict[str, Any]]:
    """One JSON object per non-empty line; a damaged line is one error naming file and line."""
    rows = []
    for i, line in enumerate(read_text(path, what).splitlines(), 1):
        if not line.strip():
            continue
        row = parse_json_text(line, f"{what} {path} line {i}")
        if not isinstance(row, dict):
            raise UserError(f"{what} {path} line {i}: expected a JSON object")
        rows.append(row)
    return rows


def load_npz(path: str | Path, what: str = "file", allow_pickle: bool = False
             ) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, loaded eagerly; a truncated, corrupt, mis-typed or
    non-zip file is one line naming it. Object arrays (pickles) are refused."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {path} " + ("is a directory, not a file" if path.is_dir()
                                             else "does not exist"))
    try:
        with np.load(path, allow_pickle=allow_pickle) as f:
            if not isinstance(f, np.lib.npyio.NpzFile):
                raise UserError(f"{what} {path} is a single .npy array, not an .npz archive")
            return {k: f[k] for k in f.files}
    except UserError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, TypeError,
            MemoryError, RuntimeError, zipfile.LargeZipFile, NotImplementedError) as exc:
        raise UserError(f"{what} {path} is not a readable .npz archive "
                        f"({_describe(exc)})") from None
    except AttributeError:  # np.load on a .npy returns an ndarray, which has no __enter__
        raise UserError(f"{what} {path} is a single .npy array, not an .npz archive") from None


# -- numbers ------------------------------------------------------------------------------


def check_int(value: Any, name: str, lo: int | None = None, hi: int = MAX_INT) -> int:
    """An int within [lo, hi] (bools refused); the message names the setting."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise UserError(f"{name} must be an integer; got {value!r}")
    value = int(value)
    if lo is not None and value < lo:
        raise UserError(f"{name} must be >= {lo}; got {value}")
    if value > hi:
        raise UserError(f"{name} must be <= {hi}; got {value}")
    return value


def check_float(value: Any, name: str, lo: float | None = None, hi: float | None = None,
                lo_open: bool = False) -> float:
    """A finite float within range; NaN and inf are refused with the setting's name."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise UserError(f"{name} must be a number; got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise UserError(f"{name} must be finite; got {value}")
    if lo is not None and (value <= lo if lo_open else value < lo):
        raise UserError(f"{name} must be {'>' if lo_open else '>='} {lo}; got {value}")
    if hi is not None and value > hi:
        raise UserError(f"{name} must be <= {hi}; got {value}")
    return value


# -- output paths -------------------------------------------------------------------------

# Files that belong to a run; no command other than `train` may write over them.
RUN_OWN_FILES = ("config.json", "meta.json", "metrics.jsonl")


def _inside_a_run(path: Path) -> Path | None:
    """The run directory ``path`` would overwrite a training file of, if any."""
    parent = path.parent
    if (parent / "config.json").is_file() and (parent / "meta.json").is_file():
        if path.name in RUN_OWN_FILES or path.name.startswith("epoch-") or \
                path.name == "checkpoints" or path.parent.name == "checkpoints":
            return parent
    if parent.name == "checkpoints" and (parent.parent / "config.json").is_file():
        return parent.parent
    return None


def check_output_file(path: str | Path | None, flag: str = "--out",
                      protect: Iterable[str | Path] = ()) -> Path:
    """Check an output *file* path before any work: not empty, its parent is (or can be) a
    directory, it is not a directory, it is not a saved run's own file nor one of
    ``protect`` (e.g. the input it is derived from)."""
    if path is None or str(path).strip() == "":
        raise UserError(f"{flag} must name a file; got an empty path")
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{flag} {p} is a directory; it must name a file")
    _check_parent(p, flag)
    run = _inside_a_run(p.resolve())
    if run is not None:
        raise UserError(f"{flag} {p} would overwrite a file of the run {run}; "
                        "choose another path")
    for q in protect:
        if Path(q).exists() and p.exists() and p.resolve() == Path(q).resolve():
            raise UserError(f"{flag} {p} is the input file {q}; choose another path")
    return p


def check_output_dir(path: str | Path | None, flag: str = "--out") -> Path:
    """Check an output *directory* path before any work: not empty, not an existing file,
    every existing ancestor a directory."""
    if path is None or str(path).strip() == "":
        raise UserError(f"{flag} must name a directory; got an empty path")
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"{flag} {p} exists and is not a directory")
    _check_parent(p, flag)
    return p


def _check_parent(p: Path, flag: str) -> None:
    for anc in p.absolute().parents:
        if anc.exists():
            if not anc.is_dir():
                raise UserError(f"{flag} {p}: {anc} is a file, not a directory")
            if not os.access(anc, os.W_OK | os.X_OK):
                raise UserError(f"{flag} {p}: cannot write in {anc} (permission denied)")
            return


def debug_enabled() -> bool:
    return bool(os.environ.get("PROBSSL_DEBUG")) or "--debug" in sys.argv
