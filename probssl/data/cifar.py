"""CIFAR-10 from the official python-pickle tarball.

Shapes: images uint8 (N, 3, 32, 32) (50,000 train, 10,000 test), labels int64 (N,).
"""

from __future__ import annotations

import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch

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
    target = cache_dir / "cifar10" / TARBALL
    if not (target.is_file() and sha256_of(target) == SHA256):
        download_file(URLS, target, SHA256)
    return target.parent


def _decode_batch(raw: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        entry = pickle.loads(raw, encoding="bytes")  # noqa: S301 (verified official archive)
        data = np.asarray(entry[b"data"], dtype=np.uint8)
        labels = np.asarray(entry[b"labels"], dtype=np.int64)
    except Exception as exc:  # any unpickling failure is a bad file, not a bug
        raise IntegrityError(f"{source}: not a CIFAR-10 batch ({type(exc).__name__}: {exc})") \
            from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise IntegrityError(
            f"{source}: CIFAR-10 batch has data of shape {data.shape} and {len(labels)} labels; "
            "expected (N, 3072) and N labels"
        )
    if labels.min(initial=0) < 0 or labels.max(initial=0) > 9:
        raise IntegrityError(f"{source}: labels outside 0..9")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10(folder: Path, *, verify: bool = True) -> ImageDataset:
    """Load from ``folder`` holding the tarball or its extracted ``cifar-10-batches-py/``."""
    tarball = folder / TARBALL
    extracted = folder / "cifar-10-batches-py"
    raw: dict[str, bytes] = {}
    if tarball.is_file():
        if verify and sha256_of(tarball) != SHA256:
            raise IntegrityError(f"{tarball}: sha256 {sha256_of(tarball)}, expected {SHA256}")
        try:
            with tarfile.open(tarball, "r:gz") as tar:
                for member in tar.getmembers():
                    base = Path(member.name).name
                    if base in BATCHES and member.isfile():
                        raw[base] = tar.extractfile(member).read()  # type: ignore[union-attr]
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise IntegrityError(f"{tarball}: unreadable tarball ({exc})") from None
        source = str(tarball)
    elif extracted.is_dir():
        for b in BATCHES:
            if (extracted / b).is_file():
                raw[b] = (extracted / b).read_bytes()
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
