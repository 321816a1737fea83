"""CIFAR-10 from the official python-pickle tarball.

Shapes: images uint8 (N, 3, 32, 32) (50,000 train, 10,000 test), labels int64 (N,).
"""

from __future__ import annotations

import io
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np
import torch

from probssl import userio
from probssl.data.base import ImageDataset
from probssl.data.download import download_file, sha256_of
from probssl.errors import DatasetNotFound, IntegrityError

URLS = ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]
TARBALL = "cifar-10-python.tar.gz"
SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck"]


def download_cifar10(cache_dir: Path) -> Path:
    """Download the CIFAR-10 python tarball into ``cache_dir/cifar10`` (nothing is fetched when a
    copy with the right sha256 is already there); returns that folder."""
    target = cache_dir / "cifar10" / TARBALL
    if not (target.is_file() and sha256_of(target) == SHA256):
        download_file(URLS, target, SHA256)
    return target.parent


# The globals an official (or numpy-written) CIFAR-10 batch pickle refers to; anything else
# is refused, so an extracted folder from elsewhere cannot run code when it is unpickled.
_PICKLE_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
}
# An official batch is ~31 MB; a member or file far larger is not one (and is not read).
MAX_BATCH_BYTES = 256 << 20


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"refers to {module}.{name}, which a CIFAR-10 batch "
                                         "never does")
        return super().find_class(module, name)


def _decode_batch(raw: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Unpickle one batch (only numpy arrays, lists, dicts and bytes are allowed) and check
    its structure: a dict with ``data`` (N, 3072) of 0..255 and ``labels`` N ints 0..9."""
    try:
        entry = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:  # noqa: BLE001 — any unpickling failure is a bad file, not a bug
        text = str(exc).splitlines()[0][:200] if str(exc).strip() else ""
        raise IntegrityError(f"{source}: not a CIFAR-10 batch (not a readable pickle: "
                             f"{type(exc).__name__}{': ' + text if text else ''})") from None
    if not isinstance(entry, dict) or b"data" not in entry or b"labels" not in entry:
        raise IntegrityError(f"{source}: not a CIFAR-10 batch (expected a dict with b'data' "
                             f"and b'labels'; got {type(entry).__name__})")
    try:
        data = np.asarray(entry[b"data"])
        labels = np.asarray(entry[b"labels"])
    except Exception as exc:  # noqa: BLE001 — ragged lists and the like
        raise IntegrityError(f"{source}: not a CIFAR-10 batch ({type(exc).__name__})") from None
    if data.dtype.kind not in "ui" or data.ndim != 2 or data.shape[1] != 3072 \
            or len(data) < 1 or labels.ndim != 1 or len(labels) != len(data):
        raise IntegrityError(
            f"{source}: CIFAR-10 batch has data of shape {data.shape} ({data.dtype}) and "
            f"labels of shape {labels.shape}; expected (N, 3072) integers and N labels, N >= 1"
        )
    if labels.dtype.kind not in "ui" or labels.min() < 0 or labels.max() > 9:
        raise IntegrityError(f"{source}: labels outside 0..9")
    if data.min() < 0 or data.max() > 255:
        raise IntegrityError(f"{source}: pixel values outside 0..255")
    return data.astype(np.uint8).reshape(-1, 3, 32, 32), labels.astype(np.int64)


def load_cifar10(folder: Path, *, verify: bool = True) -> ImageDataset:
    """Load from ``folder`` holding the tarball or its extracted ``cifar-10-batches-py/``."""
    tarball = folder / TARBALL
    extracted = folder / "cifar-10-batches-py"
    raw: dict[str, bytes] = {}
    if tarball.is_file():
        try:
            got = sha256_of(tarball) if verify else SHA256
        except OSError as exc:
            raise IntegrityError(f"{tarball}: cannot be read ({exc.strerror or exc})") from None
        if got != SHA256:
            raise IntegrityError(f"{tarball}: sha256 {got}, expected {SHA256}")
        try:
            with tarfile.open(tarball, "r:gz") as tar:
                for member in tar.getmembers():
                    base = Path(member.name).name
                    if base in BATCHES and member.isfile():
                        if member.size > MAX_BATCH_BYTES:
                            raise IntegrityError(f"{tarball}: member {member.name} is "
                                                 f"{member.size} bytes; not a CIFAR-10 batch")
                        raw[base] = tar.extractfile(member).read()  # type: ignore[union-attr]
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise IntegrityError(f"{tarball}: unreadable tarball ({exc})") from None
        source = str(tarball)
    elif extracted.is_dir():
        for b in BATCHES:
            if (extracted / b).is_file():
                raw[b] = userio.read_bytes(extracted / b, "CIFAR-10 batch", MAX_BATCH_BYTES)
        source = str(extracted)
    else:
        raise DatasetNotFound(
            f"cifar10: neither {tarball} nor {extracted}/ exists; run "
            "`probssl datasets download cifar10` or pass --data-dir to a folder holding "
            f"{TARBALL}"
        )
    missing = [b for b in BATCHES if b not in raw]
    if missing:
        raise IntegrityError(f"{source}: missing CIFAR-10 batches {missing}")
    parts = [_decode_batch(raw[b], f"{source}:{b}") for b in BATCHES]
    x_train = np.concatenate([p[0] for p in parts[:5]])
    y_train = np.concatenate([p[1] for p in parts[:5]])
    x_test, y_test = parts[5]
    return ImageDataset(
        name="cifar10", x_train=torch.from_numpy(x_train), y_train=torch.from_numpy(y_train),
        x_test=torch.from_numpy(x_test.copy()), y_test=torch.from_numpy(y_test),
        num_classes=10, augmentation="cifar10", class_names=CLASSES, source=source,
    )
