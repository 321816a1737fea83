"""Provenance: git state, versions and a data hash, written into every run's meta.json,
never raising and never changing a run."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import torch

from probssl.config import TrainConfig
from probssl.runs import provenance as prov
from probssl.runs.format import resolve
from probssl.train import train


def test_array_hash_is_of_dtype_shape_and_bytes():
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    h = prov.array_hash(a)
    assert len(h) == 64 and h == prov.array_hash(a.copy())
    assert h == prov.array_hash(torch.from_numpy(a))  # numpy and torch alike
    assert h != prov.array_hash(a.reshape(4, 3))  # shape counts
    assert h != prov.array_hash(a.astype(np.int16))  # dtype counts
    b = a.copy()
    b[0, 0] = 1
    assert h != prov.array_hash(b)
    assert prov.array_hash(a, None) != prov.array_hash(a)  # order and None count
    assert prov.array_hash(np.asfortranarray(np.ones((2, 3)))) == prov.array_hash(np.ones((2, 3)))
    assert len(prov.array_hash(torch.ones(3, dtype=torch.bfloat16))) == 64
    assert len(prov.array_hash(np.empty((0, 2)))) == 64


def test_package_versions_names_what_matters():
    v = prov.package_versions()
    assert v["torch"] == torch.__version__ and v["numpy"] == np.__version__
    assert {"python", "probssl"} <= set(v) and all(isinstance(x, str) for x in v.values())


def test_git_state_of_a_checkout_and_of_a_plain_folder(tmp_path, monkeypatch):
    assert prov.git_state(tmp_path / "nowhere") == {"commit": None, "dirty": None}
    if shutil.which("git") is None:
        pytest.skip("no git on this machine")
    repo = tmp_path / "repo"
    repo.mkdir()
    run = lambda *a: subprocess.run(["git", "-C", str(repo), *a], check=True,  # noqa: E731
                                    capture_output=True)
    run("init", "-q")
    run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m",
        "x")
    state = prov.git_state(repo)
    assert len(state["commit"]) == 40 and state["dirty"] is False
    (repo / "f").write_text("x")
    run("add", "f")
    assert prov.git_state(repo)["dirty"] is True
    sub = repo / "site-packages"  # an installed copy inside some other checkout
    sub.mkdir()
    assert prov.git_state(sub)["commit"] == state["commit"]  # asked for: that checkout
    monkeypatch.setattr(prov, "_source_root", lambda: sub)
    assert prov.git_state() == {"commit": None, "dirty": None}  # not probssl's own
    monkeypatch.setattr(prov, "_source_root", lambda: repo)
    assert prov.git_state()["commit"] == state["commit"]
    monkeypatch.undo()
    plain = tmp_path / "plain"
    plain.mkdir()
    if subprocess.run(["git", "-C", str(plain), "rev-parse"], capture_output=True).returncode:
        assert prov.git_state(plain) == {"commit": None, "dirty": None}


def test_git_missing_or_hanging_never_raises(monkeypatch, tmp_path):
    monkeypatch.setattr(prov.shutil, "which", lambda _: None)
    assert prov.git_state() == {"commit": None, "dirty": None}
    monkeypatch.undo()

    def hang(*a, **k):
        raise subprocess.TimeoutExpired("git", prov.GIT_TIMEOUT_S)

    monkeypatch.setattr(prov.subprocess, "run", hang)
    assert prov.git_state() == {"commit": None, "dirty": None}


def test_every_run_records_its_provenance_in_meta(tmp_path):
    cfg = TrainConfig(method="vae", dataset="digits", epochs=1, device="cpu", seed=0)
    train(cfg, tmp_path / "r", progress=False, verbose=False)
    meta = json.loads((tmp_path / "r" / "meta.json").read_text())
    p = meta["provenance"]
    assert set(p) == {"git", "packages", "data_sha256"}
    assert set(p["git"]) == {"commit", "dirty"}
    assert p["packages"]["torch"] == torch.__version__
    data = resolve(TrainConfig(method="vae", dataset="digits")).data
    assert p["data_sha256"] == prov.array_hash(data.x_train, data.y_train)
    assert meta["provenance"] == {**p, "git": prov.git_state()}  # the source tree's state
