"""RunResult: one record, its nested (eval.json) and flat (result.json) forms."""

from __future__ import annotations

import json

from probssl.runs.result import RESULT_SCHEMA, RunResult
from probssl.userio import read_json_as

NESTED = {
    "knn": {"best": 0.9, "best_k": 3, "per_k": {"1": 0.8, "3": 0.9}},
    "knn_val_k": {"accuracy": 0.85, "k": 5},
    "linear_probe": {"test_accuracy": 0.7, "train_accuracy": 0.75},
    "mlp_probe": {"test_accuracy": 0.72},
    "gmm": {"accuracy": 0.5, "nmi": 0.4, "ari": 0.3},
    "mse": 0.01, "fid": {"value": 12.5, "features": "classifier", "n": 10, "inception": False},
    "factors": {"scale": {"metric": "r2", "value": 0.6}},
    "n_train": 10, "n_test": 5, "dim": 4, "seconds": 1.5,
    "protocol": {"k_max": 15}, "run": "runs/x", "method": "vae", "dataset": "shapes",
    "seed": 2, "epoch": 3,
}


def test_nested_form_round_trips():
    rec = RunResult.from_json(json.loads(json.dumps(NESTED)))
    assert rec.method == "vae" and rec.epoch == 3 and rec.info["dim"] == 4
    assert set(rec.metrics) == {"knn", "knn_val_k", "linear_probe", "mlp_probe", "gmm", "mse",
                                "fid", "factors"}
    assert rec.to_json() == NESTED


def test_identity_missing_from_the_file_comes_from_the_defaults():
    obj = {k: v for k, v in NESTED.items() if k not in ("method", "dataset", "seed")}
    rec = RunResult.from_json(obj, method="simclr", dataset="digits", seed=0)
    assert (rec.method, rec.dataset, rec.seed) == ("simclr", "digits", 0)


def test_flat_view_is_one_number_per_column(tmp_path):
    rec = RunResult.from_json(NESTED)
    flat = rec.flat_metrics()
    assert flat == {"knn_best": 0.9, "knn_val_k": 0.85, "linear_probe": 0.7, "mlp_probe": 0.72,
                    "gmm_accuracy": 0.5, "nmi": 0.4, "ari": 0.3, "mse": 0.01, "fid": 12.5,
                    "fid_features": "classifier",
                    "factors": {"scale": {"metric": "r2", "value": 0.6}}, "content": 0.7}
    rec.cell, rec.sweep, rec.epochs, rec.train_seconds = "vae__shapes__seed2", ("J", 2), 3, 4.0
    row = rec.flat()
    assert row["sweep"] == ["J", 2] and row["cell"] == "vae__shapes__seed2"
    assert row["train_seconds"] == 4.0 and "run" not in row and "knn" not in row
    (tmp_path / "result.json").write_text(json.dumps(row))
    assert read_json_as(tmp_path / "result.json", "bench result", RESULT_SCHEMA) == row


def test_optional_evaluators_are_left_out_of_the_flat_view():
    obj = {k: v for k, v in NESTED.items()
           if k not in ("mlp_probe", "gmm", "mse", "fid", "factors")}
    flat = RunResult.from_json(obj).flat_metrics()
    assert set(flat) == {"knn_best", "knn_val_k", "linear_probe"}
