"""MNIST-format (IDX) datasets: ``mnist``, ``fashion-mnist`` and ``mnist-test``.

Shapes: images uint8 (N, 1, 28, 28), labels int64 (N,).
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import zlib
from pathlib import Path

import numpy as np
import torch

from probssl import userio
from probssl.data.base import ImageDataset
from probssl.data.download import download_file, sha256_of
from probssl.errors import DatasetNotFound, IntegrityError, UserError

# name -> (mirrors, {file: sha256 of the .gz as distributed})
REMOTE = {
    "mnist": (
        [
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ],
        {
            "train-images-idx3-ubyte.gz":
                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "train-labels-idx1-ubyte.gz":
                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "t10k-images-idx3-ubyte.gz":
                "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "t10k-labels-idx1-ubyte.gz":
                "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
    ),
    "fashion-mnist": (
        ["https://fashion-mnist.s3.eu-central-1.amazonaws.com/",
         "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
        {
            "train-images-idx3-ubyte.gz":
                "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "train-labels-idx1-ubyte.gz":
                "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "t10k-images-idx3-ubyte.gz":
                "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "t10k-labels-idx1-ubyte.gz":
                "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        },
    ),
}

# The offline copy of the MNIST test set ships re-gzipped, so its *decompressed* files are
# what we can check (hashes from ../shared/data/README.md).
T10K_DECOMPRESSED_SHA256 = {
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]


# Deflate cannot compress better than about 1032:1, so a gzip file of S bytes holds at most
# this many times S bytes: a header claiming more is corrupt, refused before reading.
_GZIP_MAX_RATIO = 1100


def _parse_header(head: bytes, source: str, expect_dims: int) -> list[int]:
    """The dimensions from an IDX header (magic + ``expect_dims`` sizes), each >= 1."""
    if len(head) < 4 + 4 * expect_dims:
        raise IntegrityError(f"{source}: truncated IDX file ({len(head)} bytes, no full header)")
    zero, dtype_code, ndim = head[0] << 8 | head[1], head[2], head[3]
    if zero != 0 or dtype_code != 0x08 or ndim != expect_dims:
        raise IntegrityError(
            f"{source}: not a uint8 IDX file with {expect_dims} dimensions "
            f"(magic bytes {head[:4].hex()})"
        )
    dims = [int.from_bytes(head[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    if min(dims) < 1:
        raise IntegrityError(f"{source}: IDX header declares an empty array {dims}")
    return dims


def _size_error(source: str, dims: list[int], got: int | str) -> IntegrityError:
    return IntegrityError(f"{source}: IDX header says {dims} ({math.prod(dims)} bytes) but the "
                          f"file holds {got} bytes (truncated or corrupt)")


def parse_idx(raw: bytes, source: str, expect_dims: int) -> np.ndarray:
    """Parse IDX bytes (uint8 payload) after checking magic number and size."""
    dims = _parse_header(raw[:4 + 4 * expect_dims], source, expect_dims)
    payload = raw[4 + 4 * expect_dims:]
    if len(payload) != math.prod(dims):
        raise _size_error(source, dims, len(payload))
    return np.frombuffer(payload, dtype=np.uint8).reshape(dims)


def read_idx(path: Path, expect_dims: int, sha256_decompressed: str | None = None) -> np.ndarray:
    """Read an IDX file, gzip-compressed or not.

    The header is read first and the size it declares checked against the file (its size,
    or for a gzip file the most its compressed size can hold, and this machine's memory)
    before the payload is read, so a corrupt header claiming billions of images allocates
    nothing.
    """
    source = str(path)
    path = userio.check_regular_file(path, "IDX file")
    n_head = 4 + 4 * expect_dims
    try:
        size = path.stat().st_size
        with open(path, "rb") as raw_fh:
            gz = raw_fh.read(2) == b"\x1f\x8b"
            raw_fh.seek(0)
            fh = gzip.GzipFile(fileobj=raw_fh) if gz else raw_fh
            head = fh.read(n_head)
            dims = _parse_header(head, source, expect_dims)
            want = math.prod(dims)
            if not gz and size - n_head != want:
                raise _size_error(source, dims, size - n_head)
            if gz and want > _GZIP_MAX_RATIO * size:
                raise _size_error(source, dims, f"at most {_GZIP_MAX_RATIO * size} (a "
                                  f"{size}-byte gzip file)")
            userio.check_alloc(want, source)
            payload = fh.read(want + 1)
    except (IntegrityError, UserError):
        raise
    except (OSError, EOFError, zlib.error) as exc:
        raise IntegrityError(f"{path}: cannot be read or decompressed "
                             f"({exc.strerror or exc if isinstance(exc, OSError) else exc})"
                             ) from None
    if len(payload) != want:
        raise _size_error(source, dims, len(payload) if len(payload) < want else "more")
    if sha256_decompressed is not None:
        got = hashlib.sha256(head + payload).hexdigest()
        if got != sha256_decompressed:
            raise IntegrityError(f"{path}: sha256 of the decompressed file is {got}, "
                                 f"expected {sha256_decompressed}")
    return np.frombuffer(payload, dtype=np.uint8).reshape(dims)


def _find(folder: Path, gz_name: str) -> Path | None:
    for candidate in (folder / gz_name, folder / gz_name[:-3]):
        if candidate.is_file():
            return candidate
    return None


def download_idx(name: str, cache_dir: Path) -> Path:
    """Download the four IDX files of ``name`` (``mnist`` or ``fashion-mnist``) into
    ``cache_dir/name``, trying each mirror in turn and skipping files whose sha256 already
    matches; returns that folder."""
    mirrors, files = REMOTE[name]
    folder = cache_dir / name
    for fname, digest in files.items():
        target = folder / fname
        if target.is_file() and sha256_of(target) == digest:
            continue
        download_file([m + fname for m in mirrors], target, digest)
    return folder


def load_idx_dataset(name: str, folder: Path, *, verify: bool = True) -> ImageDataset:
    """Load ``mnist`` or ``fashion-mnist`` from the four IDX files in ``folder``."""
    mirrors, files = REMOTE[name]
    arrays = {}
    for fname, digest in files.items():
        path = _find(folder, fname)
        if path is None:
            raise DatasetNotFound(
                f"{name}: {fname} not found in {folder}; run `probssl datasets download {name}` "
                f"or put the four IDX files ({', '.join(files)}) in that folder and pass "
                f"--data-dir"
            )
        if verify and path.suffix == ".gz":
            try:
                got = sha256_of(path)
            except OSError as exc:
                raise IntegrityError(f"{path}: cannot be read ({exc.strerror or exc})") from None
            if got != digest:
                raise IntegrityError(f"{path}: sha256 {got}, expected {digest}")
        arrays[fname.split(".")[0]] = read_idx(path, 3 if "images" in fname else 1)
    return _assemble(name, arrays, str(folder))


def _assemble(name: str, arrays: dict[str, np.ndarray], source: str) -> ImageDataset:
    def images(key: str) -> torch.Tensor:
        return torch.from_numpy(arrays[key].copy()).unsqueeze(1)

    def labels(key: str) -> torch.Tensor:
        return torch.from_numpy(arrays[key].astype(np.int64))

    for split in ("train", "t10k"):
        n_img = len(arrays[f"{split}-images-idx3-ubyte"])
        lab = arrays[f"{split}-labels-idx1-ubyte"]
        if n_img != len(lab):
            raise IntegrityError(f"{source}: {split} images and labels differ in count "
                                 f"({n_img} images, {len(lab)} labels)")
        if lab.max() > 9:
            raise IntegrityError(f"{source}: {split}-labels-idx1-ubyte holds label "
                                 f"{int(lab.max())}; {name} labels are 0..9")
    return ImageDataset(
        name=name,
        x_train=images("train-images-idx3-ubyte"), y_train=labels("train-labels-idx1-ubyte"),
        x_test=images("t10k-images-idx3-ubyte"), y_test=labels("t10k-labels-idx1-ubyte"),
        num_classes=10, augmentation=name,
        class_names=FASHION_CLASSES if name == "fashion-mnist" else [str(i) for i in range(10)],
        source=source,
    )


def default_t10k_dir() -> Path:
    """``$PROBSSL_MNIST_T10K``, else ``../shared/data/mnist-t10k`` beside the project root."""
    env = os.environ.get("PROBSSL_MNIST_T10K")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist-t10k"


MNIST_TEST_SPLIT_SEED = 20240101
MNIST_TEST_N_TRAIN = 8000


def load_mnist_test(folder: Path | None, cache_dir: Path) -> ImageDataset:
    """The real MNIST test set (10,000 images) split deterministically 8,000 / 2,000.

    Read from ``folder`` (default :func:`default_t10k_dir`), else from the test split of a
    downloaded ``mnist`` in the cache. The split is a fixed permutation (seed
    ``MNIST_TEST_SPLIT_SEED``), identical on every machine.
    """
    candidates = [folder] if folder is not None else [default_t10k_dir(), cache_dir / "mnist"]
    for cand in candidates:
        img = _find(cand, "t10k-images-idx3-ubyte.gz")
        lab = _find(cand, "t10k-labels-idx1-ubyte.gz")
        if img is not None and lab is not None:
            break
    else:
        raise DatasetNotFound(
            "mnist-test: t10k-images-idx3-ubyte(.gz) and t10k-labels-idx1-ubyte(.gz) not found in "
            + " or ".join(str(c) for c in candidates)
            + "; pass --data-dir FOLDER, set PROBSSL_MNIST_T10K, or run "
              "`probssl datasets download mnist`"
        )
    x = read_idx(img, 3, T10K_DECOMPRESSED_SHA256["t10k-images-idx3-ubyte"])
    y = read_idx(lab, 1, T10K_DECOMPRESSED_SHA256["t10k-labels-idx1-ubyte"])
    perm = np.random.default_rng(MNIST_TEST_SPLIT_SEED).permutation(len(x))
    tr, te = perm[:MNIST_TEST_N_TRAIN], perm[MNIST_TEST_N_TRAIN:]
    xt = torch.from_numpy(x.copy()).unsqueeze(1)
    yt = torch.from_numpy(y.astype(np.int64))
    return ImageDataset(
        name="mnist-test", x_train=xt[tr], y_train=yt[tr], x_test=xt[te], y_test=yt[te],
        num_classes=10, augmentation="mnist", class_names=[str(i) for i in range(10)],
        source=str(img.parent),
    )
