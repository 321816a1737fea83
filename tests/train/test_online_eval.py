"""Online evaluation is a callback of the one trainer: k-NN accuracy during training, logged as
a metrics column, without changing what the run learns."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from probssl.cli import main
from probssl.config import TrainConfig
from probssl.errors import UserError
from probssl.evaluate.embed import compute_embeddings
from probssl.evaluate.knn import knn_accuracy
from probssl.runs import load_run
from probssl.runs.checkpoint import load_latest
from probssl.train import train


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(method="vae", dataset="digits", epochs=3, batch_size=128, seed=4,
                       device="cpu", tensorboard=False, **kw)


def _rows(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_online_knn_is_logged_and_changes_no_weight(tmp_path):
    torch.set_num_threads(1)
    plain, watched = tmp_path / "plain", tmp_path / "watched"
    train(_cfg(), plain, progress=False, verbose=False)
    train(_cfg(online_knn_every=2, online_knn_train=600, online_knn_test=200), watched,
          progress=False, verbose=False)
    a, b = load_latest(plain)["model"], load_latest(watched)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # bit-identical: no random number drawn
    rows = _rows(watched)
    # every 2 epochs and after the last (3): epochs 2 and 3, not 1
    assert ["knn_online" in r for r in rows] == [False, True, True]
    assert all("knn_online" not in r for r in _rows(plain))
    # the number is the protocol's k-NN on those subsets, recomputed from the final weights
    loaded = load_run(watched)
    data = loaded.resolved.data
    embed = loaded.method.encoder.embed
    z_tr = compute_embeddings(embed, data.x_train[:600], loaded.resolved.augment)
    z_te = compute_embeddings(embed, data.x_test[:200], loaded.resolved.augment)
    expected = knn_accuracy(z_tr, data.y_train[:600], z_te, data.y_test[:200])["best"]
    assert rows[-1]["knn_online"] == pytest.approx(expected, abs=1e-6)
    assert rows[-1]["knn_online"] > 0.5  # 10 classes: far above chance after 3 epochs


def test_online_knn_survives_resume_and_is_a_flag(tmp_path, capsys):
    run = tmp_path / "r"
    args = ["train", "--method", "vae", "--dataset", "digits", "--batch-size", "128",
            "--online-knn-every", "1", "--online-knn-train", "300", "--online-knn-test", "100",
            "--device", "cpu", "--no-progress", "--no-tensorboard", "--out", str(run)]
    assert main([*args, "--epochs", "1"]) == 0
    assert main([*args, "--epochs", "2", "--resume"]) == 0
    rows = _rows(run)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(0 <= r["knn_online"] <= 1 for r in rows)
    assert np.isfinite([r["knn_online"] for r in rows]).all()


@pytest.mark.parametrize("field,value", [("online_knn_every", -1), ("online_knn_train", 0),
                                         ("online_knn_test", 0)])
def test_bad_online_knn_settings_fail_when_built(field, value):
    with pytest.raises(UserError, match=field):
        _cfg(**{field: value})
