"""Datasets (download, checksum, cache, local folders) and batched J-view augmentation."""

from probssl.data.augment import PRESETS, AugmentConfig, augment, get_preset, preprocess
from probssl.data.base import ImageDataset
from probssl.data.registry import (
    DATASETS,
    check_dataset_name,
    dataset_names,
    download_dataset,
    load_dataset,
    register_dataset,
)

__all__ = [
    "DATASETS", "PRESETS", "AugmentConfig", "ImageDataset", "augment", "check_dataset_name",
    "dataset_names", "download_dataset", "get_preset", "load_dataset", "preprocess",
    "register_dataset",
]
