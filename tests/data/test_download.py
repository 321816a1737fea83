"""The real download path against a loopback HTTP server serving real-format fixtures."""

from __future__ import annotations

import pytest

from probssl.cli import main
from probssl.data import cifar, idx, load_dataset
from probssl.data.download import download_file
from probssl.errors import DatasetNotFound, IntegrityError, UserError
from tests.data.fixtures import FileServer, cifar_tarball, mnist_like_files, sha256


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_good_download_is_verified_and_placed(tmp_path):
    files = {"a.bin": b"x" * 200_000}
    with FileServer(files) as srv:
        path = download_file(srv.url + "a.bin", tmp_path / "a.bin", sha256(files["a.bin"]))
    assert path.read_bytes() == files["a.bin"]
    assert _leftovers(tmp_path) == ["a.bin"]


def test_corrupted_download_names_file_and_both_hashes_and_keeps_nothing(tmp_path):
    good = b"the real bytes"
    with FileServer({"a.bin": b"tampered bytes"}) as srv:
        with pytest.raises(IntegrityError) as err:
            download_file(srv.url + "a.bin", tmp_path / "a.bin", sha256(good), backoff=0)
    msg = str(err.value)
    assert "a.bin" in msg and sha256(good) in msg and sha256(b"tampered bytes") in msg
    assert _leftovers(tmp_path) == []


def test_interrupted_download_leaves_no_partial_file(tmp_path):
    body = b"y" * 100_000
    with FileServer({"a.bin": body}, truncate={"a.bin"}) as srv:
        with pytest.raises(UserError, match="could not download a.bin"):
            download_file(srv.url + "a.bin", tmp_path / "a.bin", sha256(body), retries=1,
                          backoff=0)
        assert srv.requests.count("a.bin") == 2  # first try + one retry
    assert _leftovers(tmp_path) == []


def test_transient_failure_is_retried(tmp_path):
    body = b"z" * 1000
    with FileServer({"a.bin": body}, fail_first={"a.bin"}) as srv:
        download_file(srv.url + "a.bin", tmp_path / "a.bin", sha256(body), backoff=0)
        assert srv.requests == ["a.bin", "a.bin"]
    assert (tmp_path / "a.bin").read_bytes() == body


def test_second_mirror_used_when_first_is_missing(tmp_path):
    body = b"m" * 1000
    with FileServer({}) as empty, FileServer({"a.bin": body}) as full:
        download_file([empty.url + "a.bin", full.url + "a.bin"], tmp_path / "a.bin",
                      sha256(body), retries=0, backoff=0)
    assert (tmp_path / "a.bin").read_bytes() == body


def test_mnist_download_then_load_via_cli(tmp_path, monkeypatch, capsys):
    files = mnist_like_files()
    with FileServer(files) as srv:
        monkeypatch.setitem(idx.REMOTE, "mnist",
                            ([srv.url], {k: sha256(v) for k, v in files.items()}))
        assert main(["datasets", "download", "mnist", "--cache-dir", str(tmp_path)]) == 0
        # a second download finds verified files and fetches nothing
        n = len(srv.requests)
        assert main(["datasets", "download", "mnist", "--cache-dir", str(tmp_path)]) == 0
        assert len(srv.requests) == n
    data = load_dataset("mnist", cache_dir=tmp_path)
    assert data.x_train.shape == (30, 1, 28, 28) and data.x_test.shape == (10, 1, 28, 28)
    assert data.y_train.tolist()[:12] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert data.num_classes == 10 and data.augmentation == "mnist"


def test_mnist_corrupted_on_server_leaves_cache_clean(tmp_path, monkeypatch, capsys):
    files = mnist_like_files()
    hashes = {k: sha256(v) for k, v in files.items()}
    served = dict(files)
    served["train-labels-idx1-ubyte.gz"] = b"garbage"
    with FileServer(served) as srv:
        monkeypatch.setitem(idx.REMOTE, "mnist", ([srv.url], hashes))
        code = main(["datasets", "download", "mnist", "--cache-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "train-labels-idx1-ubyte.gz" in err[0] and hashes["train-labels-idx1-ubyte.gz"] in err[0]
    assert "train-labels-idx1-ubyte.gz" not in _leftovers(tmp_path / "mnist")
    assert not any(".part" in n for n in _leftovers(tmp_path / "mnist"))


def test_cifar10_download_then_load(tmp_path, monkeypatch):
    tarball = cifar_tarball()
    with FileServer({cifar.TARBALL: tarball}) as srv:
        monkeypatch.setattr(cifar, "URLS", [srv.url + cifar.TARBALL])
        monkeypatch.setattr(cifar, "SHA256", sha256(tarball))
        data = load_dataset("cifar10", cache_dir=tmp_path, download=True)
    assert data.x_train.shape == (20, 3, 32, 32) and data.x_test.shape == (4, 3, 32, 32)
    assert data.y_test.tolist() == [0, 1, 2, 3]
    assert data.augmentation == "cifar10"


def test_missing_dataset_says_how_to_get_it(tmp_path):
    with pytest.raises(DatasetNotFound, match="probssl datasets download fashion-mnist"):
        load_dataset("fashion-mnist", cache_dir=tmp_path)
    with pytest.raises(DatasetNotFound, match="probssl datasets download cifar10"):
        load_dataset("cifar10", cache_dir=tmp_path)


def test_missing_dataset_cli_is_one_line(tmp_path, capsys):
    code = main(["train", "--dataset", "mnist", "--epochs", "1", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "datasets download mnist" in err[0]
    assert not (tmp_path / "r").exists()
