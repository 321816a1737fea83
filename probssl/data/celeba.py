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

from probssl import userio
from probssl.data.base import ImageDataset
from probssl.errors import DatasetNotFound, IntegrityError, UserError

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


def _check_name(name: str, path: Path, lineno: int) -> str:
    """An image file name of a list file: a plain name inside ``img_align_celeba/``."""
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise IntegrityError(f"{path} line {lineno}: {name!r} is not an image file name")
    return name


def read_attributes(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """Parse ``list_attr_celeba.txt``: (file names, attribute names, (N, A) {0,1}).

    Line 1 is the image count N >= 1, line 2 the A attribute names, then N rows of a file
    name and A values each -1, 0 or 1. Every bad row is named by its line number.
    """
    lines = userio.read_text(path, "CelebA attribute file").splitlines()
    if len(lines) < 2:
        raise IntegrityError(f"{path}: malformed attribute file (needs a count line and a "
                             "header line)")
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise IntegrityError(f"{path} line 1: malformed attribute file (expected the image "
                             f"count, got {lines[0][:40]!r})") from None
    if count < 1:
        raise IntegrityError(f"{path} line 1: image count must be >= 1; got {count}")
    names = lines[1].split()
    if not names or len(set(names)) != len(names):
        raise IntegrityError(f"{path} line 2: expected distinct attribute names")
    rows = lines[2:2 + count]
    if len(rows) < count:
        raise IntegrityError(f"{path}: expected {count} rows of {len(names)} attributes, got "
                             f"{len(rows)} rows")
    files: list[str] = []
    values = np.empty((count, len(names)), dtype=np.int64)
    for i, line in enumerate(rows):
        fields = line.split()
        if len(fields) != len(names) + 1:
            raise IntegrityError(f"{path} line {i + 3}: expected a file name and "
                                 f"{len(names)} attributes, got {len(fields)} fields")
        files.append(_check_name(fields[0], path, i + 3))
        try:
            row = [int(v) for v in fields[1:]]
        except ValueError:
            raise IntegrityError(f"{path} line {i + 3}: attribute values must be -1, 0 or 1"
                                 ) from None
        if any(v not in (-1, 0, 1) for v in row):
            raise IntegrityError(f"{path} line {i + 3}: attribute values must be -1, 0 or 1")
        values[i] = row
    if len(set(files)) != len(files):
        raise IntegrityError(f"{path}: an image is listed twice")
    return files, names, (values > 0).astype(np.int64)


def read_partition(path: Path) -> dict[str, int]:
    """Parse ``list_eval_partition.txt``: one ``FILE PART`` per line, PART in {0, 1, 2}."""
    out = {}
    text = userio.read_text(path, "CelebA partition file")
    for i, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise IntegrityError(f"{path} line {i}: malformed partition file (expected "
                                 f"'FILE 0|1|2', got {line[:60]!r})")
        out[_check_name(fields[0], path, i)] = int(fields[1])
    return out


def load_image(path: Path) -> np.ndarray:
    """Centre crop to CROP x CROP (or the shorter side) and resize to SIZE x SIZE, HWC uint8."""
    try:
        img = userio.read_image(path, "CelebA image", mode="RGB")
    except UserError as exc:
        raise IntegrityError(str(exc)) from None
    w, h = img.size
    side = min(CROP, w, h)
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side))
    img = img.resize((SIZE, SIZE), Image.Resampling.BILINEAR, reducing_gap=None)
    return np.asarray(img, dtype=np.uint8)


def _cached_pixels(cache: Path | None, n: int) -> np.ndarray | None:
    """The decoded pixels from the cache, or None when absent or not what it should be."""
    if cache is None or not cache.is_file():
        return None
    try:
        pixels = np.load(cache, mmap_mode="r", allow_pickle=False)
    except Exception:  # noqa: BLE001 — a damaged cache is decoded again
        return None
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 \
            or pixels.shape != (n, SIZE, SIZE, 3):
        return None
    return pixels


def load_celeba(folder: Path, cache_dir: Path | None = None) -> ImageDataset:
    """CelebA from ``folder`` in the official layout (module docstring): train = partition 0,
    test = partition 2, images uint8 (N, 3, 64, 64), label ``Male``, the 40 attributes kept.
    The decoded pixels are cached under ``cache_dir/celeba`` when it is given. A missing or
    inconsistent file is one error naming it."""
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
    male = names.index("Male") if "Male" in names else None
    if male is None:
        raise IntegrityError(f"{attr_file}: no 'Male' attribute column")
    part = np.array([partition[f] for f in files])
    for k, split in ((0, "train"), (2, "test")):
        if not (part == k).any():
            raise IntegrityError(f"{part_file}: no image in partition {k} ({split})")
    cache = None
    if cache_dir is not None:
        cache = cache_dir / "celeba" / f"celeba{SIZE}-crop{CROP}-{len(files)}.npy"
    pixels = _cached_pixels(cache, len(files))
    if pixels is None:
        userio.check_alloc(len(files) * SIZE * SIZE * 3, f"celeba {folder}")
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
