"""Every SimVAE-paper method trains through the one trainer; presets resolve as documented."""

import math

import pytest
import torch

from probssl.cli import main
from probssl.config import TrainConfig, preset_values
from probssl.errors import UserError
from probssl.runs.checkpoint import list_checkpoints
from probssl.runs.format import read_metrics, read_run_config
from probssl.train import train


@pytest.mark.parametrize("method", ["simvae", "cr-vae", "simclr", "moco", "vicreg"])
def test_method_trains_and_changes_its_encoder(method, tmp_path):
    cfg = TrainConfig(method=method, dataset="digits", epochs=2, batch_size=64, seed=1,
                      device="cpu", keep_checkpoints=3,
                      params={"n_views": 3} if method == "simvae" else {})
    result = train(cfg, tmp_path / method, progress=False, verbose=False)
    rows = read_metrics(tmp_path / method)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(math.isfinite(r["loss"]) for r in rows)
    first_epoch, first = list_checkpoints(tmp_path / method)[0]
    assert first_epoch == 0
    init = torch.load(first, weights_only=False)["model"]
    now = result.method.state_dict()
    assert any(not torch.equal(init[k], now[k]) for k in init if k.startswith("encoder."))


def test_moco_key_encoder_follows_the_online_one(tmp_path):
    cfg = TrainConfig(method="moco", dataset="digits", epochs=1, batch_size=64, device="cpu",
                      params={"momentum": 0.0})  # momentum 0: keys = online weights
    m = train(cfg, tmp_path / "m", progress=False, verbose=False).method
    for a, b in zip(m.encoder.parameters(), m.key_encoder.parameters(), strict=True):
        assert torch.equal(a, b)
    assert int(m.queue_ptr) != 0


def test_simvae_logs_the_elbo_in_nats_per_image(tmp_path):
    cfg = TrainConfig(method="simvae", dataset="digits", epochs=1, batch_size=64,
                      device="cpu", params={"n_views": 2})
    train(cfg, tmp_path / "s", progress=False, verbose=False)
    row = read_metrics(tmp_path / "s")[0]
    assert row["elbo"] == pytest.approx(row["log_lik"] + row["entropy"] + row["log_prior"],
                                        rel=1e-5)
    assert row["loss"] == pytest.approx(-row["elbo"], rel=1e-6)


def test_presets_resolve_and_flags_override(tmp_path):
    train_v, params = preset_values("paper", "simvae", "mnist")
    assert train_v["lr"] == 8e-5 and train_v["epochs"] == 400
    assert params["n_views"] == 10 and params["prior_var"] == 0.15
    train_v, params = preset_values("reference-code", "simvae", "mnist")
    assert params["n_views"] == 2 and params["likelihood"] == "bernoulli"
    assert train_v["adam_eps"] == 1e-4 and train_v["augmentation"] == "mnist-reference-code"
    assert preset_values("reference-code", "simvae", "cifar10")[1]["likelihood"] == "gaussian"
    assert preset_values("reference-code", "cr-vae", "mnist")[1]["weight"] == 1e-3
    assert preset_values("paper", "vicreg", "mnist")[0]["lr"] == 1e-4
    with pytest.raises(UserError, match="unknown preset"):
        preset_values("fast", "vae", "mnist")
    # through the CLI: the preset fills what flags leave unset, flags win
    code = main(["train", "--method", "simvae", "--dataset", "digits", "--preset", "quick",
                 "--epochs", "1", "--set", "n_views=3", "--out", str(tmp_path / "q"),
                 "--no-progress"])
    assert code == 0
    cfg = read_run_config(tmp_path / "q")
    assert cfg.preset == "quick" and cfg.epochs == 1 and cfg.batch_size == 64
    assert cfg.params["n_views"] == 3 and cfg.lr == 1e-3


def test_runs_saved_before_a_new_field_keep_their_meaning(tmp_path):
    import json

    from probssl.runs.format import load_run

    cfg = TrainConfig(method="moco", dataset="digits", epochs=1, batch_size=64, device="cpu",
                      params={"projection_dim": 0})
    train(cfg, tmp_path / "old", progress=False, verbose=False)
    path = tmp_path / "old" / "config.json"
    saved = json.loads(path.read_text())
    for section in (saved["train"]["params"], saved["method"]):
        del section["projection_dim"]  # as written before the field existed
    path.write_text(json.dumps(saved))
    loaded = load_run(tmp_path / "old")  # today's default (a head) would not match the weights
    assert loaded.resolved.method.projection_dim == 0
