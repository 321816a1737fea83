"""CelebA from a local folder in the official layout.

Expected under the folder: ``img_align_celeba/`` (the 202,599 aligned JPEGs),
``list_attr_celeba.txt`` and ``list_eval_partition.txt``. Each image is centre-cropped to
``CROP`` x ``CROP`` pixels (the face region of the 178x218 aligned images) and resized to
64x64 with antialiasing. Shapes: images uint8 (N, 3, 64, 64); labels int64 (N,) = the
``Male`` attribute (gender, the paper's content label); attributes int64 (N, 40) in {0, 1}.
Train = partition 0, test = partition 2; partition 1 (validation) is not used. The decoded
pixels are cached as one ``.npy`` in the cache directory, so decoding (minutes) happens once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from probssl.data.base import ImageDataset
from probssl.errors import DatasetNotFound, IntegrityError

CROP = 148
SIZE = 64
# The header of list_attr_celeba.txt, in its order.
ATTRIBUTE_NAMES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair",
    "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair",
    "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes",
    "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks",
    "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)
LAYOUT = ("img_align_celeba/", "list_attr_celeba.txt", "list_eval_partition.txt")


def _layout_error(folder: Path, what: str) -> DatasetNotFound:
    return DatasetNotFound(
        f"celeba: {what} in {folder}; CelebA cannot be downloaded automatically. Get it from "
        "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html and pass --data-dir to a folder "
        "holding " + ", ".join(LAYOUT)
    )


def read_attributes(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """Parse ``list_attr_celeba.txt``: (file names, attribute names, (N, 40) {0,1})."""
    lines = path.read_text().splitlines()
    try:
        count = int(lines[0].strip())
        names = lines[1].split()
        rows = [ln.split() for ln in lines[2:2 + count]]
        files = [r[0] for r in rows]
        values = np.array([[int(v) for v in r[1:]] for r in rows], dtype=np.int64)
    except (IndexError, ValueError) as exc:
        raise IntegrityError(f"{path}: malformed attribute file ({exc})") from None
    if values.shape != (count, len(names)) or len(files) != count:
        raise IntegrityError(f"{path}: expected {count} rows of {len(names)} attributes, got "
                             f"{values.shape}")
    return files, names, (values > 0).astype(np.int64)


def read_partition(path: Path) -> dict[str, int]:
    try:
        return {f: int(p) for f, p in (ln.split() for ln in path.read_text().splitlines() if ln)}
    except ValueError as exc:
        raise IntegrityError(f"{path}: malformed partition file ({exc})") from None


def load_image(path: Path) -> np.ndarray:
    """Centre crop to CROP x CROP (or the shorter side) and resize to SIZE x SIZE, HWC uint8."""
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            w, h = img.size
            side = min(CROP, w, h)
            left, top = (w - side) // 2, (h - side) // 2
            img = img.crop((left, top, left + side, top + side))
            img = img.resize((SIZE, SIZE), Image.Resampling.BILINEAR, reducing_gap=None)
            return np.asarray(img, dtype=np.uint8)
    except OSError as exc:
        raise IntegrityError(f"{path}: unreadable image ({exc})") from None


def load_celeba(folder: Path, cache_dir: Path | None = None) -> ImageDataset:
    images = folder / "img_align_celeba"
    attr_file = folder / "list_attr_celeba.txt"
    part_file = folder / "list_eval_partition.txt"
    if not folder.is_dir():
        raise _layout_error(folder, "folder does not exist")
    for p in (images, attr_file, part_file):
        if not p.exists():
            raise _layout_error(folder, f"{p.name} is missing")
    files, names, attrs = read_attributes(attr_file)
    partition = read_partition(part_file)
    missing = [f for f in files if f not in partition]
    if missing:
        raise IntegrityError(f"{part_file}: no partition for {len(missing)} images, "
                             f"e.g. {missing[0]}")
    cache = None
    if cache_dir is not None:
        cache = cache_dir / "celeba" / f"celeba{SIZE}-crop{CROP}-{len(files)}.npy"
    if cache is not None and cache.is_file():
        pixels = np.load(cache, mmap_mode="r")
    else:
        pixels = np.empty((len(files), SIZE, SIZE, 3), dtype=np.uint8)
        for i, f in enumerate(tqdm(files, desc="decoding CelebA", unit="img", disable=None)):
            if not (images / f).is_file():
                raise IntegrityError(f"{images / f}: listed in {attr_file.name} but missing")
            pixels[i] = load_image(images / f)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(cache.name + ".part.npy")
            np.save(tmp, pixels)
            tmp.replace(cache)
    part = np.array([partition[f] for f in files])
    male = names.index("Male") if "Male" in names else None
    if male is None:
        raise IntegrityError(f"{attr_file}: no 'Male' attribute column")

    def take(mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(np.ascontiguousarray(pixels[mask])).permute(0, 3, 1, 2).contiguous()
        a = torch.from_numpy(attrs[mask])
        return x, a[:, male].clone(), a

    x_tr, y_tr, a_tr = take(part == 0)
    x_te, y_te, a_te = take(part == 2)
    return ImageDataset(
        name="celeba", x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te, num_classes=2,
        augmentation="celeba", class_names=["female", "male"], attribute_names=names,
        attributes={"train": a_tr, "test": a_te}, source=str(folder),
    )
