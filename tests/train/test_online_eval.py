"""Online evaluation is a callback of the one trainer: k-NN accuracy on a validation split of
the training set during training, logged as a metrics column, without changing what the run
learns."""

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
from probssl.train.callbacks import validation_split


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"method": "vae", "dataset": "digits", "epochs": 3, "batch_size": 128,
                          "seed": 4, "device": "cpu", "tensorboard": False, **kw})


def _rows(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_online_knn_is_logged_and_changes_no_weight(tmp_path):
    torch.set_num_threads(1)
    plain, watched = tmp_path / "plain", tmp_path / "watched"
    train(_cfg(), plain, progress=False, verbose=False)
    train(_cfg(eval_every=2, eval_val_size=200, eval_ref_size=600), watched,
          progress=False, verbose=False)
    a, b = load_latest(plain)["model"], load_latest(watched)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # bit-identical: no random number drawn
    rows = _rows(watched)
    # every 2 epochs and after the last (3): epochs 2 and 3, not 1
    assert ["knn_val" in r for r in rows] == [False, True, True]
    assert all("knn_val" not in r for r in _rows(plain))
    # the number is the protocol's k-NN of the validation images against the reference
    # images, both from the training split, recomputed from the final weights
    loaded = load_run(watched)
    data = loaded.resolved.data
    val, ref = validation_split(len(data.x_train), 200, 600)
    assert len(val) == 200 and len(ref) == 600 and not set(val.tolist()) & set(ref.tolist())
    embed = loaded.method.encoder.embed
    z_ref = compute_embeddings(embed, data.x_train[ref], loaded.resolved.augment)
    z_val = compute_embeddings(embed, data.x_train[val], loaded.resolved.augment)
    expected = knn_accuracy(z_ref, data.y_train[ref], z_val, data.y_train[val])["best"]
    assert rows[-1]["knn_val"] == pytest.approx(expected, abs=1e-6)
    assert rows[-1]["knn_val"] > 0.5  # 10 classes: far above chance after 3 epochs


def test_validation_split_is_fixed_disjoint_and_a_fifth_at_most():
    val, ref = validation_split(100, 1000, 5000)
    assert len(val) == 20 and len(ref) == 80  # at most a fifth of the training set
    assert torch.equal(val, validation_split(100, 1000, 5000)[0])  # the same for every run
    assert sorted(val.tolist() + ref.tolist()) == list(range(100))


def test_online_knn_survives_resume_and_is_a_flag(tmp_path, capsys):
    run = tmp_path / "r"
    args = ["train", "--method", "vae", "--dataset", "digits", "--batch-size", "128",
            "--eval-every", "1", "--eval-val-size", "100", "--eval-ref-size", "300",
            "--device", "cpu", "--no-progress", "--no-tensorboard", "--out", str(run)]
    assert main([*args, "--epochs", "1"]) == 0
    assert main([*args, "--epochs", "2", "--resume"]) == 0
    rows = _rows(run)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(0 <= r["knn_val"] <= 1 for r in rows)
    assert np.isfinite([r["knn_val"] for r in rows]).all()


@pytest.mark.parametrize("field,value", [("eval_every", -1), ("eval_val_size", 0),
                                         ("eval_ref_size", 0)])
def test_bad_online_evaluation_settings_fail_when_built(field, value):
    with pytest.raises(UserError, match=field):
        _cfg(**{field: value})


def test_figure_curves_draws_runs_with_and_without_online_evaluation(tmp_path, capsys):
    watched, plain = tmp_path / "watched", tmp_path / "plain"
    train(_cfg(epochs=2, eval_every=1, eval_val_size=100, eval_ref_size=300), watched,
          progress=False, verbose=False)
    train(_cfg(epochs=2), plain, progress=False, verbose=False)
    out = tmp_path / "fig" / "curves.png"
    assert main(["figure", "curves", str(watched), str(plain), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    # a folder that is not a run: one line naming it, exit 2, nothing written
    capsys.readouterr()
    bad = tmp_path / "not-a-run"
    bad.mkdir()
    assert main(["figure", "curves", str(bad), "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not-a-run" in err[0]
    assert not (tmp_path / "x.png").exists()
