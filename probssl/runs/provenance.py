"""Where a run came from: the source tree's git state, the installed versions, a hash of the
data it was trained on, and how the process was invoked on which machine.

Everything here only observes: it never raises for a missing git, an unreadable checkout or a
package that is not installed (the field is ``None`` instead), and it draws no random numbers,
so recording it cannot change a run.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

import probssl

# The distributions whose versions can change a run's numbers or its files.
PACKAGES = ("torch", "numpy", "scikit-learn", "scipy", "matplotlib", "pillow", "tqdm",
            "pyyaml", "tomli")
GIT_TIMEOUT_S = 5.0


def _source_root() -> Path:
    """The directory holding the ``probssl`` package (a checkout's root when installed
    editable or run from source)."""
    return Path(__file__).resolve().parents[2]


def _git(args: list[str], cwd: Path) -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    try:
        proc = subprocess.run([git, *args], cwd=cwd, capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, stdin=subprocess.DEVNULL,
                              env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"})
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def git_state(path: str | Path | None = None) -> dict[str, Any]:
    """``{"commit": sha, "dirty": bool}`` of the git checkout holding ``path`` (default: the
    probssl source tree, only when it is a checkout's root — an installed copy inside some
    other repository is not that repository's code); both ``None`` when it is not a git
    checkout, git is missing or does not answer within :data:`GIT_TIMEOUT_S`. ``dirty``
    counts changes to tracked files only. Never raises."""
    state: dict[str, Any] = {"commit": None, "dirty": None}
    try:
        where = Path(path) if path is not None else _source_root()
        if not where.is_dir():
            where = where.parent
        if not where.is_dir():
            return state
        head = _git(["rev-parse", "--show-toplevel", "HEAD"], where)
        lines = (head or "").splitlines()
        if len(lines) != 2:
            return state
        if path is None and Path(lines[0]).resolve() != where.resolve():
            return state
    except OSError:
        return state
    state["commit"] = lines[1]
    status = _git(["status", "--porcelain", "--untracked-files=no"], where)
    state["dirty"] = None if status is None else bool(status.strip())
    return state


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except (metadata.PackageNotFoundError, ValueError, OSError):
        return None


def package_versions() -> dict[str, str | None]:
    """Python's version and those of probssl and the packages that matter to a run
    (:data:`PACKAGES`; one not installed is left out)."""
    out: dict[str, str | None] = {"python": platform.python_version(),
                                  "probssl": probssl.__version__}
    for dist in PACKAGES:
        version = _version(dist)
        if version is not None:
            out[dist] = version
    out["torch"] = torch.__version__  # the imported one (a local build may differ)
    out["numpy"] = np.__version__
    return out


def array_hash(*arrays: Any) -> str:
    """sha256 over the dtype, shape and bytes of each array (numpy or torch, equal data hashing
    equally in either; ``None`` is hashed as a marker), in order: equal data gives equal
    hashes on any machine."""
    digest = hashlib.sha256()
    for a in arrays:
        if a is None:
            digest.update(b"none;")
            continue
        if isinstance(a, torch.Tensor):
            a = a.detach().cpu().contiguous()
            try:
                a = a.numpy()
            except (TypeError, RuntimeError):  # no numpy dtype (bfloat16): its raw bytes
                shape = tuple(a.shape)
                raw = a.reshape(-1).view(torch.uint8).numpy()
                digest.update(f"{str(a.dtype).removeprefix('torch.')};{shape};".encode())
                digest.update(raw.tobytes())
                continue
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype.str};{a.shape};".encode())
        digest.update(memoryview(a.reshape(-1).view(np.uint8)))
    return digest.hexdigest()


def provenance(arrays: list[Any] | tuple[Any, ...] | None = None) -> dict[str, Any]:
    """``{"git", "packages", "data_sha256"}``: the source tree's state, the versions, and
    :func:`array_hash` of ``arrays`` (``None`` when none are given)."""
    return {"git": git_state(), "packages": package_versions(),
            "data_sha256": None if arrays is None else array_hash(*arrays)}


def machine_line() -> str:
    """The machine in one line: host, processor, CPUs, torch and its threads, the GPU."""
    return (f"{socket.gethostname()}, {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} CPUs, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), "
            f"{'CUDA ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'}")


def command_line() -> str:
    """How this process was invoked, as a user would type it."""
    prog = Path(sys.argv[0]).name
    if prog in ("__main__.py", "probssl"):
        return "probssl " + " ".join(sys.argv[1:])
    return " ".join(sys.argv)
