"""Downloading dataset files: sha256-verified, atomic, retried, with a progress bar.

A file is streamed into a temporary name next to its destination, hashed while it streams,
and renamed into place only when the hash matches. A corrupted or interrupted download
therefore never leaves anything under the final name, and the temporary file is removed.
"""

from __future__ import annotations

import hashlib
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from probssl.errors import IntegrityError, UserError

CHUNK = 1 << 16


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_cache_dir() -> Path:
    """``$PROBSSL_DATA`` if set, else ``~/.cache/probssl``."""
    env = os.environ.get("PROBSSL_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "probssl"


class _Incomplete(Exception):
    pass


def _stream(url: str, tmp: Path, timeout: float, desc: str) -> str:
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (http(s) only)
        total = resp.headers.get("Content-Length")
        total = int(total) if total is not None else None
        received = 0
        with open(tmp, "wb") as out, tqdm(
            total=total, unit="B", unit_scale=True, desc=desc, leave=False, disable=None
        ) as bar:
            while True:
                block = resp.read(CHUNK)
                if not block:
                    break
                out.write(block)
                digest.update(block)
                received += len(block)
                bar.update(len(block))
            out.flush()
            os.fsync(out.fileno())
    if total is not None and received != total:
        raise _Incomplete(f"received {received} of {total} bytes")
    return digest.hexdigest()


def download_file(
    urls: str | Sequence[str],
    dest: str | os.PathLike,
    sha256: str | None,
    *,
    retries: int = 2,
    timeout: float = 60.0,
    backoff: float = 1.0,
) -> Path:
    """Download ``dest`` from the first mirror in ``urls`` that works, verifying ``sha256``.

    Network failures and truncated transfers are retried ``retries`` times per mirror. A
    completed download whose hash differs raises :class:`IntegrityError` at once (a retry
    would fetch the same wrong bytes) naming the file and both hashes. Nothing is left at
    ``dest`` or beside it unless the download succeeded.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(urls, str):
        urls = [urls]
    errors: list[str] = []
    for url in urls:
        for attempt in range(retries + 1):
            tmp = dest.with_name(f".{dest.name}.part-{os.getpid()}")
            try:
                got = _stream(url, tmp, timeout, dest.name)
                if sha256 is not None and got != sha256:
                    raise IntegrityError(
                        f"{dest.name} downloaded from {url} is corrupted: sha256 {got}, "
                        f"expected {sha256}; nothing was kept"
                    )
                os.replace(tmp, dest)
                return dest
            except (urllib.error.URLError, OSError, _Incomplete, TimeoutError) as exc:
                errors.append(f"{url} (attempt {attempt + 1}): {exc}")
                if attempt < retries:
                    time.sleep(backoff * (attempt + 1))
            finally:
                if tmp.exists():
                    tmp.unlink()
    raise UserError(
        f"could not download {dest.name}: " + "; ".join(errors[-len(urls):])
        + " (check the network, or place the file in the data directory yourself)"
    )
