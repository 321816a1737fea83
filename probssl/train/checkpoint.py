"""Checkpoints written atomically (temp file + fsync + rename), the last K kept.

``epoch-0003.pt`` holds the state after 3 complete epochs; ``epoch-0003-step-000050.pt`` the
state 50 steps into the 4th (periodic ``checkpoint_every`` saves and Ctrl-C). Beside each a
``.sha256`` file records the digest of the bytes written. A checkpoint that fails to load
(truncated, corrupt, digest mismatch) is reported by name and skipped in favour of the
previous one. A write that fails (e.g. a full disk) leaves the previous checkpoints intact and
no partial file behind.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import sys
from pathlib import Path
from typing import Any

import torch

from probssl.errors import IntegrityError

PATTERN = re.compile(r"^epoch-(\d+)(?:-step-(\d+))?\.pt$")


def checkpoint_dir(run_dir: Path) -> Path:
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
    for p in folder.iterdir():
        m = PATTERN.match(p.name)
        if m:
            found.append((int(m.group(1)), int(m.group(2) or 0), p))
    return [(e, p) for e, _, p in sorted(found)]


def checkpoint_name(epoch: int, step: int = 0) -> str:
    return f"epoch-{epoch:04d}.pt" if step == 0 else f"epoch-{epoch:04d}-step-{step:06d}.pt"


def save_checkpoint(state: dict[str, Any], run_dir: Path, epoch: int, keep: int,
                    step: int = 0) -> Path:
    path = checkpoint_dir(run_dir) / checkpoint_name(epoch, step)
    atomic_save(state, path)
    for _, old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
        _sidecar(old).unlink(missing_ok=True)
    return path


def load_checkpoint_file(path: Path) -> dict[str, Any]:
    side = _sidecar(path)
    if side.is_file():
        want = side.read_text().split()[0] if side.read_text().strip() else ""
        got = hashlib.sha256(path.read_bytes()).hexdigest()
        if want != got:
            raise IntegrityError(f"{path}: sha256 {got[:12]}… does not match the recorded "
                                 f"{want[:12]}… (damaged file)")
    try:
        # Our own files: they hold RNG states (numpy arrays, tuples), not only tensors.
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # truncated zip, bad pickle, ...: a damaged file
        raise IntegrityError(f"{path}: unreadable checkpoint ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(state, dict) or "model" not in state or "epoch" not in state:
        raise IntegrityError(f"{path}: not a probssl checkpoint")
    return state


def load_latest(run_dir: Path) -> dict[str, Any] | None:
    """The newest checkpoint that loads; damaged ones are reported on stderr and skipped."""
    for _, path in reversed(list_checkpoints(run_dir)):
        try:
            return load_checkpoint_file(path)
        except IntegrityError as exc:
            print(f"probssl: warning: {exc}; falling back to the previous checkpoint",
                  file=sys.stderr)
    return None
