"""Checkpoints written atomically (temp file + fsync + rename), the last K kept.

``epoch-0003.pt`` holds the state after 3 complete epochs; ``epoch-0003-step-000050.pt`` the
state 50 steps into the 4th (periodic ``checkpoint_every`` saves and Ctrl-C). Beside each a
``.sha256`` file records the digest of the bytes written. A checkpoint that fails to load
(truncated, corrupt, digest mismatch, a damaged ``.sha256`` file) is reported by name — one
warning line — and skipped in favour of the previous one; when no checkpoint of a run loads,
that is one error naming them. A file or folder in the way of a checkpoint's name (a
directory called ``epoch-0001.pt``) is an error, since a later save could not replace it. A
write that fails (e.g. a full disk) leaves the previous checkpoints intact and no partial file
behind.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from probssl.errors import IntegrityError, UserError, exception_line
from probssl.userio import file_key, read_bytes, warn

PATTERN = re.compile(r"^epoch-(\d+)(?:-step-(\d+))?\.pt$")
DIGEST = re.compile(r"^[0-9a-f]{64}$")
# A sidecar holds "<64 hex digits>  <name>\n"; anything much longer is not one.
MAX_SIDECAR_BYTES = 4096


def checkpoint_dir(run_dir: Path) -> Path:
    """The folder of a run's checkpoints: ``run_dir/checkpoints``."""
    return Path(run_dir) / "checkpoints"


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(folder: Path) -> None:
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_save(obj: Any, path: Path) -> str:
    """Serialise ``obj`` to ``path`` atomically; returns the sha256 of the bytes written.

    Also writes ``path.sha256``. On any failure (full disk, ...) the temp files are removed
    and whatever was at ``path`` before is untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp_sum = path.with_name(f".{path.name}.sha256.tmp-{os.getpid()}")
    try:
        _write_synced(tmp, data)
        _write_synced(tmp_sum, f"{digest}  {path.name}\n".encode())
        os.replace(tmp_sum, _sidecar(path))
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        for t in (tmp, tmp_sum):
            if t.exists():
                t.unlink()
    return digest


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(completed epochs, path) of every checkpoint in the run, oldest first (a mid-epoch
    checkpoint sorts after its epoch's start and before the epoch's end)."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    found = []
    try:
        names = [p.name for p in folder.iterdir()]
    except OSError as exc:
        raise UserError(f"cannot list the checkpoints in {folder}: {exc.strerror or exc}"
                        ) from None
    for name in names:
        m = PATTERN.match(name)
        if m:
            found.append((int(m.group(1)), int(m.group(2) or 0), folder / name))
    return [(e, p) for e, _, p in sorted(found)]


def checkpoint_name(epoch: int, step: int = 0) -> str:
    """The file name of the checkpoint after ``epoch`` complete epochs (``epoch-0003.pt``) or
    ``step`` steps into the next one (``epoch-0003-step-000050.pt``)."""
    return f"epoch-{epoch:04d}.pt" if step == 0 else f"epoch-{epoch:04d}-step-{step:06d}.pt"


def save_checkpoint(state: dict[str, Any], run_dir: Path, epoch: int, keep: int,
                    step: int = 0) -> Path:
    """Write ``state`` atomically (with its ``.sha256``) as the checkpoint (``epoch``, ``step``)
    of ``run_dir``, then delete all but the newest ``keep`` checkpoints; returns its path."""
    path = checkpoint_dir(run_dir) / checkpoint_name(epoch, step)
    atomic_save(state, path)
    for _, old in list_checkpoints(run_dir)[:-max(keep, 1)]:  # the newest always stays
        old.unlink(missing_ok=True)
        _sidecar(old).unlink(missing_ok=True)
    return path


def _recorded_digest(side: Path) -> str:
    """The sha256 a sidecar records; a damaged sidecar is an :class:`IntegrityError`."""
    try:
        data = read_bytes(side, "checkpoint digest file", MAX_SIDECAR_BYTES)
    except UserError as exc:
        raise IntegrityError(str(exc)) from None
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise IntegrityError(f"{side}: damaged digest file (binary, not a sha256 line)"
                             ) from None
    words = text.split()
    if not words:
        raise IntegrityError(f"{side}: damaged digest file (empty)")
    if not DIGEST.match(words[0].lower()):
        raise IntegrityError(f"{side}: damaged digest file ({words[0][:20]!r} is not a "
                             "sha256 hex digest)")
    return words[0].lower()


def _check_state(state: Any, path: Path) -> dict[str, Any]:
    """The structure every reader relies on (the trainer also reads ``rng``, ``history``,
    ``step`` and ``partial`` when present)."""
    if not isinstance(state, dict) or "model" not in state or "epoch" not in state:
        raise IntegrityError(f"{path}: not a probssl checkpoint")
    checks = [("model", dict, False), ("epoch", int, False), ("step", int, True),
              ("rng", list | tuple, True), ("history", list, True),
              ("partial", list | tuple, True), ("config", dict, True),
              ("optimizer", dict, True), ("schedule", dict, True)]
    for key, tp, nullable in checks:
        value = state.get(key)
        if value is None and nullable:
            continue
        if isinstance(value, bool) or not isinstance(value, tp) or \
                (tp is int and value < 0):
            raise IntegrityError(f"{path}: not a probssl checkpoint ('{key}' is "
                                 f"{type(value).__name__})")
    return state


def load_checkpoint_file(path: Path) -> dict[str, Any]:
    """A checkpoint's state, after checking its bytes against the ``.sha256`` beside it
    (when there is one). Any damage is an :class:`IntegrityError` naming the file."""
    path = Path(path)
    side = _sidecar(path)
    try:
        data = read_bytes(path, "checkpoint")
    except UserError as exc:
        raise IntegrityError(str(exc)) from None
    if side.exists() or side.is_symlink():
        want = _recorded_digest(side)
        got = hashlib.sha256(data).hexdigest()
        if want != got:
            raise IntegrityError(f"{path}: sha256 {got[:12]}… does not match the recorded "
                                 f"{want[:12]}… (damaged file)")
    try:
        # weights_only: a checkpoint from someone else's run directory never executes code
        # when loaded. Checkpoints hold tensors, numbers, strings, lists, tuples and dicts
        # only; those written before 2026-12-03 also hold numpy's RNG-state array, whose
        # reconstruction functions are the only globals allowed besides torch's own.
        with torch.serialization.safe_globals(_numpy_globals()):
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, bad or disallowed pickle, ...
        raise IntegrityError(f"{path}: unreadable checkpoint "
                             f"({exception_line(exc, with_type=True)})") from None
    return _check_state(state, path)


def _numpy_globals() -> list[Any]:
    """What unpickling a numpy array needs (older checkpoints' numpy RNG state)."""
    core = getattr(np, "_core", None) or np.core
    return [core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def _check_not_in_the_way(run_dir: Path) -> None:
    """A directory (or other non-file) named like a checkpoint or its sidecar could never be
    replaced by a save: refuse the run before anything is loaded or written. So is a file
    called ``checkpoints``."""
    folder = checkpoint_dir(run_dir)
    if (folder.exists() or folder.is_symlink()) and not folder.is_dir():
        raise UserError(f"{folder} is not a directory; a run keeps its checkpoints there")
    for _, path in list_checkpoints(run_dir):
        for p in (path, _sidecar(path)):
            if (p.exists() or p.is_symlink()) and not p.is_file():
                what = "a directory" if p.is_dir() else "not a regular file"
                raise UserError(f"{p} is {what}, not a checkpoint file; move it out of "
                                f"{checkpoint_dir(run_dir)}")


def load_latest_with_path(run_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """(path, state) of the newest checkpoint that loads; None if the run has none yet.

    A damaged checkpoint newer than the one returned is reported as one warning line each
    (once per process). If checkpoints exist but none loads, that is one
    :class:`IntegrityError` naming each."""
    _check_not_in_the_way(run_dir)
    failures = []
    for _, path in reversed(list_checkpoints(run_dir)):
        try:
            state = load_checkpoint_file(path)
        except IntegrityError as exc:
            failures.append((path, exc))
            continue
        for bad, exc in failures:
            warn(f"{exc}; falling back to the previous checkpoint",
                 key=("checkpoint", file_key(bad, _sidecar(bad))))
        return path, state
    if failures:
        raise IntegrityError(f"no checkpoint of {run_dir} loads: "
                             + "; ".join(str(exc) for _, exc in failures))
    return None


def load_latest(run_dir: Path) -> dict[str, Any] | None:
    """The newest checkpoint that loads (see :func:`load_latest_with_path`)."""
    found = load_latest_with_path(run_dir)
    return None if found is None else found[1]


def as_json(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples as lists, keys as strings): how a config
    recorded in a checkpoint is compared with the one in memory."""
    return json.loads(json.dumps(value))


def resume_position(state: dict[str, Any], rank: int = 0, world_size: int = 1
                    ) -> tuple[int, int, dict[str, Any] | None, list]:
    """Where a run continues from a checkpoint: (epochs done, steps done in the next epoch,
    that epoch's partial sums for this ``rank``, the per-epoch history). A mid-epoch position
    is kept only when the checkpoint holds one RNG state per process of this ``world_size``
    (the same data order can then be replayed); otherwise the epoch starts again."""
    epoch = int(state["epoch"])
    history = list(state.get("history") or [])
    step = int(state.get("step") or 0)
    if not step or len(state.get("rng") or []) != world_size:
        return epoch, 0, None, history
    partial = (state.get("partial") or [None] * world_size)[rank]
    return epoch, step, partial, history
