"""W&B (offline mode) and MLflow (local sqlite store) receive a run's config, its per-epoch
rows (losses, online kNN), the same tracker run on resume, and the final evaluation."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from probssl.cli import main
from probssl.config import TrainConfig
from probssl.errors import UserError
from probssl.train import train
from probssl.train.trackers import TRACKERS_FILE, flat_numbers, parse_loggers


def test_logger_names_are_checked_when_the_config_is_built():
    assert parse_loggers("none") == ()
    assert parse_loggers("tensorboard, tensorboard") == ("tensorboard",)
    with pytest.raises(UserError, match="got 'tb'"):
        TrainConfig(logger="tensorboard,tb")


def test_flat_numbers_keeps_finite_numbers_only():
    got = dict(flat_numbers({"knn": {"best": 0.9, "metric": "euclidean"}, "ok": True,
                             "nan": float("nan"), "n": 3}))
    assert got == {"knn/best": 0.9, "n": 3.0}


def _cfg(logger: str, epochs: int) -> TrainConfig:
    return TrainConfig(method="vae", dataset="digits", epochs=epochs, eval_every=1,
                       eval_val_size=200, eval_ref_size=500, logger=logger, seed=3)


def _evaluate(run: Path) -> dict:
    assert main(["evaluate", str(run), "--no-mlp-probe", "--probe-epochs", "5",
                 "--fid-features", "none", "--gmm-n-init", "1"]) == 0
    return json.loads((run / "eval.json").read_text())


def test_mlflow_gets_config_epochs_resume_and_evaluation(tmp_path, monkeypatch, capsys):
    mlflow = pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "probssl-test")
    run = tmp_path / "run"
    train(_cfg("mlflow", 1), run, progress=False, verbose=False)
    ids = json.loads((run / TRACKERS_FILE).read_text())["mlflow"]
    train(_cfg("mlflow", 2), run, resume=True, progress=False, verbose=False)
    assert json.loads((run / TRACKERS_FILE).read_text())["mlflow"] == ids  # same run
    result = _evaluate(run)

    client = mlflow.MlflowClient(tracking_uri=ids["tracking_uri"])
    got = client.get_run(ids["run_id"])
    assert got.data.params["train.method"] == '"vae"'
    assert got.data.params["method.beta"] == "1.0"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for key in ("loss", "knn_val"):
        hist = sorted((m.step, m.value) for m in client.get_metric_history(ids["run_id"], key))
        assert hist == [(r["epoch"], pytest.approx(r[key])) for r in rows]
    assert got.data.metrics["eval/knn/best"] == pytest.approx(result["knn"]["best"])
    assert got.data.metrics["eval/linear_probe/test_accuracy"] == \
        pytest.approx(result["linear_probe"]["test_accuracy"])
    assert got.info.status == "FINISHED"
    exp = client.get_experiment(got.info.experiment_id)
    assert exp.name == "probssl-test"
    # a tracker that is gone does not undo the evaluation: one warning line, exit 0
    (run / TRACKERS_FILE).write_text(json.dumps({"mlflow": {
        "run_id": ids["run_id"], "tracking_uri": f"sqlite:///{tmp_path}/gone/x/mlflow.db"}}))
    capsys.readouterr()
    _evaluate(run)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "warning" in err[0] and "not in the tracker" in err[0], err


def _wandb_records(run: Path) -> list:
    """Every record of the run's offline W&B files, in order. The .wandb file is a LevelDB
    log (wandb's format: a 7-byte file header, 32 KiB blocks, records with a 7-byte header
    of crc, length and type, FULL/FIRST/MIDDLE/LAST) of protobuf ``Record`` messages."""
    from wandb.proto import wandb_internal_pb2 as pb

    records = []
    for path in sorted(run.glob("wandb/offline-run-*/run-*.wandb")):
        data = path.read_bytes()
        assert data[:4] == b":W&B", path
        pos, block, pending = 7, 32768, b""
        while pos + 7 <= len(data):
            left = block - pos % block
            if left < 7:  # the block's tail is padding
                pos += left
                continue
            length, kind = struct.unpack("<HB", data[pos + 4:pos + 7])
            payload = data[pos + 7:pos + 7 + length]
            pos += 7 + length
            if kind == 0 and length == 0:
                break
            pending = payload if kind in (1, 2) else pending + payload
            if kind in (1, 4):
                rec = pb.Record()
                rec.ParseFromString(pending)
                records.append(rec)
    return records


def test_wandb_offline_gets_config_epochs_resume_and_evaluation(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_PROJECT", "probssl-test")
    run = tmp_path / "run"
    train(_cfg("wandb", 1), run, progress=False, verbose=False)
    ids = json.loads((run / TRACKERS_FILE).read_text())["wandb"]
    train(_cfg("wandb", 2), run, resume=True, progress=False, verbose=False)
    assert json.loads((run / TRACKERS_FILE).read_text())["wandb"] == ids
    result = _evaluate(run)

    records = _wandb_records(run)
    runs = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert {r.run_id for r in runs} == {ids["id"]} and len(runs) == 3  # train, resume, eval
    assert {r.project for r in runs} == {"probssl-test"}
    config = {i.key: i.value_json for r in runs for i in r.config.update}
    assert json.loads(config["train"])["method"] == "vae"
    history = []
    for r in records:
        if r.WhichOneof("record_type") == "history":
            row = {i.key or "/".join(i.nested_key): json.loads(i.value_json)
                   for i in r.history.item}
            history.append((row["_step"], row["loss"], row["knn_val"]))
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert history == [(r["epoch"], pytest.approx(r["loss"]), pytest.approx(r["knn_val"]))
                       for r in rows]
    summary = {i.key or "/".join(i.nested_key): json.loads(i.value_json)
               for r in records if r.WhichOneof("record_type") == "summary"
               for i in r.summary.update}
    assert summary["eval/knn/best"] == pytest.approx(result["knn"]["best"])


def test_wandb_without_login_is_one_line_and_leaves_the_run_intact(tmp_path, monkeypatch,
                                                                   capsys):
    pytest.importorskip("wandb")
    run = tmp_path / "run"
    train(_cfg("tensorboard", 1), run, progress=False, verbose=False)
    before = sorted(p.name for p in run.iterdir())
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    code = main(["train", "--method", "vae", "--dataset", "digits", "--epochs", "2",
                 "--eval-every", "1", "--eval-val-size", "200", "--eval-ref-size", "500",
                 "--seed", "3", "--logger", "wandb", "--resume", "--no-progress",
                 "--out", str(run)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "wandb" in err[0] and "WANDB_MODE=offline" in err[0]
    assert sorted(p.name for p in run.iterdir() if p.name != "wandb") == before
