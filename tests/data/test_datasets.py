"""Loaders for every dataset kind, on real data where we have it and real formats otherwise."""

from __future__ import annotations

import gzip
import hashlib
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from probssl.data import DATASETS, load_dataset
from probssl.data.celeba import load_celeba
from probssl.data.cifar import load_cifar10
from probssl.data.idx import T10K_DECOMPRESSED_SHA256, load_mnist_test, read_idx
from probssl.errors import DatasetNotFound, IntegrityError, UserError
from tests.data.fixtures import cifar_batch, idx_bytes


def test_digits_shapes_and_deterministic_split():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert a.x_train.dtype == torch.uint8 and a.x_train.shape[1:] == (1, 8, 8)
    assert len(a.x_train) + len(a.x_test) == 1797
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert int(a.x_train.max()) == 255
    # stratified: every class in both splits
    assert set(a.y_test.tolist()) == set(range(10))


def test_digits_are_scikit_learns_without_importing_it(monkeypatch):
    import importlib.util

    from sklearn.datasets import load_digits

    from probssl.data import local

    bunch = load_digits()
    images, target = local._sklearn_digits()  # read from the file scikit-learn ships
    assert np.array_equal(images, bunch.images) and np.array_equal(target, bunch.target)
    # where the file is not found, scikit-learn's own loader gives the same arrays
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    images, target = local._sklearn_digits()
    assert np.array_equal(images, bunch.images) and np.array_equal(target, bunch.target)


def test_mnist_test_is_the_real_t10k_split_8000_2000(t10k_dir):
    data = load_dataset("mnist-test")
    assert data.x_train.shape == (8000, 1, 28, 28) and data.x_test.shape == (2000, 1, 28, 28)
    counts = torch.bincount(torch.cat([data.y_train, data.y_test]), minlength=10)
    # class counts of the real MNIST test set (../shared/data/README.md)
    assert counts.tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    again = load_mnist_test(t10k_dir, t10k_dir)
    assert torch.equal(again.x_test, data.x_test)
    assert not set(map(bytes, data.x_test[:50].numpy())) & set(map(bytes, data.x_train.numpy()))


def test_mnist_test_rejects_modified_files(tmp_path, t10k_dir):
    raw = gzip.decompress((t10k_dir / "t10k-images-idx3-ubyte.gz").read_bytes())
    assert hashlib.sha256(raw).hexdigest() == T10K_DECOMPRESSED_SHA256["t10k-images-idx3-ubyte"]
    tampered = bytearray(raw)
    tampered[1000] ^= 0xFF
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(bytes(tampered))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(
        (t10k_dir / "t10k-labels-idx1-ubyte.gz").read_bytes())
    with pytest.raises(IntegrityError, match="t10k-images-idx3-ubyte"):
        load_mnist_test(tmp_path, tmp_path)


def test_mnist_test_missing_folder_says_where_to_put_it(tmp_path):
    with pytest.raises(DatasetNotFound, match="PROBSSL_MNIST_T10K"):
        load_dataset("mnist-test", data_dir=tmp_path / "nowhere")


def test_truncated_idx_is_named(tmp_path):
    good = idx_bytes(np.zeros((5, 28, 28), np.uint8))
    (tmp_path / "x-idx3-ubyte").write_bytes(good[:-10])
    with pytest.raises(IntegrityError, match="x-idx3-ubyte.*truncated or corrupt"):
        read_idx(tmp_path / "x-idx3-ubyte", 3)
    (tmp_path / "y").write_bytes(b"\x00\x00\x08\x01\x00")
    with pytest.raises(IntegrityError, match="truncated"):
        read_idx(tmp_path / "y", 1)


def test_every_builtin_dataset_knows_shape_classes_and_preset():
    from probssl.data.augment import PRESETS

    for info in DATASETS.values():
        assert len(info.image_shape) == 3 and info.augmentation in PRESETS
        assert info.num_classes in (2, 4, 10)


def test_cifar_extracted_folder_and_bad_shape(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(cifar_batch(3, i))
    (folder / "test_batch").write_bytes(cifar_batch(2, 9))
    data = load_cifar10(tmp_path)
    assert data.x_train.shape == (15, 3, 32, 32) and data.x_test.shape == (2, 3, 32, 32)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8),
                                                      b"labels": [0, 1]}))
    with pytest.raises(IntegrityError, match="test_batch.*expected \\(N, 3072\\)"):
        load_cifar10(tmp_path)


def _fake_celeba(root, n=6):
    (root / "img_align_celeba").mkdir(parents=True)
    names = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    attrs = [f"Attr{i}" for i in range(40)]
    attrs[20] = "Male"
    rng = np.random.default_rng(0)
    for f in names:
        Image.fromarray(rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)).save(
            root / "img_align_celeba" / f)
    rows = [f"{f} " + " ".join("1" if (i + j) % 2 else "-1" for j in range(40))
            for i, f in enumerate(names)]
    (root / "list_attr_celeba.txt").write_text(f"{n}\n" + " ".join(attrs) + "\n"
                                               + "\n".join(rows) + "\n")
    parts = [0, 0, 0, 1, 2, 2][:n]
    (root / "list_eval_partition.txt").write_text(
        "\n".join(f"{f} {p}" for f, p in zip(names, parts, strict=True)) + "\n")


def test_celeba_official_layout(tmp_path):
    _fake_celeba(tmp_path / "celeba")
    data = load_celeba(tmp_path / "celeba", tmp_path / "cache")
    assert data.x_train.shape == (3, 3, 64, 64) and data.x_test.shape == (2, 3, 64, 64)
    assert data.attributes["train"].shape == (3, 40) and len(data.attribute_names) == 40
    assert torch.equal(data.y_train, data.attributes["train"][:, 20])
    # second load comes from the decoded cache and is identical
    again = load_celeba(tmp_path / "celeba", tmp_path / "cache")
    assert torch.equal(again.x_test, data.x_test)


def test_celeba_missing_attribute_file_names_the_layout(tmp_path):
    _fake_celeba(tmp_path / "celeba")
    (tmp_path / "celeba" / "list_attr_celeba.txt").unlink()
    with pytest.raises(DatasetNotFound, match="list_attr_celeba.txt is missing"):
        load_dataset("celeba", data_dir=tmp_path / "celeba")


def test_folder_dataset_labelled_and_unlabelled(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / "lab" / cls).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(
                tmp_path / "lab" / cls / f"{i}.png")
    data = load_dataset(f"folder:{tmp_path / 'lab'}")
    assert data.x_train.shape[1:] == (3, 12, 10) and len(data.x_train) + len(data.x_test) == 10
    assert data.class_names == ["cat", "dog"] and data.num_classes == 2
    (tmp_path / "unl").mkdir()
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (9, 9), dtype=np.uint8)).save(
            tmp_path / "unl" / f"{i}.png")
    unl = load_dataset(f"folder:{tmp_path / 'unl'}")
    assert unl.y_train is None and unl.x_train.shape[1:] == (1, 9, 9)
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "unl" / "odd.png")
    with pytest.raises(UserError, match="odd.png"):
        load_dataset(f"folder:{tmp_path / 'unl'}")


def test_npz_dataset_layouts_and_errors(tmp_path):
    x = np.random.default_rng(0).random((20, 6, 6, 3)).astype(np.float32)
    y = np.arange(20) % 4
    np.savez(tmp_path / "d.npz", x=x, y=y)
    data = load_dataset(f"npz:{tmp_path / 'd.npz'}")
    assert data.x_train.shape[1:] == (3, 6, 6) and data.num_classes == 4
    assert data.x_train.dtype == torch.uint8
    np.savez(tmp_path / "bad.npz", x=x * 3)
    with pytest.raises(UserError, match=r"float images must lie in \[0, 1\]"):
        load_dataset(f"npz:{tmp_path / 'bad.npz'}")
    np.savez(tmp_path / "nox.npz", images=x)
    with pytest.raises(UserError, match="no array named 'x'"):
        load_dataset(f"npz:{tmp_path / 'nox.npz'}")
    np.savez(tmp_path / "split.npz", x=x[:10], y=y[:10], x_test=x[10:], y_test=y[10:])
    split = load_dataset(f"npz:{tmp_path / 'split.npz'}")
    assert len(split.x_train) == 10 and len(split.x_test) == 10
