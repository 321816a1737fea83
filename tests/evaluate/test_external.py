"""`probssl evaluate --encoder/--embeddings`: an encoder from outside probssl, in every format,
gives the numbers of the same network evaluated as a probssl run; mismatches are one line."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from torch import nn

from probssl.cli import main
from probssl.runs.format import load_run

FAST = ["--probe-epochs", "2", "--gmm-n-init", "1", "--no-mlp-probe", "--fid-features", "none"]


def build_small_encoder() -> nn.Module:
    """A network defined here, not in probssl (for --encoder-code)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 5))


@pytest.fixture
def run(vae_digits_run):
    return vae_digits_run


def _result(path):
    return json.loads(path.read_text())


def test_every_format_gives_the_runs_own_numbers(run, tmp_path):
    assert main(["evaluate", str(run), *FAST]) == 0
    want = _result(run / "eval.json")
    lk = want["likelihood"]  # a VAE is a density model: held-out ELBO and log p̂_100, nats
    assert lk["k"] == 100 and lk["n"] == 359 and lk["iwae"] > lk["elbo"]
    net = load_run(run).method.encoder.net.eval()
    latent = load_run(run).method.encoder.latent_dim
    assert main(["export", str(run), "--out", str(tmp_path / "e.pt")]) == 0
    assert main(["export", str(run), "--format", "safetensors", "--out",
                 str(tmp_path / "s" / "e.safetensors")]) == 0
    assert main(["export", str(run), "--format", "torch-export", "--out",
                 str(tmp_path / "e.pt2")]) == 0

    class Mean(nn.Module):  # a TorchScript of the representation alone
        def __init__(self):
            super().__init__()
            self.net = net
            self.latent = latent

        def forward(self, x):
            return self.net(x)[:, :self.latent]

    torch.jit.save(torch.jit.script(Mean()), str(tmp_path / "e.ts"))
    for spec in ("e.pt", "s/e.safetensors", "e.ts"):
        out = tmp_path / f"{spec.replace('/', '_')}.json"
        assert main(["evaluate", "--encoder", str(tmp_path / spec), "--dataset", "digits",
                     *FAST, "--out", str(out)]) == 0
        got = _result(out)
        assert got["knn"]["per_k"] == want["knn"]["per_k"], spec
        assert got["linear_probe"]["test_accuracy"] == pytest.approx(
            want["linear_probe"]["test_accuracy"]), spec
        assert got["input"] == {"range": "0-1", "size": "native", "binarize": None,
                                "normalize": None}
    # the .pt2 program outputs mean and log-variance: its first LATENT_DIM are not chosen
    # for it, so its kNN differs; it must run and be recorded as what it is
    out = tmp_path / "pt2.json"
    assert main(["evaluate", "--encoder", str(tmp_path / "e.pt2"), "--dataset", "digits",
                 *FAST, "--out", str(out)]) == 0
    assert _result(out)["encoder"]["format"] == "torch-export"
    assert _result(out)["dim"] == 2 * latent
    # precomputed features
    for split in ("train", "test"):
        assert main(["embed", str(run), "--split", split, "--out",
                     str(tmp_path / f"{split}.npz")]) == 0
    out = tmp_path / "emb.json"
    assert main(["evaluate", "--embeddings", f"{tmp_path / 'train.npz'},{tmp_path / 'test.npz'}",
                 *FAST, "--out", str(out)]) == 0
    assert _result(out)["knn"]["per_k"] == want["knn"]["per_k"]


def test_weights_with_code_and_the_input_convention_are_recorded(tmp_path):
    net = build_small_encoder()
    torch.save(net.state_dict(), tmp_path / "w.pt")
    out = tmp_path / "r.json"
    code = f"{__file__}:build_small_encoder"
    assert main(["evaluate", "--encoder", str(tmp_path / "w.pt"), "--encoder-code", code,
                 "--dataset", "digits", "--input-range=-1-1", "--normalize", "0.1,2",
                 *FAST, "--out", str(out)]) == 0
    r = _result(out)
    assert r["dim"] == 5 and r["encoder"] == {"format": "state_dict+code",
                                              "file": str(tmp_path / "w.pt"), "code": code}
    assert r["input"]["range"] == "-1-1" and r["input"]["normalize"] == [[0.1], [2.0]]


@pytest.mark.parametrize("extra,msg", [
    (["--resize", "16"], "does not accept inputs of shape (2, 1, 16, 16)"),
    (["--normalize", "0,0"], "every standard deviation > 0"),
    (["--binarize", "half"], "--binarize 'half'"),
    (["--encoder-code", "nowhere_module:fn"], "cannot import nowhere_module"),
])
def test_mismatches_are_one_line(tmp_path, capsys, extra, msg):
    torch.save(build_small_encoder().state_dict(), tmp_path / "w.pt")
    args = ["evaluate", "--encoder", str(tmp_path / "w.pt"), "--dataset", "digits", *FAST]
    if "--encoder-code" not in extra:
        args += ["--encoder-code", f"{__file__}:build_small_encoder"]
    assert main(args + extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and msg in err[0], err


def test_weights_without_code_and_a_pickle_that_would_run_code_are_refused(tmp_path, capsys):
    torch.save(build_small_encoder().state_dict(), tmp_path / "w.pt")
    assert main(["evaluate", "--encoder", str(tmp_path / "w.pt"), "--dataset", "digits"]) == 2
    assert "pass --encoder-code" in capsys.readouterr().err
    torch.save({"w": torch.zeros(1), "f": print}, tmp_path / "bad.pt")
    assert main(["evaluate", "--encoder", str(tmp_path / "bad.pt"), "--encoder-code",
                 f"{__file__}:build_small_encoder", "--dataset", "digits"]) == 2
    assert "not a readable state_dict (UnpicklingError" in capsys.readouterr().err


def test_style_factors_of_an_external_encoder_equal_the_runs(tmp_path):
    # an untrained (random) encoder on shapes-small: its run and its export must agree on
    # the per-factor probes
    run = tmp_path / "rnd"
    assert main(["train", "--method", "random", "--dataset", "shapes-small", "--out", str(run),
                 "--no-progress"]) == 0
    assert main(["evaluate", str(run), *FAST]) == 0
    want = _result(run / "eval.json")
    assert main(["export", str(run), "--out", str(tmp_path / "e.pt")]) == 0
    out = tmp_path / "ext.json"
    assert main(["evaluate", "--encoder", str(tmp_path / "e.pt"), "--dataset", "shapes-small",
                 *FAST, "--out", str(out)]) == 0
    got = _result(out)
    assert set(got["factors"]) == set(want["factors"]) and len(got["factors"]) >= 3
    for name, score in want["factors"].items():
        assert got["factors"][name]["value"] == pytest.approx(score["value"], abs=1e-6), name


def test_decoder_fitted_to_an_external_encoder_equals_train_decoder_on_the_run(
        vae_digits_run, tmp_path):
    run = tmp_path / "vae"
    shutil.copytree(vae_digits_run, run)  # train-decoder writes into the run: a copy
    assert main(["train-decoder", str(run), "--epochs", "3", "--no-progress"]) == 0
    theirs = torch.load(run / "decoder.pt", weights_only=True)
    assert main(["export", str(run), "--out", str(tmp_path / "e.pt")]) == 0
    assert main(["train-decoder", "--encoder", str(tmp_path / "e.pt"), "--dataset", "digits",
                 "--epochs", "3", "--fid-samples", "200", "--out", str(tmp_path / "dec"),
                 "--no-progress"]) == 0
    mine = _result(tmp_path / "dec" / "decoder.json")
    assert mine["val_mse"] == pytest.approx(theirs["val_mse"], rel=1e-5)
    assert 0 < mine["mse"] < 0.2 and mine["fid"]["n"] == 200 and mine["fid"]["value"] > 0
    assert (tmp_path / "dec" / "reconstructions.png").stat().st_size > 0
    saved = torch.load(tmp_path / "dec" / "decoder.pt", weights_only=True)
    for k, v in theirs["decoder"].items():
        torch.testing.assert_close(saved["decoder"][k], v)


def test_train_decoder_needs_a_dataset_and_an_out_folder(tmp_path, capsys):
    code = main(["train-decoder", "--encoder", str(tmp_path / "missing.pt")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--dataset" in err[0] and "--out" in err[0]
