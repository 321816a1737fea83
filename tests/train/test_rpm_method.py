"""Method rpm in the trainer: every critic and prior trains; I_N and critic params logged."""

from __future__ import annotations

import pytest

from probssl.config import TrainConfig
from probssl.errors import UserError
from probssl.runs.format import read_metrics
from probssl.train import train


@pytest.mark.parametrize("critic,prior,recognition", [
    ("cosine", "infonce", "deterministic"), ("rbf", "infonce", "deterministic"),
    ("bilinear", "infonce", "gaussian"), ("dot", "infonce", "deterministic"),
    ("mlp", "infonce", "deterministic"), ("rbf", "gaussian-dynamics", "deterministic"),
    ("cosine", "gaussian-dynamics", "gaussian"), ("rbf", "infonce", "separate-encoders")])
def test_rpm_trains_and_logs(tmp_path, critic, prior, recognition):
    shared = recognition != "separate-encoders"
    cfg = TrainConfig(method="rpm", dataset="digits", epochs=3, device="cpu",
                      params={"critic": critic, "prior": prior, "latent_dim": 8,
                              "recognition": recognition if shared else "deterministic",
                              "shared_encoder": shared})
    result = train(cfg, tmp_path / "r", progress=False, verbose=False)
    assert (result.method.encoder is result.method.encoder_prime) == shared
    rows = read_metrics(tmp_path / "r")
    assert {"I_N", "I_B", "pair_top1", "objective"} <= set(rows[0])
    if critic == "rbf":
        assert "length_scale" in rows[0]
    if prior == "infonce":
        assert rows[-1]["I_N"] > rows[0]["I_N"]  # the bound is being maximised
    else:
        assert rows[-1]["elbo"] > rows[0]["elbo"]


def test_rpm_rejects_bad_params():
    with pytest.raises(UserError, match="n_views must be 2"):
        TrainConfig(method="rpm", params={"n_views": 3})
    with pytest.raises(UserError, match="unknown critic"):
        TrainConfig(method="rpm", params={"critic": "linear"})
    with pytest.raises(UserError, match="unknown prior"):
        TrainConfig(method="rpm", params={"prior": "flat"})


def test_rpm_evaluation_reports_held_out_pair_retrieval(tmp_path):
    from probssl.evaluate import EvalConfig, evaluate_run
    from probssl.runs.format import load_run

    cfg = TrainConfig(method="rpm", dataset="digits", epochs=5, device="cpu",
                      params={"critic": "rbf"})
    train(cfg, tmp_path / "r", progress=False, verbose=False)
    res = evaluate_run(load_run(tmp_path / "r"), EvalConfig(probe_epochs=2))
    pr = res["pair_retrieval"]
    assert pr["pairs"] == 256 and pr["top1"] > 10 * pr["chance"]
