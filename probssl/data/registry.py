"""Datasets by name.

Built-in names: ``mnist``, ``fashion-mnist``, ``cifar10`` (downloadable), ``celeba`` (local
folder), ``digits`` (bundled with scikit-learn), ``mnist-test`` (the real MNIST test set,
split 8,000/2,000). User data: ``folder:PATH`` and ``npz:FILE``. More names: decorate a
loader with :func:`register_dataset` (in a plugin module, see :mod:`probssl.registry`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from probssl.data import celeba, cifar, idx, local, shapes
from probssl.data.augment import PRESETS as AUGMENTATIONS
from probssl.data.base import ImageDataset
from probssl.data.download import default_cache_dir
from probssl.errors import UserError
from probssl.registry import Registry


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    image_shape: tuple[int, int, int]
    num_classes: int | None
    augmentation: str
    architecture: str  # default network family: "mlp" or "resnet"
    latent_dim: int  # the paper's latent size for this data
    how_to_get: str
    load: Callable[[Path | None, Path], ImageDataset]
    download: Callable[[Path], Path] | None = None


def _idx_loader(name: str):
    def load(data_dir: Path | None, cache: Path) -> ImageDataset:
        return idx.load_idx_dataset(name, data_dir if data_dir is not None else cache / name)
    return load


DATASETS: Registry[DatasetInfo] = Registry("dataset")


def register_dataset(name: str, *, image_shape: tuple[int, int, int], num_classes: int | None,
                     augmentation: str, architecture: str = "mlp", latent_dim: int = 10,
                     how_to_get: str = "", download: Callable[[Path], Path] | None = None,
                     replace: bool = False) -> Callable:
    """Decorate ``load(data_dir, cache_dir) -> ImageDataset`` to make it the dataset ``name``
    (``probssl train --dataset name``): its image shape (C, H, W), number of classes (None if
    unlabelled), augmentation preset (one of :data:`probssl.data.augment.PRESETS`), default
    network family and latent size, and how a user gets the files (``download(cache) ->
    folder`` if probssl can fetch them)."""
    if augmentation not in AUGMENTATIONS:
        raise ValueError(f"dataset {name!r}: unknown augmentation preset {augmentation!r}; "
                         f"choose from {', '.join(AUGMENTATIONS)}")

    def wrap(load: Callable[[Path | None, Path], ImageDataset]):
        info = DatasetInfo(name, tuple(image_shape), num_classes, augmentation,  # type: ignore
                           architecture, latent_dim, how_to_get, load, download)
        DATASETS.register(name, info, replace=replace)
        return load
    return wrap


_BUILT_IN = {
    "mnist": DatasetInfo(
        "mnist", (1, 28, 28), 10, "mnist", "mlp", 10, "probssl datasets download mnist",
        _idx_loader("mnist"), lambda cache: idx.download_idx("mnist", cache)),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist", (1, 28, 28), 10, "fashion-mnist", "mlp", 10,
        "probssl datasets download fashion-mnist", _idx_loader("fashion-mnist"),
        lambda cache: idx.download_idx("fashion-mnist", cache)),
    "cifar10": DatasetInfo(
        "cifar10", (3, 32, 32), 10, "cifar10", "resnet", 64, "probssl datasets download cifar10",
        lambda d, cache: cifar.load_cifar10(d if d is not None else cache / "cifar10"),
        cifar.download_cifar10),
    "celeba": DatasetInfo(
        "celeba", (3, 64, 64), 2, "celeba", "resnet", 64,
        "manual: --data-dir FOLDER with " + ", ".join(celeba.LAYOUT),
        lambda d, cache: celeba.load_celeba(d if d is not None else cache / "celeba", cache)),
    "digits": DatasetInfo(
        "digits", (1, 8, 8), 10, "digits", "mlp", 10, "bundled with scikit-learn",
        lambda d, cache: local.load_digits_dataset()),
    "shapes": DatasetInfo(
        "shapes", (3, 32, 32), 4, "shapes", "mlp", 10,
        "generated: 4 shapes; position, scale, rotation, colour, brightness recorded",
        lambda d, cache: shapes.load_shapes()),
    "shapes-small": DatasetInfo(
        "shapes-small", (3, 32, 32), 4, "shapes", "mlp", 10,
        "generated: the shapes data with 2,000 / 500 images (quick checks)",
        lambda d, cache: shapes.load_shapes(2_000, 500, name="shapes-small")),
    "mnist-test": DatasetInfo(
        "mnist-test", (1, 28, 28), 10, "mnist", "mlp", 10,
        "../shared/data/mnist-t10k, $PROBSSL_MNIST_T10K, --data-dir, or the mnist download",
        lambda d, cache: idx.load_mnist_test(d, cache)),
}
for _info in _BUILT_IN.values():
    DATASETS.register(_info.name, _info)


def dataset_names() -> list[str]:
    """Every registered dataset name (built-in, then plugins'), in registration order;
    ``folder:PATH`` and ``npz:FILE`` are accepted as well but not listed."""
    return list(DATASETS)


def check_dataset_name(name: str) -> None:
    """Raise a one-line UserError unless ``name`` is a known dataset or a user-data spec."""
    if name.startswith(("folder:", "npz:")):
        if not name.split(":", 1)[1]:
            raise UserError(f"dataset {name!r} needs a path after the colon")
        return
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}, "
                        "folder:PATH or npz:FILE")


def load_dataset(name: str, data_dir: str | Path | None = None,
                 cache_dir: str | Path | None = None, download: bool = False) -> ImageDataset:
    """Load a dataset by name (see module docstring).

    ``data_dir`` points at files already on disk; otherwise the cache directory
    (``$PROBSSL_DATA`` or ``~/.cache/probssl``) is used, downloading first when ``download``.
    """
    check_dataset_name(name)
    if name.startswith("folder:"):
        return local.load_folder(Path(name[7:]).expanduser())
    if name.startswith("npz:"):
        return local.load_npz(Path(name[4:]).expanduser())
    info = DATASETS[name]
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    data_dir = Path(data_dir).expanduser() if data_dir else None
    if download and data_dir is None and info.download is not None:
        info.download(cache)
    return info.load(data_dir, cache)


def download_dataset(name: str, cache_dir: str | Path | None = None) -> Path:
    """Download dataset ``name`` into ``cache_dir`` (default ``$PROBSSL_DATA`` or
    ``~/.cache/probssl``) and return the folder holding its files. A dataset probssl cannot
    fetch (CelebA, user data) is a :class:`UserError` saying how to get it."""
    check_dataset_name(name)
    info = DATASETS.get(name, None)
    if info is None or info.download is None:
        how = info.how_to_get if info else "it is read from your own files"
        raise UserError(f"{name} cannot be downloaded by probssl: {how}")
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    return info.download(cache)
