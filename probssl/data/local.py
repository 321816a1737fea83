"""Data that needs no download: scikit-learn's digits and the user's own folders / npz files.

Shapes: images uint8 (N, C, H, W); labels int64 (N,) or ``None`` when unlabelled.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from probssl.data.base import ImageDataset
from probssl.errors import DatasetNotFound, IntegrityError, UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm",
                  ".ppm"}
LOCAL_SPLIT_SEED = 0
LOCAL_TEST_FRACTION = 0.2


def split_indices(n: int, labels: np.ndarray | None, seed: int, test_fraction: float):
    """Deterministic train/test split: stratified at random when labels are given; for
    unlabelled data contiguous (the last ``test_fraction`` held out), so an ordered sequence
    of frames keeps consecutive frames consecutive."""
    rng = np.random.default_rng(seed)
    if labels is None:
        n_test = max(1, int(round(n * test_fraction)))
        return np.arange(n - n_test), np.arange(n - n_test, n)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(len(idx) * test_fraction))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _build(name, x, y, augmentation, class_names, source, x_test=None, y_test=None):
    if x_test is None:
        if len(x) < 2:
            raise UserError(f"{source}: need at least 2 images to make a train/test split")
        tr, te = split_indices(len(x), y, LOCAL_SPLIT_SEED, LOCAL_TEST_FRACTION)
        x, x_test = x[tr], x[te]
        y, y_test = (y[tr], y[te]) if y is not None else (None, None)
    t = lambda a: None if a is None else torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    return ImageDataset(
        name=name, x_train=t(x), y_train=t(y), x_test=t(x_test), y_test=t(y_test),
        num_classes=None if y is None else int(max(y.max(), y_test.max()) + 1),
        augmentation=augmentation, class_names=class_names, source=source,
    )


def load_digits_dataset() -> ImageDataset:
    """scikit-learn's bundled 8x8 digits (1,797 images, 17 grey levels scaled to 0..255).

    Stratified deterministic split: 80 % train / 20 % test (seed ``LOCAL_SPLIT_SEED``).
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    y = bunch.target.astype(np.int64)
    return _build("digits", x, y, "digits", [str(i) for i in range(10)], "sklearn.datasets")


def _to_nchw_uint8(x: np.ndarray, source: str) -> np.ndarray:
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        if x.shape[1] not in (1, 3) and x.shape[-1] in (1, 3):
            x = x.transpose(0, 3, 1, 2)
    else:
        raise UserError(f"{source}: array 'x' must have shape (N,H,W), (N,C,H,W) or (N,H,W,C); "
                        f"got {x.shape}")
    if x.shape[1] not in (1, 3):
        raise UserError(f"{source}: images must have 1 or 3 channels; got shape {x.shape}")
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if np.issubdtype(x.dtype, np.floating):
        lo, hi = float(np.nanmin(x)), float(np.nanmax(x))
        if np.isnan(x).any() or lo < 0.0 or hi > 1.0:
            raise UserError(f"{source}: float images must lie in [0, 1]; found range "
                            f"[{lo:.3g}, {hi:.3g}] (or NaN)")
        return np.round(x * 255.0).astype(np.uint8)
    if np.issubdtype(x.dtype, np.integer):
        if x.min() < 0 or x.max() > 255:
            raise UserError(f"{source}: integer images must lie in 0..255")
        return x.astype(np.uint8)
    raise UserError(f"{source}: unsupported image dtype {x.dtype}")


def _labels(y: np.ndarray, n: int, source: str, key: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise UserError(f"{source}: array '{key}' must have shape ({n},); got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or (len(y) and y.min() < 0):
        raise UserError(f"{source}: array '{key}' must hold non-negative integer labels")
    return y.astype(np.int64)


def load_npz(path: Path) -> ImageDataset:
    """``npz:FILE`` with array ``x`` and optional ``y``; optional ``x_test``/``y_test``.

    Without ``x_test`` a deterministic 80/20 split is made (stratified when ``y`` is given,
    the last 20 % when not, so a sequence of frames stays in order for ``views="next-frame"``).
    """
    if not path.is_file():
        raise DatasetNotFound(f"npz dataset {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as exc:
        raise IntegrityError(f"{path}: not a readable .npz file ({exc})") from None
    if "x" not in arrays:
        raise UserError(f"{path}: no array named 'x' (found {sorted(arrays)})")
    x = _to_nchw_uint8(arrays["x"], str(path))
    y = _labels(arrays["y"], len(x), str(path), "y") if "y" in arrays else None
    x_test = y_test = None
    if "x_test" in arrays:
        x_test = _to_nchw_uint8(arrays["x_test"], str(path))
        if x_test.shape[1:] != x.shape[1:]:
            raise UserError(f"{path}: x_test images {x_test.shape[1:]} differ from x "
                            f"{x.shape[1:]}")
        if y is not None:
            if "y_test" not in arrays:
                raise UserError(f"{path}: has 'y' and 'x_test' but no 'y_test'")
            y_test = _labels(arrays["y_test"], len(x_test), str(path), "y_test")
    aug = "generic-color" if x.shape[1] == 3 else "generic-gray"
    return _build(f"npz:{path}", x, y, aug, None, str(path), x_test, y_test)


def _read_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as img:
            mode = "L" if img.mode in ("L", "1", "I;16", "I", "F", "LA") else "RGB"
            return np.asarray(img.convert(mode), dtype=np.uint8)
    except OSError as exc:
        raise IntegrityError(f"{path}: unreadable image ({exc})") from None


def load_folder(root: Path) -> ImageDataset:
    """``folder:PATH``: one sub-folder per class (labelled) or images directly (unlabelled).

    Every image must have the same size and colour mode as the first one; the error names the
    first image that does not. Classes are the sub-folder names in sorted order.
    """
    if not root.is_dir():
        raise DatasetNotFound(f"image folder {root} does not exist")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if subdirs:
        classes = [d.name for d in subdirs]
        entries = [(p, c) for c, d in enumerate(subdirs) for p in sorted(d.iterdir())
                   if p.suffix.lower() in IMAGE_SUFFIXES]
    else:
        classes = None
        entries = [(p, -1) for p in sorted(root.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not entries:
        raise DatasetNotFound(
            f"image folder {root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); expected "
            "PATH/<class>/<image> or PATH/<image>"
        )
    first = _read_image(entries[0][0])
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
    return _build(f"folder:{root}", x, y, aug, classes, str(root))
