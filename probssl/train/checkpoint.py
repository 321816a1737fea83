"""Checkpoints written atomically (temp file + fsync + rename), the last K kept.

A checkpoint that fails to load (truncated, corrupt) is reported by name and skipped in
favour of the previous one, so a crash while writing never costs more than one epoch.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import torch

from probssl.errors import IntegrityError

PATTERN = re.compile(r"^epoch-(\d+)\.pt$")


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def atomic_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        if tmp.exists():
            tmp.unlink()


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(epoch, path) of every checkpoint in the run, oldest first."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = PATTERN.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def save_checkpoint(state: dict[str, Any], run_dir: Path, epoch: int, keep: int) -> Path:
    path = checkpoint_dir(run_dir) / f"epoch-{epoch:04d}.pt"
    atomic_save(state, path)
    for _, old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint_file(path: Path) -> dict[str, Any]:
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
