"""Bad user-supplied dataset files: every one is one stderr line naming the file and what is
wrong, exit status 2, no traceback, nothing written.

``CASES`` is the corpus: NAME -> (builder, argv, expected). The builder writes the bad
file(s) under ``tmp_path`` and returns the value of ``{data}`` in ``argv``; ``{out}`` is a run
directory that must not appear, ``{run}`` a run trained on good data whose files the builder
then damaged (``evaluate``/``embed`` must fail the same way and write nothing into it).
Below the corpus, hypothesis fuzzes ``.npz`` inputs: random arrays and random corruptions of
a valid file each end in exit 0 or in exit 2 with one line, never a traceback.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import pickle
import shutil
import struct
import tempfile
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from probssl.cli import main
from tests.badinput import assert_one_line_error
from tests.data.fixtures import cifar_batch, idx_bytes

RNG = np.random.default_rng(0)
X = RNG.integers(0, 256, (30, 8, 8), dtype=np.uint8)  # a valid tiny dataset
Y = np.arange(30) % 3

TRAIN = ["train", "--method", "vae", "--dataset", "{data}", "--epochs", "1",
         "--batch-size", "4", "--out", "{out}", "--no-progress"]


def train_on(dataset: str, data_dir: bool = False) -> list[str]:
    """``TRAIN`` for a named dataset whose files are in ``{data}`` (``--data-dir``)."""
    argv = [a if a != "{data}" else dataset for a in TRAIN]
    return argv + ["--data-dir", "{data}"] if data_dir else argv


NPZ = train_on("npz:{data}")
FOLDER = train_on("folder:{data}")
MNIST = train_on("mnist", data_dir=True)
CIFAR = train_on("cifar10", data_dir=True)
CELEBA = train_on("celeba", data_dir=True)
EVALUATE = ["evaluate", "{run}"]
EMBED = ["embed", "{run}", "--out", "{run}/z.npz"]


# -- builders --------------------------------------------------------------------------------


def savez(tmp: Path, name: str = "bad.npz", **arrays) -> str:
    np.savez(tmp / name, **arrays)
    return str(tmp / name)


def write(tmp: Path, name: str, data: bytes) -> str:
    (tmp / name).write_bytes(data)
    return str(tmp / name)


def good_npz_bytes(**extra) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, x=X, y=Y, **extra)
    return buf.getvalue()


def npz(**arrays):
    return lambda tmp: savez(tmp, **arrays)


def npz_bytes(transform):
    return lambda tmp: write(tmp, "bad.npz", transform(good_npz_bytes()))


def flip(data: bytes, pos: int) -> bytes:
    b = bytearray(data)
    b[pos] ^= 0xFF
    return bytes(b)


def zip_of(**members: bytes):
    def build(tmp: Path) -> str:
        with zipfile.ZipFile(tmp / "bad.npz", "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)
        return str(tmp / "bad.npz")
    return build


def npy_claiming(shape, data: bytes = X.tobytes()) -> bytes:
    """A .npy member whose header declares ``shape`` (uint8) over the bytes of ``X``."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|u1", "fortran_order": False,
                                               "shape": shape})
    return buf.getvalue() + data


def npy_renamed(tmp: Path) -> str:
    np.save(tmp / "x.npy", X)
    (tmp / "x.npy").rename(tmp / "bad.npz")
    return str(tmp / "bad.npz")


def objects_npz(tmp: Path) -> str:
    np.savez(tmp / "bad.npz", x=np.array([X[0], "a", None], dtype=object))
    return str(tmp / "bad.npz")


def png_declaring(width: int, height: int) -> bytes:
    """A ~60-byte PNG whose header claims ``width`` x ``height`` grey pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def png_bytes(shape=(8, 8), seed=0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)).save(
        buf, format="PNG")
    return buf.getvalue()


def folder(files: dict[str, bytes | None], n_good: int = 4, classes=("a", "b")):
    """A labelled image folder: ``n_good`` valid 8x8 PNGs per class, plus ``files``
    (relative path -> bytes; ``None`` makes an empty directory)."""
    def build(tmp: Path) -> str:
        root = tmp / "imgs"
        root.mkdir()
        for c in classes:
            (root / c).mkdir()
            for i in range(n_good):
                (root / c / f"{i}.png").write_bytes(png_bytes(seed=i))
        for rel, data in files.items():
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            if data is None:
                p.mkdir()
            else:
                p.write_bytes(data)
        return str(root)
    return build


def unreadable_file(root: Path) -> None:
    p = root / "a" / "locked.png"
    p.write_bytes(png_bytes())
    p.chmod(0)
    if os.access(p, os.R_OK):
        pytest.skip("running as root: a mode-000 file is still readable")


def folder_with(make):
    def build(tmp: Path) -> str:
        root = Path(folder({})(tmp))
        make(root)
        return str(root)
    return build


def mnist_dir(**override: bytes):
    """The four uncompressed MNIST IDX files (not hash-checked), some replaced."""
    def build(tmp: Path) -> str:
        files = {"train-images-idx3-ubyte": idx_bytes(RNG.integers(0, 256, (30, 28, 28))),
                 "train-labels-idx1-ubyte": idx_bytes(np.arange(30) % 10),
                 "t10k-images-idx3-ubyte": idx_bytes(RNG.integers(0, 256, (10, 28, 28))),
                 "t10k-labels-idx1-ubyte": idx_bytes(np.arange(10) % 10)}
        files.update({k.replace("_", "-"): v for k, v in override.items()})
        (tmp / "mnist").mkdir()
        for name, data in files.items():
            if data is not None:
                (tmp / "mnist" / name).write_bytes(data)
        return str(tmp / "mnist")
    return build


def idx_header(dims, magic=b"\x00\x00\x08") -> bytes:
    return magic + bytes([len(dims)]) + b"".join(int(d).to_bytes(4, "big") for d in dims)


class _Touch:
    """Unpickling this would create a file: the restricted unpickler must refuse it."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def cifar_dir(test_batch):
    """An extracted cifar-10-batches-py/ with a damaged ``test_batch`` (bytes, or a function
    of the folder returning bytes; ``None`` leaves it out)."""
    def build(tmp: Path) -> str:
        d = tmp / "cifar" / "cifar-10-batches-py"
        d.mkdir(parents=True)
        for i in range(1, 6):
            (d / f"data_batch_{i}").write_bytes(cifar_batch(3, i))
        data = test_batch(tmp) if callable(test_batch) else test_batch
        if data is not None:
            (d / "test_batch").write_bytes(data)
        return str(tmp / "cifar")
    return build


def celeba_dir(attr=None, partition=None, image: bytes | None = None, n=6):
    """CelebA's layout with tiny JPEGs; ``attr``/``partition`` replace a list file (bytes,
    or a function of the good text returning bytes); ``image`` replaces the first JPEG."""
    def build(tmp: Path) -> str:
        root = tmp / "celeba"
        (root / "img_align_celeba").mkdir(parents=True)
        names = [f"{i:06d}.jpg" for i in range(1, n + 1)]
        for f in names:
            Image.fromarray(RNG.integers(0, 256, (20, 16, 3), dtype=np.uint8)).save(
                root / "img_align_celeba" / f)
        if image is not None:
            (root / "img_align_celeba" / names[0]).write_bytes(image)
        header = ["Male" if j == 20 else f"Attr{j}" for j in range(40)]
        rows = [f"{f} " + " ".join("1" if (i + j) % 2 else "-1" for j in range(40))
                for i, f in enumerate(names)]
        good_attr = f"{n}\n" + " ".join(header) + "\n" + "\n".join(rows) + "\n"
        good_part = "".join(f"{f} {p}\n" for f, p in zip(names, [0, 0, 0, 1, 2, 2],
                                                             strict=True))
        for fname, good, repl in (("list_attr_celeba.txt", good_attr, attr),
                                  ("list_eval_partition.txt", good_part, partition)):
            data = good.encode() if repl is None else (
                repl(good) if callable(repl) else repl)
            (root / fname).write_bytes(data)
        return str(root)
    return build


def after_good_run(damage):
    """Train ``random`` on a good npz into tmp/run, then ``damage(npz_path)``."""
    def build(tmp: Path) -> str:
        data = tmp / "data.npz"
        np.savez(data, x=X, y=Y)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            assert main(["train", "--method", "random", "--dataset", f"npz:{data}",
                         "--out", str(tmp / "run"), "--no-progress"]) == 0
        damage(data)
        return str(data)
    return build


def _lines(text: str, fn) -> bytes:
    return fn(text.splitlines()).encode()


# -- the corpus ------------------------------------------------------------------------------

CASES = {
    # .npz: the archive itself
    "npz_truncated": (npz_bytes(lambda b: b[: len(b) // 2]), NPZ, "not a readable .npz"),
    "npz_empty_file": (lambda t: write(t, "bad.npz", b""), NPZ, "empty (0 bytes)"),
    "npz_bitflip_in_data": (npz_bytes(lambda b: flip(b, 200)), NPZ, "not a readable .npz"),
    "npz_bitflip_in_directory": (npz_bytes(lambda b: flip(b, b.rindex(b"PK\x01\x02") + 16)),
                                 NPZ, "not a readable .npz archive (Bad CRC-32"),
    "npz_size_field_flipped": (npz_bytes(lambda b: flip(b, b.rindex(b"PK\x01\x02") + 24)),
                               NPZ, "truncated or corrupt"),
    "npz_bitflip_in_npy_header": (npz_bytes(lambda b: b.replace(b"(30, 8, 8)", b"(90, 8, 8)")),
                                  NPZ, "not a readable .npz archive (Bad CRC-32"),
    "npz_resized_archive": (npz_bytes(lambda b: b.replace(b"(30, 8, 8)", b"(9999999999, 8)")),
                            NPZ, "not a readable .npz archive"),
    "npy_header_claims_more": (zip_of(**{"x.npy": npy_claiming((90, 8, 8))}), NPZ,
                               "'x' is truncated or corrupt (its header declares shape "
                               "(90, 8, 8)"),
    "npy_header_claims_less": (zip_of(**{"x.npy": npy_claiming((10, 8, 8))}), NPZ,
                               "truncated or corrupt"),
    "npy_header_claims_billions": (zip_of(**{"x.npy": npy_claiming((10**12, 8, 8))}), NPZ,
                                   "truncated or corrupt"),
    "npy_header_garbage": (zip_of(**{"x.npy": b"\x93NUMPY\x01\x00\x10\x00{'descr': 1, }\n"}),
                           NPZ, "not a readable .npz archive"),
    "npy_renamed_npz": (npy_renamed, NPZ, "single .npy array"),
    "text_renamed_npz": (lambda t: write(t, "bad.npz", b"x,y\n1,2\n"), NPZ,
                         "not an .npz archive"),
    "pickle_renamed_npz": (lambda t: write(t, "bad.npz", pickle.dumps({"x": X})), NPZ,
                           "not an .npz archive"),
    "gzip_renamed_npz": (lambda t: write(t, "bad.npz", gzip.compress(X.tobytes())), NPZ,
                         "not an .npz archive"),
    "zip_of_text": (zip_of(**{"x.npy": b"not an array"}), NPZ, "is not a .npy array"),
    "zip_empty": (zip_of(), NPZ, "no array named 'x'"),
    "npz_object_array": (objects_npz, NPZ, "python objects"),
    "npz_is_directory": (lambda t: (t / "d.npz").mkdir() or str(t / "d.npz"), NPZ,
                         "is a directory"),
    "npz_missing": (lambda t: str(t / "nope.npz"), NPZ, "does not exist"),
    "npz_fifo": (lambda t: os.mkfifo(t / "f.npz") or str(t / "f.npz"), NPZ,
                 "not a regular file"),
    # .npz: the images
    "x_missing": (npz(images=X), NPZ, "no array named 'x'"),
    "x_strings": (npz(x=np.full((30, 8, 8), "a")), NPZ, "unsupported dtype <U1"),
    "x_bytes": (npz(x=np.full((30, 8, 8), b"a")), NPZ, "unsupported dtype |S1"),
    "x_complex": (npz(x=X.astype(np.complex64)), NPZ, "unsupported dtype complex64"),
    "x_bool": (npz(x=X > 100), NPZ, "unsupported dtype bool"),
    "x_datetime": (npz(x=X.astype("datetime64[s]")), NPZ, "unsupported dtype datetime64"),
    "x_structured": (npz(x=np.zeros((30, 8, 8), dtype=[("a", "u1"), ("b", "f4")])), NPZ,
                     "unsupported dtype"),
    "x_1d": (npz(x=X.ravel()), NPZ, "must have shape (N,H,W)"),
    "x_2d": (npz(x=X.reshape(30, 64)), NPZ, "must have shape (N,H,W)"),
    "x_5d": (npz(x=X.reshape(30, 1, 1, 8, 8)), NPZ, "must have shape (N,H,W)"),
    "x_5_channels": (npz(x=RNG.integers(0, 256, (30, 8, 8, 5), dtype=np.uint8)), NPZ,
                     "1 or 3 channels"),
    "x_zero_sized_images": (npz(x=np.zeros((30, 0, 28), np.uint8)), NPZ, "zero-sized images"),
    "x_zero_width_rgb": (npz(x=np.zeros((30, 3, 8, 0), np.uint8)), NPZ, "zero-sized images"),
    "x_no_images": (npz(x=np.zeros((0, 8, 8), np.uint8)), NPZ, "holds no images"),
    "x_nan": (npz(x=np.where(X > 128, np.nan, 0.5).astype(np.float32)), NPZ,
              "NaN or infinite"),
    "x_all_nan": (npz(x=np.full((30, 8, 8), np.nan)), NPZ, "NaN or infinite"),
    "x_inf": (npz(x=np.full((30, 8, 8), np.inf, np.float16)), NPZ, "NaN or infinite"),
    "x_float_above_one": (npz(x=X / 100.0), NPZ, "must lie in [0, 1]"),
    "x_float_huge": (npz(x=np.full((30, 8, 8), 1e300)), NPZ, "must lie in [0, 1]"),
    "x_int_above_255": (npz(x=X.astype(np.int16) * 3), NPZ, "must lie in 0..255"),
    "x_int_negative": (npz(x=X.astype(np.int8)), NPZ, "must lie in 0..255"),
    "x_uint64_huge": (npz(x=np.full((30, 8, 8), 2**63, np.uint64)), NPZ, "must lie in 0..255"),
    # .npz: the labels
    "y_length_mismatch": (npz(x=X, y=Y[:20]), NPZ, "must have shape (30,)"),
    "y_2d": (npz(x=X, y=Y[:, None]), NPZ, "must have shape (30,)"),
    "y_scalar": (npz(x=X, y=np.int64(3)), NPZ, "must have shape (30,)"),
    "y_huge_2_62": (npz(x=X, y=np.full(30, 2**62)), NPZ, "labels must be class indices"),
    "y_uint64_2_63": (npz(x=X, y=np.full(30, 2**63, np.uint64)), NPZ, "class indices"),
    "y_negative": (npz(x=X, y=Y - 1), NPZ, "non-negative integer labels"),
    "y_float": (npz(x=X, y=Y.astype(np.float32)), NPZ, "integer labels; got dtype float32"),
    "y_float_nan": (npz(x=X, y=np.full(30, np.nan)), NPZ, "integer labels"),
    "y_bool": (npz(x=X, y=Y > 0), NPZ, "integer labels; got dtype bool"),
    "y_strings": (npz(x=X, y=Y.astype(str)), NPZ, "integer labels"),
    "y_complex": (npz(x=X, y=Y.astype(complex)), NPZ, "integer labels"),
    # .npz: splits and sizes
    "one_image": (npz(x=X[:1]), NPZ, "at least 2 images"),
    "one_labelled_image": (npz(x=X[:1], y=Y[:1]), NPZ, "at least 2 images"),
    "two_images_one_class_smaller_than_batch": (npz(x=X[:2], y=np.zeros(2, int)), NPZ,
                                                "batch_size 4 is larger"),
    "three_classes_one_image_each": (npz(x=X[:3], y=np.arange(3)), NPZ,
                                     "batch_size 4 is larger"),
    "x_test_empty": (npz(x=X, x_test=X[:0]), NPZ, "'x_test' holds no images"),
    "x_test_other_size": (npz(x=X, x_test=X[:, :4, :4]), NPZ, "differ from x"),
    "x_test_nan": (npz(x=X, x_test=np.full((5, 8, 8), np.nan)), NPZ, "'x_test' holds NaN"),
    "y_test_missing": (npz(x=X, y=Y, x_test=X), NPZ, "no 'y_test'"),
    "y_test_without_y": (npz(x=X, x_test=X, y_test=Y), NPZ, "has 'y_test' but no 'y'"),
    "y_test_without_x_test": (npz(x=X, y=Y, y_test=Y), NPZ, "has 'y_test' but no 'x_test'"),
    "y_test_huge": (npz(x=X, y=Y, x_test=X, y_test=np.full(30, 2**62)), NPZ, "class indices"),
    # image folders
    "folder_zero_byte_png": (folder({"a/z.png": b""}), FOLDER, "z.png: unreadable image"),
    "folder_truncated_png": (folder({"a/t.png": png_bytes((64, 64))[:100]}), FOLDER,
                             "t.png: unreadable image"),
    "folder_text_as_png": (folder({"b/t.png": b"hello\n"}), FOLDER, "t.png: unreadable image"),
    "folder_jpeg_garbage": (folder({"b/j.jpg": b"\xff\xd8\xff\xe0" + b"\x00" * 50}), FOLDER,
                            "j.jpg: unreadable image"),
    "folder_zero_sized_png": (folder({"a/zero.png": png_declaring(0, 8)}), FOLDER,
                              "zero.png: unreadable image"),
    "folder_zero_sized_pgm": (folder({"a/zero.pgm": b"P5\n0 8\n255\n"}), FOLDER, "zero.pgm"),
    "folder_bomb_error": (folder({"a/bomb.png": png_declaring(100_000, 100_000)}), FOLDER,
                          "decompression bomb"),
    "folder_bomb_warning": (folder({"a/bomb.png": png_declaring(10_000, 10_000)}), FOLDER,
                            "decompression bomb"),
    "folder_over_pixel_limit": (folder({"a/big.png": png_declaring(8200, 8200)}), FOLDER,
                                "declares 8200x8200 pixels"),
    "folder_mixed_sizes": (folder({"b/odd.png": png_bytes((9, 8))}), FOLDER,
                           "odd.png: image of shape (9, 8) differs"),
    "folder_mixed_gray_rgb": (folder({"b/rgb.png": png_bytes((8, 8, 3))}), FOLDER,
                              "rgb.png: image of shape (8, 8, 3) differs"),
    "folder_empty": (lambda t: (t / "e").mkdir() or str(t / "e"), FOLDER, "holds no images"),
    "folder_only_text_files": (folder({"notes.txt": b"x"}, classes=()), FOLDER,
                               "holds no images"),
    "folder_empty_class": (folder({"c/readme.txt": b"x"}), FOLDER,
                           "class folder 'c' holds no images"),
    "folder_directory_named_png": (folder({"a/dir.png": None}), FOLDER,
                                   "dir.png is a directory"),
    "folder_dangling_symlink": (
        folder_with(lambda r: (r / "a" / "gone.png").symlink_to(r / "nowhere.png")),
        FOLDER, "gone.png does not exist"),
    "folder_unreadable_file": (folder_with(unreadable_file), FOLDER,
                               "locked.png: unreadable image (Permission denied)"),
    "folder_fifo_png": (folder_with(lambda r: os.mkfifo(r / "b" / "pipe.png")), FOLDER,
                        "pipe.png is not a regular file"),
    "folder_is_a_file": (lambda t: write(t, "f.png", png_bytes()), FOLDER,
                         "is not a directory"),
    "folder_missing": (lambda t: str(t / "nowhere"), FOLDER, "does not exist"),
    "folder_single_image": (folder({}, n_good=1, classes=("a",)), FOLDER, "at least 2 images"),
    # MNIST-format IDX files
    "idx_header_claims_billions": (
        mnist_dir(train_images_idx3_ubyte=idx_header([2_000_000_000, 28, 28]) + b"\0" * 784),
        MNIST, "IDX header says [2000000000, 28, 28]"),
    "idx_gzip_header_claims_billions": (
        mnist_dir(train_images_idx3_ubyte=None, **{
            "train_images_idx3_ubyte.gz": gzip.compress(idx_header([4_000_000_000, 28, 28]))}),
        MNIST, "sha256"),  # the .gz of a named dataset is hash-checked first
    "idx_truncated": (mnist_dir(train_images_idx3_ubyte=idx_bytes(
        np.zeros((30, 28, 28)))[:-100]), MNIST, "truncated or corrupt"),
    "idx_trailing_bytes": (mnist_dir(train_labels_idx1_ubyte=idx_bytes(np.arange(30) % 10)
                                     + b"\0"), MNIST, "truncated or corrupt"),
    "idx_header_only": (mnist_dir(train_labels_idx1_ubyte=b"\x00\x00\x08\x01\x00"), MNIST,
                        "truncated IDX file"),
    "idx_empty_file": (mnist_dir(t10k_labels_idx1_ubyte=b""), MNIST, "truncated IDX file"),
    "idx_wrong_magic": (mnist_dir(train_images_idx3_ubyte=b"\x00\x00\x0d\x03" + b"\0" * 12),
                        MNIST, "not a uint8 IDX file"),
    "idx_wrong_ndim": (mnist_dir(train_images_idx3_ubyte=idx_bytes(np.zeros((30, 784)))),
                       MNIST, "not a uint8 IDX file with 3 dimensions"),
    "idx_zero_images": (mnist_dir(t10k_images_idx3_ubyte=idx_header([0, 28, 28])), MNIST,
                        "empty array"),
    "idx_count_mismatch": (mnist_dir(train_labels_idx1_ubyte=idx_bytes(np.arange(20) % 10)),
                           MNIST, "differ in count"),
    "idx_label_out_of_range": (mnist_dir(t10k_labels_idx1_ubyte=idx_bytes(np.full(10, 200))),
                               MNIST, "labels are 0..9"),
    "idx_file_missing": (mnist_dir(train_images_idx3_ubyte=None), MNIST,
                         "train-images-idx3-ubyte.gz not found"),
    # CIFAR-10 pickles
    "cifar_not_a_pickle": (cifar_dir(b"hello world"), CIFAR, "not a readable pickle"),
    "cifar_truncated_pickle": (cifar_dir(cifar_batch(2, 9)[:500]), CIFAR,
                               "not a readable pickle"),
    "cifar_empty_file": (cifar_dir(b""), CIFAR, "not a readable pickle"),
    "cifar_list_not_dict": (cifar_dir(pickle.dumps([1, 2, 3])), CIFAR, "expected a dict"),
    "cifar_no_labels": (cifar_dir(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)})),
                        CIFAR, "expected a dict with b'data' and b'labels'"),
    "cifar_wrong_shape": (cifar_dir(pickle.dumps({b"data": np.zeros((2, 100), np.uint8),
                                                  b"labels": [0, 1]})), CIFAR,
                          "expected (N, 3072)"),
    "cifar_float_data": (cifar_dir(pickle.dumps({b"data": np.zeros((2, 3072)),
                                                 b"labels": [0, 1]})), CIFAR,
                         "expected (N, 3072) integers"),
    "cifar_pixels_out_of_range": (cifar_dir(pickle.dumps({
        b"data": np.full((2, 3072), 999, np.int64), b"labels": [0, 1]})), CIFAR,
        "pixel values outside 0..255"),
    "cifar_empty_batch": (cifar_dir(pickle.dumps({b"data": np.zeros((0, 3072), np.uint8),
                                                  b"labels": []})), CIFAR, "N >= 1"),
    "cifar_labels_out_of_range": (cifar_dir(pickle.dumps({
        b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]})), CIFAR,
        "labels outside 0..9"),
    "cifar_string_labels": (cifar_dir(pickle.dumps({
        b"data": np.zeros((2, 3072), np.uint8), b"labels": ["a", "b"]})), CIFAR,
        "labels outside 0..9"),
    "cifar_code_in_pickle": (cifar_dir(lambda t: pickle.dumps(_Touch(t / "pwned"))), CIFAR,
                             "never does"),
    "cifar_missing_batch": (cifar_dir(None), CIFAR, "missing CIFAR-10 batches ['test_batch']"),
    # CelebA list files and images
    "celeba_attr_utf16": (celeba_dir(attr=lambda g: g.encode("utf-16")), CELEBA,
                          "is binary, not a text file"),
    "celeba_attr_latin1": (celeba_dir(attr=lambda g: g.replace("Attr3", "Attré").encode(
        "latin-1")), CELEBA, "not UTF-8"),
    "celeba_attr_binary": (celeba_dir(attr=b"6\n\x00\x01\x02"), CELEBA, "binary"),
    "celeba_attr_count_not_int": (celeba_dir(attr=lambda g: ("six" + g[1:]).encode()), CELEBA,
                                  "line 1"),
    "celeba_attr_count_negative": (celeba_dir(attr=lambda g: ("-6" + g[1:]).encode()), CELEBA,
                                   "count must be >= 1"),
    "celeba_attr_count_too_big": (celeba_dir(attr=lambda g: ("60" + g[1:]).encode()), CELEBA,
                                  "expected 60 rows"),
    "celeba_attr_short_row": (celeba_dir(attr=lambda g: _lines(
        g, lambda ls: "\n".join(ls[:3] + [ls[3].rsplit(" ", 1)[0]] + ls[4:]))), CELEBA,
        "line 4: expected a file name and 40 attributes, got 40 fields"),
    "celeba_attr_bad_value": (celeba_dir(attr=lambda g: g.replace(" -1", " maybe", 1).encode()),
                              CELEBA, "must be -1, 0 or 1"),
    "celeba_attr_value_7": (celeba_dir(attr=lambda g: g.replace(" -1", " 7", 1).encode()),
                            CELEBA, "must be -1, 0 or 1"),
    "celeba_attr_empty": (celeba_dir(attr=b""), CELEBA, "malformed attribute file"),
    "celeba_attr_path_traversal": (celeba_dir(attr=lambda g: g.replace(
        "000001.jpg", "../../x.jpg").encode(), partition=lambda g: g.replace(
        "000001.jpg", "../../x.jpg").encode()), CELEBA, "not an image file name"),
    "celeba_attr_no_male": (celeba_dir(attr=lambda g: g.replace("Male", "Female").encode()),
                            CELEBA, "no 'Male' attribute column"),
    "celeba_partition_not_utf8": (celeba_dir(partition=b"\xff\xfe0 0\n"), CELEBA, "not UTF-8"),
    "celeba_partition_bad_line": (celeba_dir(partition=lambda g: g.replace(" 2\n", " two\n", 1)
                                             .encode()), CELEBA, "malformed partition"),
    "celeba_partition_no_test": (celeba_dir(partition=lambda g: g.replace(" 2\n", " 1\n")
                                            .encode()), CELEBA, "no image in partition 2"),
    "celeba_corrupt_jpeg": (celeba_dir(image=b"\xff\xd8\xff" + b"\x00" * 20), CELEBA,
                            "000001.jpg: unreadable image"),
    "celeba_bomb_jpeg": (celeba_dir(image=png_declaring(100_000, 100_000)), CELEBA,
                         "decompression bomb"),
    # the same data checks hold when a saved run re-reads its dataset
    "evaluate_npz_truncated": (after_good_run(lambda p: p.write_bytes(p.read_bytes()[:300])),
                               EVALUATE, "not a readable .npz"),
    "evaluate_npz_float_labels": (after_good_run(lambda p: np.savez(p, x=X, y=Y * 0.5)),
                                  EVALUATE, "integer labels"),
    "evaluate_npz_nan_pixels": (after_good_run(lambda p: np.savez(
        p, x=np.full((30, 8, 8), np.nan), y=Y)), EVALUATE, "NaN or infinite"),
    "embed_npz_now_npy": (after_good_run(lambda p: np.save(p.with_suffix(".npy"), X)
                                         or p.with_suffix(".npy").replace(p)), EMBED,
                          "single .npy array"),
}


# the trainer's batch-size check (not the data readers) speaks about these, not the file
NOT_ABOUT_THE_FILE = {"two_images_one_class_smaller_than_batch",
                      "three_classes_one_image_each"}


def _argv(template: list[str], data: str, tmp: Path) -> list[str]:
    return [a.replace("{data}", data).replace("{out}", str(tmp / "r"))
            .replace("{run}", str(tmp / "run")) for a in template]


def _tree(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")} if path.is_dir() else set()


def test_the_corpus_is_large():
    assert len(CASES) >= 40


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_data_is_one_line(name, tmp_path, capsys):
    build, template, expected = CASES[name]
    data = build(tmp_path)
    run_before = _tree(tmp_path / "run")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # a warning would be a second line on stderr
        line = assert_one_line_error(_argv(template, data, tmp_path), expected, capsys)
    assert not caught, [f"{w.filename}: {w.message}" for w in caught]
    # the line names the file (or folder) it is about
    if name not in NOT_ABOUT_THE_FILE:
        assert Path(data).name in line or Path(data).parent.name in line, line
    assert not (tmp_path / "r").exists()  # no run directory was started
    assert _tree(tmp_path / "run") == run_before  # evaluate/embed wrote nothing
    assert not (tmp_path / "pwned").exists()  # no code ran from a pickle


def test_valid_data_still_trains(tmp_path, capsys):
    """The checks do not refuse good data: npz (uint8, float, labelled, pre-split, tiny),
    a labelled image folder and the IDX files all train."""
    np.savez(tmp_path / "u8.npz", x=X, y=Y)
    np.savez(tmp_path / "f.npz", x=(X / 255.0).astype(np.float16))
    np.savez(tmp_path / "nhwc.npz", x=RNG.integers(0, 256, (30, 6, 6, 3)).astype(np.int64))
    np.savez(tmp_path / "split.npz", x=X[:20], y=Y[:20], x_test=X[20:], y_test=Y[20:])
    np.savez_compressed(tmp_path / "small.npz", x=X[:6], y=np.array([0, 0, 0, 1, 1, 9]))
    specs = [f"npz:{tmp_path / n}" for n in ("u8.npz", "f.npz", "nhwc.npz", "split.npz",
                                             "small.npz")]
    specs.append("folder:" + folder({})(tmp_path))
    for i, spec in enumerate(specs):
        out = tmp_path / f"r{i}"
        argv = [a.replace("{data}", spec).replace("{out}", str(out))
                for a in train_on("{data}")]
        assert main(argv) == 0, (spec, capsys.readouterr().err)
        assert (out / "config.json").is_file()
    mnist = mnist_dir()(tmp_path)
    assert main(_argv(MNIST, mnist, tmp_path)) == 0, capsys.readouterr().err
    run = tmp_path / "r0"
    assert main(["evaluate", str(run), "--probe-epochs", "1", "--gmm-n-init", "0",
                 "--fid-features", "none", "--no-mlp-probe"]) == 0, capsys.readouterr().err


def test_a_tiny_labelled_split_keeps_both_parts():
    from probssl.data.local import split_indices

    for labels in ([0, 0], [0, 1], [0, 1, 2], [0, 0, 1], [5, 5, 5, 5]):
        tr, te = split_indices(len(labels), np.array(labels), 0, 0.2)
        assert len(tr) >= 1 and len(te) >= 1 and len(tr) + len(te) == len(labels)
    digits = np.arange(1797) % 10  # unchanged where every class already has a test share
    tr, te = split_indices(1797, digits, 0, 0.2)
    assert len(te) == sum(round(np.sum(digits == c) * 0.2) for c in range(10))


def test_sizes_beyond_memory_are_refused_before_loading(tmp_path, capsys, monkeypatch):
    """A header's size is checked against this machine's memory before allocation."""
    import probssl.userio

    monkeypatch.setattr(probssl.userio, "memory_bytes", lambda: 1000)
    np.savez(tmp_path / "d.npz", x=X)
    assert_one_line_error(_argv(NPZ, str(tmp_path / "d.npz"), tmp_path),
                          "more than this machine's", capsys)
    mnist = mnist_dir()(tmp_path)
    assert_one_line_error(_argv(MNIST, mnist, tmp_path), "more than this machine's", capsys)
    assert not (tmp_path / "r").exists()


def test_gzip_idx_claiming_billions_is_refused_from_its_header(tmp_path):
    """Read directly (no hash check): the header's size is refused before decompressing."""
    from probssl.data.idx import read_idx
    from probssl.errors import IntegrityError

    p = tmp_path / "x-idx3-ubyte.gz"
    p.write_bytes(gzip.compress(idx_header([4_000_000_000, 28, 28]) + b"\0" * 1000))
    with pytest.raises(IntegrityError, match=r"x-idx3-ubyte.gz: IDX header says .* at most"):
        read_idx(p, 3)
    p.write_bytes(gzip.compress(idx_bytes(np.zeros((5, 28, 28))))[:-12])
    with pytest.raises(IntegrityError, match="x-idx3-ubyte.gz"):
        read_idx(p, 3)


def test_small_colour_images_with_a_last_batch_of_one(tmp_path, capsys):
    # the ResNet's last stage is 1x1 for images <= 8 px: batch norm needs two images, so the
    # trainer merges a final batch of one into the one before
    np.savez(tmp_path / "c.npz", x=RNG.integers(0, 256, (6, 3, 6, 6), dtype=np.uint8))
    code = main(["train", "--method", "vae", "--dataset", f"npz:{tmp_path / 'c.npz'}",
                 "--epochs", "1", "--batch-size", "4", "--out", str(tmp_path / "r"),
                 "--no-progress"])  # 5 train images: batches of 4 and 1
    assert code == 0


# -- fuzzing ---------------------------------------------------------------------------------

FUZZ_DTYPES = [np.uint8, np.int8, np.int16, np.int64, np.uint64, np.float16, np.float32,
               np.float64, np.bool_, np.complex64, np.dtype("<U2"), np.dtype("M8[s]")]


def _run_fuzz(tmp: Path, name: str = "f.npz") -> None:
    """Train on ``tmp/name``; exit 0, or exit 2 with one line and nothing written."""
    out = tmp / "r"
    argv = ["train", "--method", "vae", "--dataset", f"npz:{tmp / name}", "--epochs", "1",
            "--batch-size", "4", "--out", str(out), "--no-progress"]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), \
            warnings.catch_warnings(record=True):
        code = main(argv)
    text = err.getvalue()
    assert "Traceback" not in text, text
    assert code in (0, 2), (code, text)
    if code == 2:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("probssl: error:"), lines
        # the data readers name the file; the trainer's batch-size check speaks of the batch
        assert name in lines[0] or "batch_size 4 is larger" in lines[0], lines[0]
        assert not out.exists()
    else:
        assert (out / "config.json").is_file()


@st.composite
def fuzz_arrays(draw):
    n = draw(st.integers(0, 24))
    # colour images of 9+ px: see test_small_colour_images_with_a_last_batch_of_one
    shape = draw(st.sampled_from([(n, 8, 8), (n, 0, 8), (n, 3, 9, 9), (n, 9, 9, 3),
                                  (n, 5, 5, 2), (n,), (n, 4, 4, 4, 1), (n, 1, 1)]))
    dtype = draw(st.sampled_from(FUZZ_DTYPES))
    x = draw(hnp.arrays(dtype, shape))
    arrays = {"x": x}
    if draw(st.booleans()):
        ylen = draw(st.sampled_from([n, max(n - 1, 0), n + 1]))
        ydtype = draw(st.sampled_from([np.int64, np.uint64, np.int8, np.float32, np.bool_]))
        arrays["y"] = draw(hnp.arrays(ydtype, (ylen,)))
    return arrays


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(arrays=fuzz_arrays())
def test_fuzz_npz_arrays(arrays):
    tmp = Path(tempfile.mkdtemp())
    try:
        np.savez(tmp / "f.npz", **arrays)
        _run_fuzz(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


GOOD = good_npz_bytes()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.integers(0, 255)),
                      min_size=1, max_size=4),
       cut=st.one_of(st.none(), st.integers(0, len(GOOD))))
def test_fuzz_npz_corruptions(edits, cut):
    data = bytearray(GOOD)
    for pos, value in edits:
        data[pos] = value
    if cut is not None:
        data = data[:cut]
    tmp = Path(tempfile.mkdtemp())
    try:
        (tmp / "f.npz").write_bytes(bytes(data))
        _run_fuzz(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
