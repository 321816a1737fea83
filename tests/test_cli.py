"""The `probssl` command end to end, and bad input -> one line, exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from probssl.cli import main
from tests.conftest import ROOT, subprocess_env


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "probssl", *map(str, args)], cwd=cwd or ROOT,
                          env=subprocess_env(), capture_output=True, text=True, timeout=300)


def test_train_evaluate_embed_export_end_to_end(tmp_path, capsys):
    # training through the real command (`python -m probssl` in its own process); the later
    # commands read only what it wrote, through the same entry point in this process (a real
    # process's start and exit status: test_bad_input_in_a_real_process_has_no_traceback,
    # tests/test_cli_help.py)
    run = tmp_path / "vae-digits"
    p = run_cli("train", "--method", "vae", "--dataset", "digits", "--epochs", "3", "--seed",
                "1", "--out", run, "--no-progress")
    assert p.returncode == 0, p.stderr
    assert "trained vae on digits for 3 epochs" in p.stdout
    assert main(["evaluate", str(run), "--probe-epochs", "5", "--gmm-n-init", "1",
                 "--no-mlp-probe", "--fid-features", "none"]) == 0
    out = capsys.readouterr().out
    assert "kNN best" in out and "linear probe" in out and "Protocol:" in out
    result = json.loads((run / "eval.json").read_text())
    assert set(result["knn"]["per_k"]) == {str(k) for k in range(1, 16)}
    assert result["seed"] == 1 and result["epoch"] == 3
    assert main(["embed", str(run), "--split", "test", "--out", str(tmp_path / "emb.npz")]) == 0
    with np.load(tmp_path / "emb.npz") as f:
        assert f["z"].shape == (359, 10) and f["labels"].shape == (359,)
        z_cli = f["z"]
    assert main(["export", str(run), "--out", str(tmp_path / "encoder.pt")]) == 0
    state = torch.load(tmp_path / "encoder.pt")
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    # the exported code + weights reproduce the embeddings without probssl
    script = ("import sys, torch, numpy as np; sys.modules['probssl'] = None\n"
              "sys.path.insert(0, '.'); from encoder import build_encoder\n"
              "from sklearn.datasets import load_digits\n"
              "net = build_encoder(); net.load_state_dict(torch.load('encoder.pt')); net.eval()\n"
              "x = torch.tensor(np.round(load_digits().images * 255 / 16)).float()[:, None] / 255\n"
              "np.save('z_all.npy', net(x)[:, :10].detach().numpy())\n")
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, check=True)
    z_all = np.load(tmp_path / "z_all.npy")
    from sklearn.datasets import load_digits

    from probssl.data.local import LOCAL_SPLIT_SEED, LOCAL_TEST_FRACTION, split_indices
    _, test_idx = split_indices(1797, load_digits().target, LOCAL_SPLIT_SEED,
                                LOCAL_TEST_FRACTION)
    assert np.allclose(z_all[test_idx], z_cli, atol=1e-5)


def test_config_file_and_flag_override(tmp_path, capsys):
    (tmp_path / "c.toml").write_text('method = "beta-vae"\ndataset = "digits"\nepochs = 1\n'
                                     'lr = 0.002\n[params]\nlikelihood = "bernoulli"\n')
    code = main(["train", "--config", str(tmp_path / "c.toml"), "--epochs", "2", "--set",
                 "beta=2.5", "--out", str(tmp_path / "r"), "--no-progress"])
    assert code == 0
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["train"]["epochs"] == 2 and cfg["train"]["lr"] == 0.002
    assert cfg["method"]["beta"] == 2.5 and cfg["method"]["likelihood"] == "bernoulli"


def test_yaml_config(tmp_path):
    (tmp_path / "c.yaml").write_text("method: random\ndataset: digits\nparams:\n  latent_dim: 4\n")
    assert main(["train", "--config", str(tmp_path / "c.yaml"), "--out",
                 str(tmp_path / "r")]) == 0
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["method"]["latent_dim"] == 4


def test_beta_vae_defaults_to_beta_4(tmp_path):
    assert main(["train", "--method", "beta-vae", "--epochs", "1", "--out",
                 str(tmp_path / "r"), "--no-progress"]) == 0
    assert json.loads((tmp_path / "r" / "config.json").read_text())["method"]["beta"] == 4.0


def test_resume_extends_training(tmp_path):
    assert main(["train", "--epochs", "1", "--out", str(tmp_path / "r"), "--no-progress"]) == 0
    assert main(["train", "--epochs", "2", "--out", str(tmp_path / "r"), "--resume",
                 "--no-progress"]) == 0
    rows = (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [1, 2]


def _write(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    return str(tmp_path / name)


BAD_INPUTS = {
    "unknown method": (["train", "--method", "simclrr", "--out", "{t}/r"], "unknown method"),
    "unknown dataset": (["train", "--dataset", "mnistt", "--out", "{t}/r"], "unknown dataset"),
    "negative epochs": (["train", "--epochs", "-3", "--out", "{t}/r"], "epochs must be >= 0"),
    "epochs not int": (["train", "--epochs", "ten", "--out", "{t}/r"], "--epochs"),
    "zero batch": (["train", "--batch-size", "0", "--out", "{t}/r"], "batch_size"),
    "negative lr": (["train", "--lr=-1e-3", "--out", "{t}/r"], "lr must be > 0"),
    "bad device": (["train", "--device", "tpu", "--out", "{t}/r"], "device"),
    "unknown preset": (["train", "--augmentation", "heavy", "--out", "{t}/r"],
                       "augmentation preset"),
    "unknown param": (["train", "--set", "betta=2", "--out", "{t}/r"], "unknown params"),
    "param type": (["train", "--set", "beta=high", "--out", "{t}/r"], "beta"),
    "param value": (["train", "--set", "likelihood=poisson", "--out", "{t}/r"], "likelihood"),
    "set without =": (["train", "--set", "beta", "--out", "{t}/r"], "KEY=VALUE"),
    "batch > data": (["train", "--batch-size", "5000", "--out", "{t}/r"], "larger than"),
    "missing out": (["train"], "--out"),
    "unknown flag": (["train", "--epoch", "3", "--out", "{t}/r"], "unrecognized"),
    "no command": ([], "required"),
    "config missing": (["train", "--config", "{t}/none.toml", "--out", "{t}/r"],
                       "does not exist"),
    "config unknown key": (["train", "--config", "{t}/bad_key.toml", "--out", "{t}/r"],
                           "unknown config"),
    "config wrong type": (["train", "--config", "{t}/bad_type.toml", "--out", "{t}/r"],
                          "'epochs' must be int"),
    "config bad toml": (["train", "--config", "{t}/broken.toml", "--out", "{t}/r"],
                        "invalid TOML"),
    "config bad suffix": (["train", "--config", "{t}/c.ini", "--out", "{t}/r"], ".toml"),
    "evaluate missing run": (["evaluate", "{t}/nope"], "does not exist"),
    "evaluate not a run": (["evaluate", "{t}"], "not a probssl run"),
    "resume nothing": (["train", "--resume", "--out", "{t}/empty"], "no run to resume"),
    "download celeba": (["datasets", "download", "celeba"], "cannot be downloaded"),
    "download unknown": (["datasets", "download", "imagenet"], "unknown dataset"),
    "npz missing": (["train", "--dataset", "npz:{t}/none.npz", "--out", "{t}/r"],
                    "does not exist"),
    "knn metric": (["evaluate", "{t}", "--knn-metric", "manhattan"], "knn metric"),
    "balls zero seeds": (["experiment", "moving-balls", "--n-seeds", "0", "--out", "{t}/r"],
                         "--n-seeds"),
    "bench seeds and count": (["bench", "--methods", "vae", "--datasets", "digits", "--seeds",
                               "0", "--n-seeds", "2", "--out", "{t}/g"], "not allowed with"),
    "throughput with grid flags": (["bench", "--methods", "vae", "--datasets", "digits",
                                    "--quick", "--out", "{t}/g"], "bench throughput"),
    "balls seeds word": (["experiment", "moving-balls", "--seeds", "five", "--out", "{t}/r"],
                         "--seeds"),
    "balls method": (["experiment", "moving-balls", "--methods", "rbf,linear", "--out",
                      "{t}/r"], "unknown method 'linear'"),
    "balls kind": (["experiment", "moving-balls", "--balls", "striped", "--out", "{t}/r"],
                   "coloured"),
    "balls too few frames": (["experiment", "moving-balls", "--frames", "20", "--out", "{t}/r"],
                             "too few training pairs"),
    "balls negative lr": (["experiment", "moving-balls", "--lr=-0.1", "--out", "{t}/r"],
                          "lr > 0"),
    "simvae one view": (["train", "--method", "simvae", "--set", "n_views=1", "--out",
                         "{t}/r"], "n_views must be >= 2"),
    "unknown train preset": (["train", "--preset", "fastest", "--out", "{t}/r"], "unknown preset"),
    "cr-vae three views": (["train", "--method", "cr-vae", "--set", "n_views=3", "--out",
                            "{t}/r"], "n_views must be 2"),
    "moco momentum": (["train", "--method", "moco", "--set", "momentum=1.5", "--out",
                       "{t}/r"], "momentum"),
    "simclr temperature": (["train", "--method", "simclr", "--set", "temperature=0", "--out",
                            "{t}/r"], "temperature must be > 0"),
    "vicreg negative coeff": (["train", "--method", "vicreg", "--set", "std_coeff=-1",
                               "--out", "{t}/r"], "std_coeff"),
    "simvae objective": (["train", "--method", "simvae", "--set", "objective=mle", "--out",
                          "{t}/r"], "objective"),
    "bench no methods": (["bench", "--methods", ",", "--datasets", "digits", "--out", "{t}/r"],
                         "at least one method"),
    "report not a grid": (["report", "{t}", "--out", "{t}/r.md"], "not a bench grid"),
    "train-decoder missing run": (["train-decoder", "{t}/nope"], "does not exist"),
    "sample zero per class": (["sample", "{t}/nope", "--per-class", "0"], "--per-class"),
    "figure missing run": (["figure", "reconstructions", "{t}/nope", "--out", "{t}/r"],
                           "does not exist"),
    "demo zero epochs": (["demo", "--epochs", "0", "--out", "{t}/r"], "--epochs"),
    "gmm negative restarts": (["evaluate", "{t}", "--gmm-n-init", "-1"], "--gmm-n-init"),
    "balls zero length scale": (["experiment", "moving-balls", "--length-scale", "0", "--out",
                                 "{t}/r"], "must be positive"),
    "unknown experiment": (["experiment", "bouncing-cubes"], "invalid choice"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_exit_2(name, tmp_path, capsys):
    _write(tmp_path, "bad_key.toml", "epochz = 3\n")
    _write(tmp_path, "bad_type.toml", 'epochs = "many"\n')
    _write(tmp_path, "broken.toml", "epochs = = 3\n")
    _write(tmp_path, "c.ini", "[x]\n")
    (tmp_path / "empty").mkdir()
    args, expected = BAD_INPUTS[name]
    args = [a.replace("{t}", str(tmp_path)) for a in args]
    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1, err
    assert err[0].startswith("probssl") and expected in err[0], err[0]
    assert not (tmp_path / "r").exists()  # nothing written for a rejected run


def test_bad_input_in_a_real_process_has_no_traceback(tmp_path):
    p = run_cli("train", "--method", "nope", "--out", tmp_path / "r")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_help_of_every_command():
    for cmd in (["--help"], ["train", "--help"], ["evaluate", "--help"], ["embed", "--help"],
                ["export", "--help"], ["datasets", "--help"], ["methods", "--help"],
                ["demo", "--help"]):
        with pytest.raises(SystemExit) as exc:
            main(cmd)
        assert exc.value.code == 0


def test_datasets_and_methods_lists(capsys):
    assert main(["datasets", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("mnist", "fashion-mnist", "cifar10", "celeba", "digits", "mnist-test",
                 "folder:PATH", "npz:FILE"):
        assert name in out
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert "vae" in out and "beta-vae" in out and "random" in out
