"""Bad command-line input, config files, numbers, devices and output paths: one line on
stderr naming what is wrong, exit status 2, no traceback, nothing written — plus hypothesis
fuzzing of config files and ``--set`` values, and the last-resort handler for bugs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probssl.cli import main
from tests.badinput import assert_one_line_error

TRAIN = ["train", "--method", "vae", "--dataset", "digits", "--epochs", "1", "--no-progress"]
NO_CUDA = not torch.cuda.is_available()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One tiny trained run, copied by the tests that need it."""
    out = tmp_path_factory.mktemp("trained") / "run"
    assert main([*TRAIN, "--out", str(out)]) == 0
    return out


def _files(t: Path) -> None:
    (t / "cfg").mkdir()
    writes = {
        "params_int.toml": "method = 'vae'\nparams = 5\n",
        "params_list.toml": "method = 'vae'\nparams = [1, 2]\n",
        "params_str.json": '{"method": "vae", "params": "beta=4"}',
        "top_list.json": "[1, 2, 3]",
        "top_str.yaml": "just a string\n",
        "deep.json": "[" * 100_000 + "]" * 100_000,
        "deep_params.json": '{"params": ' + '{"a": ' * 200 + "1" + "}" * 200 + "}",
        "deep.yaml": "a: " + "[" * 5000 + "]" * 5000 + "\n",
        "deep.toml": "a = " + "[" * 5000 + "]" * 5000 + "\n",
        "huge_epochs.toml": "epochs = 99999999999999999999\n",
        "huge_seed.toml": "seed = 4294967296\n",
        "huge_seed.json": '{"seed": ' + "9" * 400 + "}",
        "nan_lr.toml": "lr = nan\n",
        "inf_lr.toml": "lr = inf\n",
        "nan_beta.yaml": "method: beta-vae\nparams:\n  beta: .nan\n",
        "nan_lr.json": '{"lr": NaN}',
        "inf_aug.json": '{"aug_strength": Infinity}',
        "bool_epochs.toml": "epochs = true\n",
        "float_epochs.toml": "epochs = 2.5\n",
        "date.yaml": "seed: 2024-01-01\n",
        "int_key.yaml": "1: 2\n",
        "method_list.toml": "method = ['vae']\n",
        "dataset_int.toml": "dataset = 3\n",
        "preset_int.toml": "preset = 3\n",
        "big_float.json": '{"lr": 1e999}',
        "huge_int_float.json": '{"lr": ' + "9" * 400 + "}",
    }
    for name, text in writes.items():
        (t / "cfg" / name).write_text(text)
    (t / "cfg" / "latin1.toml").write_bytes("epochs = 3 # caf\xe9\n".encode("latin-1"))
    (t / "cfg" / "binary.toml").write_bytes(b"\x00\x01\x02\xff" * 50)
    (t / "cfg" / "utf16.json").write_bytes('{"epochs": 3}'.encode("utf-16"))
    (t / "cfg" / "dir.toml").mkdir()
    (t / "afile").write_text("not a directory\n")


C = "{t}/cfg/"
R = ["--out", "{t}/r"]
CASES: dict[str, tuple[list[str], str]] = {
    # config files with values of the wrong shape
    "params is an int": (["train", "--config", C + "params_int.toml", *R], "'params' must be"),
    "params is a list": (["train", "--config", C + "params_list.toml", *R], "'params' must be"),
    "params is a string": (["train", "--config", C + "params_str.json", *R], "'params' must"),
    "top level is a list": (["train", "--config", C + "top_list.json", *R], "top level"),
    "top level is a string": (["train", "--config", C + "top_str.yaml", *R], "top level"),
    "method is a list": (["train", "--config", C + "method_list.toml", *R], "method"),
    "dataset is an int": (["train", "--config", C + "dataset_int.toml", *R], "dataset"),
    "preset is an int": (["train", "--config", C + "preset_int.toml", *R], "preset"),
    "epochs is a bool": (["train", "--config", C + "bool_epochs.toml", *R], "epochs"),
    "epochs is a float": (["train", "--config", C + "float_epochs.toml", *R], "epochs"),
    "seed is a date": (["train", "--config", C + "date.yaml", *R], "seed"),
    "key is an int": (["train", "--config", C + "int_key.yaml", *R], "keys must be names"),
    # files that are not UTF-8 text, or not files
    "config latin-1": (["train", "--config", C + "latin1.toml", *R], "not UTF-8"),
    "config binary": (["train", "--config", C + "binary.toml", *R], "binary"),
    "config utf-16": (["train", "--config", C + "utf16.json", *R], "binary"),
    "config is a directory": (["train", "--config", C + "dir.toml", *R], "directory"),
    # pathological nesting
    "json nested 100000": (["train", "--config", C + "deep.json", *R], "nested"),
    "params nested 200": (["train", "--config", C + "deep_params.json", *R], "nested"),
    "yaml nested 5000": (["train", "--config", C + "deep.yaml", *R], "nested"),
    "toml nested 5000": (["train", "--config", C + "deep.toml", *R], "nested"),
    # integers too large, in files, flags and seed lists
    "config epochs 1e20": (["train", "--config", C + "huge_epochs.toml", *R], "epochs"),
    "config seed 2**32": (["train", "--config", C + "huge_seed.toml", *R], "seed"),
    "config seed 400 digits": (["train", "--config", C + "huge_seed.json", *R], "seed"),
    "config lr 400 digits": (["train", "--config", C + "huge_int_float.json", *R], "lr"),
    "flag seed 2**40": (["train", "--seed", str(2**40), *R], "seed"),
    "flag seed 5000 digits": (["train", "--seed", "9" * 5000, *R], "--seed"),
    "flag epochs 1e3": (["train", "--epochs", "1e3", *R], "--epochs"),
    "flag batch 10**40": (["train", "--batch-size", str(10**40), *R], "batch_size"),
    "set latent 10**30": (["train", "--set", f"latent_dim={10**30}", *R], "latent_dim"),
    "bench seeds 2**40": (["bench", "--methods", "vae", "--datasets", "digits", "--seeds",
                           str(2**40), "--out", "{t}/g"], "seed"),
    "bench seeds negative": (["bench", "--methods", "vae", "--datasets", "digits", "--seeds",
                              "0,-1", "--out", "{t}/g"], "outside"),
    "bench seeds twice": (["bench", "--methods", "vae", "--datasets", "digits", "--seeds",
                           "1,1", "--out", "{t}/g"], "twice"),
    "bench seeds words": (["bench", "--methods", "vae", "--datasets", "digits", "--seeds",
                           "0,x", "--out", "{t}/g"], "--seeds"),
    "bench n-seeds 0": (["bench", "--methods", "vae", "--datasets", "digits", "--n-seeds",
                         "0", "--out", "{t}/g"], "--n-seeds"),
    "compare seeds huge": (["compare", "--methods", "vae", "--dataset", "digits", "--seeds",
                            "9" * 30, "--out", "{t}/g"], "seed"),
    "compare seeds empty": (["compare", "--methods", "vae", "--dataset", "digits", "--seeds",
                             ",", "--out", "{t}/g"], "at least one seed"),
    "demo n-seeds -1": (["demo", "--n-seeds", "-1", "--out", "{t}/g"], "--n-seeds"),
    "balls seeds huge": (["experiment", "moving-balls", "--seeds", str(2**33), "--out",
                          "{t}/g"], "seed"),
    "eval seed huge": (["evaluate", "{run}", "--eval-seed", str(2**40)], "--eval-seed"),
    "figure seed huge": (["figure", "reconstructions", "{run}", "--seed", str(2**40),
                          "--out", "{t}/f.png"], "--seed"),
    # NaN and inf, for every float field alike
    "config lr nan": (["train", "--config", C + "nan_lr.toml", *R], "finite"),
    "config lr inf": (["train", "--config", C + "inf_lr.toml", *R], "finite"),
    "config json NaN": (["train", "--config", C + "nan_lr.json", *R], "finite"),
    "config json Infinity": (["train", "--config", C + "inf_aug.json", *R], "finite"),
    "config lr 1e999": (["train", "--config", C + "big_float.json", *R], "finite"),
    "yaml beta .nan": (["train", "--config", C + "nan_beta.yaml", *R], "finite"),
    "flag lr nan": (["train", "--lr", "nan", *R], "finite"),
    "flag lr inf": (["train", "--lr", "inf", *R], "finite"),
    "flag aug nan": (["train", "--aug-strength", "nan", *R], "finite"),
    "set beta nan": (["train", "--method", "beta-vae", "--set", "beta=nan", *R], "finite"),
    "set beta -inf": (["train", "--method", "beta-vae", "--set", "beta=-inf", *R], "finite"),
    "set temperature nan": (["train", "--method", "simclr", "--set", "temperature=nan", *R],
                            "finite"),
    "set likelihood_var inf": (["train", "--method", "simvae", "--set", "likelihood_var=inf",
                                *R], "finite"),
    "set momentum nan": (["train", "--method", "moco", "--set", "momentum=nan", *R],
                         "finite"),
    "set std_coeff nan": (["train", "--method", "vicreg", "--set", "std_coeff=NaN", *R],
                          "finite"),
    "compare lr nan": (["compare", "--methods", "vae", "--dataset", "digits", "--lr", "nan",
                        "--out", "{t}/g"], "finite"),
    "bench lr inf": (["bench", "--methods", "vae", "--datasets", "digits", "--lr", "inf",
                      "--out", "{t}/g"], "finite"),
    "balls lr nan": (["experiment", "moving-balls", "--lr", "nan", "--out", "{t}/g"],
                     "finite"),
    "balls length-scale nan": (["experiment", "moving-balls", "--length-scale", "nan", "--out",
                                "{t}/g"], "finite"),
    "balls coordinates": (["experiment", "moving-balls", "--coordinates", "polar", "--out",
                           "{t}/g"], "invalid choice"),
    "decoder lr nan": (["train-decoder", "{run}", "--lr", "nan"], "finite"),
    # sizes that cannot fit in memory: refused before allocating
    "n_views 1e6": (["train", "--method", "simvae", "--set", "n_views=1000000", *R],
                    "n_views"),
    "batch 1e7": (["train", "--method", "simvae", "--batch-size", "10000000", *R],
                  "batch"),
    "latent 2e9": (["train", "--set", "latent_dim=2000000000", *R], "latent_dim"),
    # devices, on every command that takes --device
    "train tpu": (["train", "--device", "tpu", *R], "device"),
    "train cuda:x": (["train", "--device", "cuda:x", *R], "device"),
    "evaluate tpu": (["evaluate", "{run}", "--device", "tpu"], "device"),
    "embed tpu": (["embed", "{run}", "--device", "tpu", "--out", "{t}/e.npz"], "device"),
    "compare tpu": (["compare", "--methods", "vae", "--dataset", "digits", "--device", "tpu",
                     "--out", "{t}/g"], "device"),
    "bench tpu": (["bench", "--methods", "vae", "--datasets", "digits", "--device", "tpu",
                   "--out", "{t}/g"], "device"),
    "balls tpu": (["experiment", "moving-balls", "--device", "tpu", "--out", "{t}/g"],
                  "device"),
    # output paths
    "train out empty": (["train", "--out", ""], "empty"),
    "train out blank": (["train", "--out", "  "], "empty"),
    "train out is a file": (["train", "--out", "{t}/afile"], "not a directory"),
    "train out inside a file": (["train", "--out", "{t}/afile/run"], "is a file"),
    "embed out empty": (["embed", "{run}", "--out", ""], "empty"),
    "embed out is a dir": (["embed", "{run}", "--out", "{t}/cfg"], "directory"),
    "embed out inside a file": (["embed", "{run}", "--out", "{t}/afile/e.npz"], "is a file"),
    "embed out run config": (["embed", "{run}", "--out", "{run}/config.json"], "of the run"),
    "embed out run metrics": (["embed", "{run}", "--out", "{run}/metrics.jsonl"],
                              "of the run"),
    "export out .py": (["export", "{run}", "--out", "{t}/enc.py"], "share one name"),
    "export out run config": (["export", "{run}", "--out", "{run}/config.json"], "of the run"),
    "export out metrics": (["export", "{run}", "--out", "{run}/metrics.jsonl"], "of the run"),
    "export out checkpoint": (["export", "{run}", "--out",
                               "{run}/checkpoints/epoch-0001.pt"], "of the run"),
    "export out dir": (["export", "{run}", "--out", "{t}/cfg"], "directory"),
    "export out empty": (["export", "{run}", "--out", ""], "empty"),
    "report out empty": (["report", "{t}", "--out", ""], "empty"),
    "report out dir": (["report", "{t}", "--out", "{t}/cfg"], "directory"),
    "figure out empty": (["figure", "reconstructions", "{run}", "--out", ""], "empty"),
    "figure out run config": (["figure", "reconstructions", "{run}", "--out",
                               "{run}/config.json"], "of the run"),
    "figure n 0": (["figure", "reconstructions", "{run}", "--n", "0", "--out", "{t}/f.png"],
                   "--n"),
    "figure n -1": (["figure", "reconstructions", "{run}", "--n", "-1", "--out",
                     "{t}/f.png"], "--n"),
    "figure n huge": (["figure", "reconstructions", "{run}", "--n", "100000", "--out",
                       "{t}/f.png"], "--n"),
    "sample out run meta": (["sample", "{run}", "--out", "{run}/meta.json"], "of the run"),
    "sample per-class huge": (["sample", "{run}", "--per-class", str(10**9)], "--per-class"),
    "verify scale 1e-9": (["verify-theory", "--scale", "1e-9"], "--scale"),
    "verify scale nan": (["verify-theory", "--scale", "nan"], "--scale"),
    "verify json dir": (["verify-theory", "--json", "{t}/cfg"], "directory"),
    "throughput json empty": (["bench", "throughput", "--json", ""], "empty"),
    "compare out a file": (["compare", "--methods", "vae", "--dataset", "digits", "--out",
                            "{t}/afile"], "not a directory"),
    "bench out inside file": (["bench", "--methods", "vae", "--datasets", "digits", "--out",
                               "{t}/afile/g"], "is a file"),
    "demo out a file": (["demo", "--out", "{t}/afile"], "not a directory"),
    "balls out a file": (["experiment", "moving-balls", "--out", "{t}/afile"],
                         "not a directory"),
    # other numbers checked where they enter
    "k-max 0": (["evaluate", "{run}", "--k-max", "0"], "--k-max"),
    "probe epochs huge": (["evaluate", "{run}", "--probe-epochs", str(10**12)],
                          "--probe-epochs"),
    "fid samples 1": (["evaluate", "{run}", "--fid-samples", "1"], "--fid-samples"),
    "decoder patience 0": (["train-decoder", "{run}", "--patience", "0"], "--patience"),
    "decoder epochs 0": (["train-decoder", "{run}", "--epochs", "0"], "--epochs"),
    "checkpoint-every huge": (["train", "--checkpoint-every", str(2**40), *R],
                              "checkpoint_every"),
    # resume of a finished run with fewer epochs: refused before anything is written
    "resume fewer epochs": (["train", "--out", "{run}", "--resume", "--epochs", "0"],
                            "already trained"),
    "resume different lr": (["train", "--out", "{run}", "--resume", "--epochs", "3", "--lr",
                             "0.5"], "different settings"),
    "train over a run": (["train", *TRAIN[1:], "--out", "{run}"], "already holds a run"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_cli_input_is_one_line_exit_2(name, tmp_path, run_dir, capsys):
    _files(tmp_path)
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    before = _hashes(run)
    args, expected = CASES[name]
    argv = [a.replace("{t}", str(tmp_path)).replace("{run}", str(run)) for a in args]
    assert_one_line_error(argv, expected, capsys)
    for out in ("r", "g", "e.npz", "f.png", "enc.py", "enc.pt"):
        assert not (tmp_path / out).exists(), out
    assert _hashes(run) == before  # the saved run is untouched


def _hashes(root: Path) -> dict[str, bytes]:
    import hashlib

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).digest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")
@pytest.mark.parametrize("argv", [
    ["train", "--device", "cuda", "--out", "{t}/r"],
    ["evaluate", "{run}", "--device", "cuda"],
    ["embed", "{run}", "--device", "cuda:0", "--out", "{t}/e.npz"],
    ["compare", "--methods", "vae", "--dataset", "digits", "--device", "cuda", "--out",
     "{t}/g"],
    ["bench", "--methods", "vae", "--datasets", "digits", "--device", "cuda", "--out", "{t}/g"],
    ["experiment", "moving-balls", "--device", "cuda", "--out", "{t}/g"],
], ids=["train", "evaluate", "embed", "compare", "bench", "moving-balls"])
def test_cuda_without_cuda_is_one_line(argv, tmp_path, run_dir, capsys):
    argv = [a.replace("{t}", str(tmp_path)).replace("{run}", str(run_dir)) for a in argv]
    assert_one_line_error(argv, "CUDA is not available", capsys)


def test_vicreg_with_a_last_batch_of_one_trains(tmp_path, capsys):
    # 1,438 digits training images, batch 479: the last image joins the previous batch
    assert main(["train", "--method", "vicreg", "--dataset", "digits", "--epochs", "1",
                 "--batch-size", "479", "--out", str(tmp_path / "r"), "--no-progress"]) == 0
    row = json.loads((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[0])
    assert row["loss"] == row["loss"]  # finite, not NaN


def test_resume_with_as_many_epochs_is_a_no_op(tmp_path, run_dir, capsys):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    before = _hashes(run)
    assert main(["train", "--out", str(run), "--resume", "--epochs", "1", "--no-progress"]) == 0
    assert _hashes(run) == before


def test_seeds_is_a_list_everywhere_and_is_announced(tmp_path, capsys):
    from probssl.cli import build_parser
    from probssl.cli.common import seeds_of as _seeds

    parser = build_parser()
    for argv in (["bench", "--methods", "vae", "--datasets", "digits"],
                 ["compare", "--methods", "vae", "--dataset", "digits", "--out", "x"],
                 ["experiment", "moving-balls"], ["demo"]):
        args = parser.parse_args([*argv, "--seeds", "3"])
        assert _seeds(args, "x") == (3,)
        args = parser.parse_args([*argv, "--n-seeds", "3"])
        assert _seeds(args, "x") == (0, 1, 2)
    assert "x: seeds 0, 1, 2" in capsys.readouterr().out


def test_internal_error_is_one_line_exit_1_with_a_crash_log(tmp_path, monkeypatch, capsys):
    import probssl.cli.methods as cli

    def boom(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli, "cmd_methods", boom)
    code = main(["methods"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert "internal error: ZeroDivisionError: a bug" in err[0]
    log = Path(err[0].split("full traceback in ")[1].split(";")[0])
    assert "Traceback" in log.read_text() and "boom" in log.read_text()
    log.unlink()
    with pytest.raises(ZeroDivisionError):  # --debug: the traceback itself
        main(["--debug", "methods"])


# -- fuzzing -------------------------------------------------------------------------------

KEYS = ["method", "dataset", "epochs", "batch_size", "lr", "seed", "aug_strength", "views",
        "device", "preset", "params", "augmentation", "checkpoint_every", "keep_checkpoints",
        "weight_decay", "adam_eps", "bogus"]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                    st.sampled_from(["vae", "simvae", "digits", "nan", "cpu", "tpu", "paper",
                                     "quick", "augment", "1e400", "-1", "0"]))
VALUES = st.recursive(SCALARS, lambda c: st.lists(c, max_size=3) |
                      st.dictionaries(st.sampled_from(["beta", "latent_dim", "n_views", "x"]),
                                      c, max_size=3), max_leaves=6)


def _exit_0_or_one_line_2(argv, capsys) -> None:
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err, err
    assert code in (0, 2), (code, err)
    if code == 2:
        assert len(err.strip().splitlines()) == 1, err


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cfg=st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=5),
       fmt=st.sampled_from(["json", "yaml", "toml"]))
def test_fuzz_config_files(cfg, fmt, tmp_path_factory, capsys):
    import yaml

    t = tmp_path_factory.mktemp("fz")
    path = t / f"c.{fmt}"
    if fmt == "json":
        path.write_text(json.dumps(cfg))
    elif fmt == "yaml":
        path.write_text(yaml.safe_dump(cfg))
    else:  # TOML cannot hold None or mixed lists: write what it can, raw text otherwise
        path.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in cfg.items()) + "\n")
    _exit_0_or_one_line_2(["train", "--config", str(path), "--epochs", "0", "--out",
                           str(t / "r"), "--no-progress"], capsys)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(["vae", "beta-vae", "simvae", "simclr", "moco", "vicreg",
                               "cr-vae", "rpm"]),
       key=st.sampled_from(["beta", "latent_dim", "n_views", "temperature", "likelihood_var",
                            "momentum", "std_coeff", "critic", "prior", "arch", "likelihood",
                            "queue_size", "bogus"]),
       value=st.one_of(st.text(max_size=20), st.integers(-2**80, 2**80).map(str),
                       st.floats().map(str),
                       st.sampled_from(["nan", "inf", "-inf", "1e999", "0", "-0", "none",
                                        "true", "(1,2)", "rbf", "mlp", "resnet"])))
def test_fuzz_set_values(method, key, value, tmp_path_factory, capsys):
    t = tmp_path_factory.mktemp("fz")
    _exit_0_or_one_line_2(["train", "--method", method, "--set", f"{key}={value}", "--epochs",
                           "0", "--out", str(t / "r"), "--no-progress"], capsys)
