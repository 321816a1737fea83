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
import tempfile
import warnings
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from probssl.errors import UserError, exception_line

# The largest integer any count/seed/size field takes: numpy's RandomState and torch's
# manual_seed both take 32/64-bit seeds; 2**31 - 1 keeps every library and dtype happy.
MAX_INT = 2**31 - 1
# JSON/TOML/YAML nested deeper than this is refused before Python's recursion limit is hit.
MAX_NESTING = 64


def _describe(exc: BaseException) -> str:
    """One line for a reader's or parser's exception: OS message, else its text, else its
    type."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return exception_line(exc)


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
    recurses into it. Brackets inside double-quoted strings (JSON, TOML, YAML; backslash
    escapes honoured) do not count: a valid file whose strings hold brackets is not deep."""
    depth = best = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            best = max(best, depth)
        elif ch in "]}":
            depth = max(depth - 1, 0)
    return best


def parse_json_text(text: str, where: str) -> Any:
    """Parse JSON ``text`` (NaN and ±Infinity read as floats); nesting deeper than
    :data:`MAX_NESTING` or invalid JSON is one :class:`UserError` starting with ``where``."""
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


def atomic_write(path: str | Path, write: Any) -> Path:
    """Write a derived file atomically: ``write(fh)`` fills a temporary file beside ``path``,
    which is then renamed over it, so a reader never sees a half file and a failure leaves
    whatever was there before."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# -- user data files: regular files, memory bounds, .npz archives, images -----------------

# One decoded image may have at most this many pixels (8192 x 8192); a file declaring more
# (a decompression bomb: a few bytes claiming 100000 x 100000 pixels) is refused from its
# header, before any pixel is decoded.
MAX_IMAGE_PIXELS = 1 << 26
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members / an empty zip


def check_regular_file(path: str | Path, what: str = "file") -> Path:
    """``path`` as a Path if it is a regular file (not missing, a directory, a FIFO, a device
    or a dangling link, any of which would fail or hang a reader); else one line."""
    path = Path(path)
    try:
        if path.is_file():
            return path
        exists, is_dir = path.exists(), path.is_dir()
    except OSError as exc:  # e.g. a name too long, a symlink loop
        raise UserError(f"{what} {path}: {_describe(exc)}") from None
    if is_dir:
        raise UserError(f"{what} {path} is a directory, not a file")
    if not exists:
        raise UserError(f"{what} {path} does not exist")
    raise UserError(f"{what} {path} is not a regular file")


def memory_bytes() -> int:
    """Physical memory of this machine in bytes (1 TiB when it cannot be told)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 1 << 40


def _gib(n: int) -> str:
    return f"{n / 2**30:.3g} GiB"


def check_alloc(nbytes: int, where: str) -> int:
    """Refuse, before allocating it, an amount of memory a file's header asks for that this
    machine does not have (a corrupt or malicious size field)."""
    limit = memory_bytes()
    if nbytes > limit:
        raise UserError(f"{where}: needs {_gib(nbytes)} of memory, more than this machine's "
                        f"{_gib(limit)} (corrupt size field, or data too large)")
    return nbytes


def npz_headers(path: str | Path, what: str = "file"
                ) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shapes and dtypes of the arrays of an ``.npz`` archive, read from the headers only.

    Checked before anything is loaded: the file is a regular, non-empty zip (not a single
    ``.npy``, not text); every member is a ``.npy`` array without Python objects whose
    header declares exactly as many bytes as the member holds (a corrupt shape cannot make
    a different array, a corrupt size cannot allocate); the total fits in memory.
    """
    path = check_regular_file(path, what)
    where = f"{what} {path}"
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise UserError(f"cannot read {where}: {_describe(exc)}") from None
    if not head:
        raise UserError(f"{where} is empty (0 bytes), not an .npz archive")
    if head.startswith(_NPY_MAGIC):
        raise UserError(f"{where} is a single .npy array, not an .npz archive")
    if not head.startswith(_ZIP_MAGICS):
        raise UserError(f"{where} is not an .npz archive (no zip signature; "
                        "write it with numpy.savez)")
    out: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    total = 0
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.is_dir():
                    continue
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                with zf.open(info) as member:
                    if member.read(len(_NPY_MAGIC)) != _NPY_MAGIC:
                        raise UserError(f"{where}: member {info.filename!r} is not a "
                                        ".npy array")
                    member.seek(0)
                    version = np.lib.format.read_magic(member)
                    if version == (1, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
                    elif version in ((2, 0), (3, 0)):
                        shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
                    else:
                        raise ValueError(f"unknown .npy version {version}")
                    header_len = member.tell()
                if dtype.hasobject:
                    raise UserError(f"{where}: array {name!r} holds Python objects "
                                    f"(dtype {dtype}); only numeric arrays are read")
                nbytes = math.prod(int(d) for d in shape) * dtype.itemsize
                if header_len + nbytes != info.file_size:
                    raise UserError(
                        f"{where}: array {name!r} is truncated or corrupt (its header "
                        f"declares shape {tuple(shape)} of {dtype}, {nbytes} bytes; the "
                        f"archive holds {info.file_size - header_len})")
                total += nbytes
                out[name] = (tuple(int(d) for d in shape), dtype)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 — any failure parsing the user's bytes
        raise UserError(f"{where} is not a readable .npz archive ({_describe(exc)})") from None
    check_alloc(total, where)
    return out


def read_npz(path: str | Path, what: str = "file") -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, headers checked first (:func:`npz_headers`), then
    loaded with :func:`load_npz`; any failure is one line naming the file."""
    headers = npz_headers(path, what)
    try:
        arrays = load_npz(path, what)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 — e.g. zlib.error on a corrupt member
        raise UserError(f"{what} {path} is not a readable .npz archive "
                        f"({_describe(exc)})") from None
    for name, value in arrays.items():
        if not isinstance(value, np.ndarray) or name not in headers or \
                value.shape != headers[name][0]:
            raise UserError(f"{what} {path}: array {name!r} is corrupt")
    return arrays


def read_image(path: str | Path, what: str = "image", mode: Any = None,
               max_pixels: int = MAX_IMAGE_PIXELS):
    """Decode an image file into a loaded PIL image, converted to ``mode`` (a mode string,
    or a function of the file's mode returning one).

    Refused with one line naming the file: not a regular file, unreadable, not an image,
    truncated, zero-sized, or declaring more than ``max_pixels`` pixels (checked from the
    header before decoding; PIL's decompression-bomb warning is an error here too). No
    warning reaches stderr.
    """
    path = check_regular_file(path, what)
    where = f"{what} {path}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                if w < 1 or h < 1:
                    raise UserError(f"{where}: zero-sized image ({w}x{h} pixels)")
                if w * h > max_pixels:
                    raise UserError(f"{where}: declares {w}x{h} pixels, more than the "
                                    f"limit of {max_pixels} (a decompression bomb?)")
                img.load()
                target = mode(img.mode) if callable(mode) else mode
                return img.convert(target) if target and target != img.mode else img.copy()
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 — PIL raises many types on corrupt files
        raise UserError(f"{where}: unreadable image ({_describe(exc)})") from None


# -- structure of what was read -----------------------------------------------------------
#
# A small schema language for JSON read from run and grid directories, checked where the
# data enters so that code further in may index it freely:
#
# * a type: ``int`` (not bool), ``float`` (any real number, not bool), ``str``, ``bool``,
#   ``dict`` (any object), ``list`` (any array); ``None`` means JSON ``null``;
# * a tuple of schemas: any one of them;
# * ``[schema]``: an array whose every item matches;
# * ``{"key": schema, "opt?": schema}``: an object with these keys (``?`` = optional; other
#   keys are allowed); ``{str: schema}``: an object whose every value matches;
# * :class:`Check`: a schema plus a condition on the value.


class Check:
    """``schema`` and then ``test(value)``; ``text`` says what the test wants."""

    def __init__(self, schema: Any, test: Any, text: str) -> None:
        self.schema, self.test, self.text = schema, test, text


def _schema_text(schema: Any) -> str:
    if schema is None:
        return "null"
    if isinstance(schema, Check):
        return schema.text
    if isinstance(schema, tuple):
        return " or ".join(_schema_text(s) for s in schema)
    if isinstance(schema, list):
        return "an array"
    if isinstance(schema, dict) or schema is dict:
        return "an object"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            list: "an array"}.get(schema, getattr(schema, "__name__", str(schema)))


def _value_text(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    text = json.dumps(value) if isinstance(value, str | int | float | bool) or value is None \
        else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _matches(value: Any, schema: Any) -> bool:
    """Whether ``value`` has the *top-level* type ``schema`` asks for."""
    if schema is None:
        return value is None
    if isinstance(schema, Check):
        return _matches(value, schema.schema)
    if isinstance(schema, tuple):
        return any(_matches(value, s) for s in schema)
    if isinstance(schema, list) or schema is list:
        return isinstance(value, list)
    if isinstance(schema, dict) or schema is dict:
        return isinstance(value, dict)
    if schema is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if schema is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, schema)


def check_schema(value: Any, schema: Any, where: str, at: str = "") -> Any:
    """``value`` if it has the structure ``schema`` describes (see above); otherwise one
    :class:`UserError` naming ``where`` (e.g. the file) and the key path that is wrong."""
    name = f"'{at}'" if at else "the top level"
    if isinstance(schema, tuple):
        fitting = [s for s in schema if _matches(value, s)]
        if not fitting:
            raise UserError(f"{where}: {name} must be {_schema_text(schema)}; "
                            f"got {_value_text(value)}")
        return check_schema(value, fitting[0], where, at)
    if not _matches(value, schema):
        raise UserError(f"{where}: {name} must be {_schema_text(schema)}; "
                        f"got {_value_text(value)}")
    if isinstance(schema, Check):
        check_schema(value, schema.schema, where, at)
        if not schema.test(value):
            raise UserError(f"{where}: {name} must be {schema.text}; got {_value_text(value)}")
    elif isinstance(schema, list) and schema:
        for i, item in enumerate(value):
            check_schema(item, schema[0], where, f"{at}[{i}]")
    elif isinstance(schema, dict) and list(schema) == [str]:
        for key, item in value.items():
            check_schema(item, schema[str], where, f"{at}.{key}" if at else str(key))
    elif isinstance(schema, dict):
        for key, sub in schema.items():
            optional = key.endswith("?")
            key = key.rstrip("?")
            path = f"{at}.{key}" if at else key
            if key not in value:
                if optional:
                    continue
                raise UserError(f"{where}: missing key '{path}'")
            check_schema(value[key], sub, where, path)
    return value


def read_json_as(path: str | Path, what: str, schema: Any) -> Any:
    """:func:`read_json` and then :func:`check_schema`: every error one line naming the
    file."""
    value = read_json(path, what, expect=None)
    return check_schema(value, schema, f"{what} {path}")


def read_jsonl_as(path: str | Path, what: str, schema: Any) -> list[Any]:
    """:func:`read_jsonl`, each row checked against ``schema``; errors name file and line."""
    rows = []
    for i, line in enumerate(read_text(path, what).splitlines(), 1):
        if not line.strip():
            continue
        row = parse_json_text(line, f"{what} {path} line {i}")
        rows.append(check_schema(row, schema, f"{what} {path} line {i}"))
    return rows


def safe_name(text: Any) -> bool:
    """Whether ``text`` is one plain path component (no separator, not ``.``/``..``), so that
    joining it to a folder stays inside that folder."""
    return (isinstance(text, str) and text not in ("", ".", "..") and "/" not in text
            and "\\" not in text and "\x00" not in text)


_WARNED: set[Any] = set()


def warn(message: str, key: Any = None) -> None:
    """One ``probssl: warning: ...`` line on stderr; with ``key``, once per process and key
    (e.g. a damaged file met twice by one command)."""
    if key is not None:
        if key in _WARNED:
            return
        _WARNED.add(key)
    print(f"probssl: warning: {message}", file=sys.stderr)


def file_key(*paths: str | Path) -> tuple:
    """(path, size, mtime) of each path: identifies a file's current version, for
    :func:`warn`."""
    out = []
    for p in paths:
        try:
            st = os.stat(p)
            out.append((str(Path(p).absolute()), st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((str(Path(p).absolute()), None, None))
    return tuple(out)
