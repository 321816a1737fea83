"""Data that needs no download: scikit-learn's digits and the user's own folders / npz files.

Shapes: images uint8 (N, C, H, W); labels int64 (N,) or ``None`` when unlabelled.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from probssl import userio
from probssl.data.base import ImageDataset
from probssl.errors import DatasetNotFound, UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm",
                  ".ppm"}
LOCAL_SPLIT_SEED = 0
LOCAL_TEST_FRACTION = 0.2


def split_indices(n: int, labels: np.ndarray | None, seed: int, test_fraction: float):
    """Deterministic train/test split: stratified at random when labels are given; for
    unlabelled data contiguous (the last ``test_fraction`` held out), so an ordered sequence
    of frames keeps consecutive frames consecutive.

    For ``n >= 2`` both parts are non-empty: when rounding per class would hold out nothing
    (a handful of images), one image of the largest class is held out instead.
    """
    if n < 2:
        raise UserError(f"need at least 2 images to make a train/test split; got {n}")
    rng = np.random.default_rng(seed)
    if labels is None:
        n_test = min(n - 1, max(1, int(round(n * test_fraction))))
        return np.arange(n - n_test), np.arange(n - n_test, n)
    classes = np.unique(labels)
    perms = [rng.permutation(np.flatnonzero(labels == c)) for c in classes]
    n_tests = [int(round(len(idx) * test_fraction)) for idx in perms]
    if sum(n_tests) == 0:  # too few images per class: hold out one of the largest class
        n_tests[int(np.argmax([len(idx) for idx in perms]))] = 1
    if sum(n_tests) == n:  # never hold out everything
        n_tests[int(np.argmax(n_tests))] -= 1
    train = [idx[k:] for idx, k in zip(perms, n_tests, strict=True)]
    test = [idx[:k] for idx, k in zip(perms, n_tests, strict=True)]
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _build(name, x, y, augmentation, class_names, source, x_test=None, y_test=None):
    if x_test is None:
        if len(x) < 2:
            raise UserError(f"{source}: need at least 2 images to make a train/test split; "
                            f"got {len(x)}")
        tr, te = split_indices(len(x), y, LOCAL_SPLIT_SEED, LOCAL_TEST_FRACTION)
        x, x_test = x[tr], x[te]
        y, y_test = (y[tr], y[te]) if y is not None else (None, None)
    if len(x) < 1 or len(x_test) < 1:
        raise UserError(f"{source}: the train/test split leaves {len(x)} train and "
                        f"{len(x_test)} test images; need at least one of each")
    t = lambda a: None if a is None else torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    return ImageDataset(
        name=name, x_train=t(x), y_train=t(y), x_test=t(x_test), y_test=t(y_test),
        num_classes=None if y is None else int(max(y.max(), y_test.max()) + 1),
        augmentation=augmentation, class_names=class_names, source=source,
    )


def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """The images (1797, 8, 8; grey levels 0..16) and labels of scikit-learn's digits, as
    ``sklearn.datasets.load_digits`` returns them. Read from the CSV file scikit-learn ships
    (what ``load_digits`` reads) when it is where scikit-learn keeps it: importing
    ``sklearn.datasets`` costs ~1.3 s at the start of every process that trains on digits.
    Otherwise through ``load_digits`` itself."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    for root in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(root) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            data = np.loadtxt(path, delimiter=",")
            if data.shape == (1797, 65):
                return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images, bunch.target


def load_digits_dataset() -> ImageDataset:
    """scikit-learn's bundled 8x8 digits (1,797 images, 17 grey levels scaled to 0..255).

    Stratified deterministic split: 80 % train / 20 % test (seed ``LOCAL_SPLIT_SEED``).
    """
    images, target = _sklearn_digits()
    x = np.round(images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    y = target.astype(np.int64)
    return _build("digits", x, y, "digits", [str(i) for i in range(10)], "sklearn.datasets")


# Labels are class indices 0..K-1; more classes than this is a corrupt or mis-typed label
# array (e.g. 2**62, or pixel values stored as labels), and would make every classifier,
# one-hot and clustering of the evaluation explode.
MAX_CLASSES = 10_000
_IMAGE_DTYPES = "uint8 (0..255), another integer type (0..255) or float (0..1)"


def _to_nchw_uint8(x, source: str, key: str = "x") -> np.ndarray:
    """Validate an image array where it enters: an ndarray of integers in 0..255 or finite
    floats in [0, 1], shaped (N,H,W), (N,C,H,W) or (N,H,W,C) with C in {1, 3} and H, W >= 1;
    returned as uint8 (N, C, H, W)."""
    if not isinstance(x, np.ndarray):
        raise UserError(f"{source}: array '{key}' is not a numeric array")
    if x.dtype.kind not in "uif":
        raise UserError(f"{source}: array '{key}' has unsupported dtype {x.dtype}; images "
                        f"must be {_IMAGE_DTYPES}")
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        if x.shape[1] not in (1, 3) and x.shape[-1] in (1, 3):
            x = x.transpose(0, 3, 1, 2)
    else:
        raise UserError(f"{source}: array '{key}' must have shape (N,H,W), (N,C,H,W) or "
                        f"(N,H,W,C); got {x.shape}")
    if x.shape[1] not in (1, 3):
        raise UserError(f"{source}: array '{key}': images must have 1 or 3 channels; got "
                        f"shape {x.shape}")
    if x.shape[2] < 1 or x.shape[3] < 1:
        raise UserError(f"{source}: array '{key}' holds zero-sized images "
                        f"({x.shape[2]}x{x.shape[3]} pixels)")
    if x.size == 0:
        return np.zeros(x.shape, np.uint8)
    if x.dtype.kind == "f":
        if not np.isfinite(x).all():
            raise UserError(f"{source}: array '{key}' holds NaN or infinite pixel values")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0.0 or hi > 1.0:
            raise UserError(f"{source}: array '{key}': float images must lie in [0, 1]; found "
                            f"range [{lo:.3g}, {hi:.3g}]")
        return np.round(x * 255.0).astype(np.uint8)
    lo, hi = int(x.min()), int(x.max())
    if lo < 0 or hi > 255:
        raise UserError(f"{source}: array '{key}': integer images must lie in 0..255; found "
                        f"range [{lo}, {hi}]")
    return np.ascontiguousarray(x, dtype=np.uint8)


def _labels(y, n: int, source: str, key: str) -> np.ndarray:
    """Validate a label array: (n,) integers in 0..MAX_CLASSES-1, returned as int64."""
    if not isinstance(y, np.ndarray):
        raise UserError(f"{source}: array '{key}' is not a numeric array")
    if y.ndim != 1 or len(y) != n:
        raise UserError(f"{source}: array '{key}' must have shape ({n},), one label per "
                        f"image; got {y.shape}")
    if y.dtype.kind not in "ui":
        raise UserError(f"{source}: array '{key}' must hold non-negative integer labels; "
                        f"got dtype {y.dtype}")
    if len(y):
        lo, hi = int(y.min()), int(y.max())
        if lo < 0:
            raise UserError(f"{source}: array '{key}' must hold non-negative integer labels; "
                            f"found {lo}")
        if hi >= MAX_CLASSES:
            raise UserError(f"{source}: array '{key}' holds label {hi}; labels must be class "
                            f"indices 0..K-1 with K <= {MAX_CLASSES}")
    return y.astype(np.int64)


def load_npz(path: Path) -> ImageDataset:
    """``npz:FILE`` with array ``x`` and optional ``y``; optional ``x_test``/``y_test``.

    Without ``x_test`` a deterministic 80/20 split is made (stratified when ``y`` is given,
    the last 20 % when not, so a sequence of frames stays in order for ``views="next-frame"``).
    Every array is validated where it enters (:func:`_to_nchw_uint8`, :func:`_labels`); the
    archive's headers are checked before anything is loaded (:func:`userio.npz_headers`).
    """
    what = "npz dataset"
    try:
        exists = path.exists()
    except OSError:
        exists = True  # let check_regular_file name the problem
    if not exists:
        raise DatasetNotFound(f"{what} {path} does not exist")
    arrays = userio.read_npz(path, what)
    src = f"{what} {path}"
    if "x" not in arrays:
        raise UserError(f"{src}: no array named 'x' (found {sorted(arrays) or 'none'})")
    for key, needs in (("y_test", "x_test"), ("y_test", "y")):
        if key in arrays and needs not in arrays:
            raise UserError(f"{src}: has '{key}' but no '{needs}'")
    x = _to_nchw_uint8(arrays["x"], src, "x")
    y = _labels(arrays["y"], len(x), src, "y") if "y" in arrays else None
    x_test = y_test = None
    if "x_test" in arrays:
        x_test = _to_nchw_uint8(arrays["x_test"], src, "x_test")
        if x_test.shape[1:] != x.shape[1:]:
            raise UserError(f"{src}: x_test images {x_test.shape[1:]} differ from x "
                            f"{x.shape[1:]}")
        if y is not None:
            if "y_test" not in arrays:
                raise UserError(f"{src}: has 'y' and 'x_test' but no 'y_test'")
            y_test = _labels(arrays["y_test"], len(x_test), src, "y_test")
    if len(x) < 1 or (x_test is not None and len(x_test) < 1):
        raise UserError(f"{src}: array '{'x' if len(x) < 1 else 'x_test'}' holds no images")
    aug = "generic-color" if x.shape[1] == 3 else "generic-gray"
    return _build(f"npz:{path}", x, y, aug, None, src, x_test, y_test)


def _image_mode(mode: str) -> str:
    return "L" if mode in ("L", "1", "I;16", "I;16B", "I;16L", "I", "F", "LA", "La") else "RGB"


def _read_image(path: Path) -> np.ndarray:
    img = userio.read_image(path, "image", mode=_image_mode)
    return np.asarray(img, dtype=np.uint8)


def load_folder(root: Path) -> ImageDataset:
    """``folder:PATH``: one sub-folder per class (labelled) or images directly (unlabelled).

    Every image must have the same size and colour mode as the first one; the error names the
    first image that does not. Classes are the sub-folder names in sorted order; every class
    folder must hold at least one image; hidden files and folders (``.name``) are skipped.
    Each file is decoded through :func:`userio.read_image` (regular files only, pixel limit,
    any decoding failure is one line naming the file).
    """
    what = "image folder"
    try:
        if not root.exists():
            raise DatasetNotFound(f"{what} {root} does not exist")
        if not root.is_dir():
            raise UserError(f"{what} {root} is not a directory")
        subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if subdirs:
            classes = [d.name for d in subdirs]
            entries = []
            for c, d in enumerate(subdirs):
                found = [(p, c) for p in sorted(d.iterdir())
                         if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
                if not found:
                    raise UserError(f"{what} {root}: class folder {d.name!r} holds no images "
                                    f"({', '.join(sorted(IMAGE_SUFFIXES))})")
                entries += found
        else:
            classes = None
            entries = [(p, -1) for p in sorted(root.iterdir())
                       if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
    except OSError as exc:
        raise UserError(f"cannot list {what} {root}: {exc.strerror or exc}") from None
    if not entries:
        raise DatasetNotFound(
            f"{what} {root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); expected "
            "PATH/<class>/<image> or PATH/<image>"
        )
    if classes is not None and len(classes) > MAX_CLASSES:
        raise UserError(f"{what} {root}: {len(classes)} class folders; at most {MAX_CLASSES}")
    first = _read_image(entries[0][0])
    userio.check_alloc(len(entries) * first.nbytes, f"{what} {root} ({len(entries)} images "
                       f"of {first.shape})")
    x = np.empty((len(entries), *first.shape), dtype=np.uint8)
    for i, (p, _) in enumerate(entries):
        img = first if i == 0 else _read_image(p)
        if img.shape != first.shape:
            raise UserError(f"{p}: image of shape {img.shape} differs from {entries[0][0]} "
                            f"({first.shape}); resize the folder's images to one size first")
        x[i] = img
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    y = np.array([c for _, c in entries], dtype=np.int64) if classes else None
    aug = "generic-color" if x.shape[1] == 3 else "generic-gray"
    return _build(f"folder:{root}", x, y, aug, classes, f"{what} {root}")
