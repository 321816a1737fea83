"""bench grids are resumable and validated up front; report lays out the paper's tables."""


import json

import numpy as np
import pytest

from probssl.cli import main
from probssl.evaluate import EvalConfig
from probssl.evaluate.rankme import rankme
from probssl.experiments.bench import parse_sweep, plan_grid, run_grid
from probssl.experiments.report import write_report

EVAL = EvalConfig(probe_epochs=3, gmm_n_init=1)


def _plan(**kw):
    return plan_grid(["vae", "random"], ["digits"], [0, 1], preset="quick", epochs=1,
                     train_overrides={"device": "cpu"}, **kw)


def test_grid_runs_resumes_and_reports(tmp_path):
    out = tmp_path / "grid"
    results = run_grid(_plan(), out, EVAL, progress=False, log=lambda *_: None)
    assert len(results) == 4 and all("knn_best" in r and "gmm_accuracy" in r for r in results)
    assert "mse" in results[0] and "mse" not in results[1]  # vae has a decoder, random not
    ckpt = sorted((out / "runs" / "vae__digits__seed0" / "checkpoints").iterdir())[-1]
    stamp = ckpt.stat().st_mtime_ns
    # a lost result (as after a kill between training and evaluation) is recomputed; the
    # finished training is not repeated
    (out / "runs" / "vae__digits__seed1" / "result.json").unlink()
    # an evaluation from before RankMe existed gets it from the cached embeddings
    ev_path = out / "runs" / "vae__digits__seed1" / "eval.json"
    ev = json.loads(ev_path.read_text())
    ev.pop("rankme")
    ev_path.write_text(json.dumps(ev))
    logs = []
    again = run_grid(_plan(), out, EVAL, progress=False, log=logs.append)
    assert not any("training" in line for line in logs)
    assert ckpt.stat().st_mtime_ns == stamp
    assert [r["knn_best"] for r in again] == [r["knn_best"] for r in results]
    z = np.load(out / "runs" / "vae__digits__seed1" / "embeddings" / "train.npz")["z"]
    vae1 = next(r for r in again if r["cell"] == "vae__digits__seed1")
    assert vae1["rankme"] == pytest.approx(rankme(z)) and 1 <= vae1["rankme"] <= 10
    assert all("rankme" in r for r in again)
    # a finished cell's result from before RankMe existed gets it too, without retraining
    res_path = out / "runs" / "vae__digits__seed0" / "result.json"
    res = json.loads(res_path.read_text())
    want = res.pop("rankme")
    # ... and so does one from before the held-out likelihood existed (a VAE: a density
    # model; the random encoder is not one and gets none)
    want_ll = (res.pop("heldout_elbo"), res.pop("iwae_ll"))
    res_path.write_text(json.dumps(res))
    third = run_grid(_plan(), out, EVAL, progress=False, log=logs.append)
    vae0 = next(r for r in third if r["cell"] == "vae__digits__seed0")
    assert vae0["rankme"] == pytest.approx(want)
    assert (vae0["heldout_elbo"], vae0["iwae_ll"]) == pytest.approx(want_ll)
    assert want_ll[1] > want_ll[0]  # the importance-weighted bound is the tighter one
    assert "iwae_ll" not in next(r for r in third if r["cell"] == "random__digits__seed0")
    assert "rankme" in json.loads(res_path.read_text())
    report = write_report(out, tmp_path / "report.md").read_text()
    assert "Table 1: MLP probe / kNN" in report and "Table 6: NMI / ARI" in report
    assert "| vae |" in report and "| random |" in report and "not finished" not in report
    # an unfinished cell is left out of the report, and said so
    (out / "runs" / "random__digits__seed1" / "result.json").unlink()
    assert "1 of 4 cells are not finished" in write_report(out, tmp_path / "r2.md").read_text()


def test_sweep_parses_and_bad_cells_fail_before_training(tmp_path):
    assert parse_sweep("J=2,4") == ("n_views", ["2", "4"])
    plan = plan_grid(["simvae"], ["digits"], [0], preset="quick", sweep=parse_sweep("J=2,3"))
    assert [cfg.params["n_views"] for _, cfg in plan] == [2, 3]
    code = main(["bench", "--methods", "simvae", "--datasets", "digits", "--sweep", "J=1,2",
                 "--out", str(tmp_path / "g")])
    assert code == 2 and not (tmp_path / "g").exists()


@pytest.mark.parametrize("args,msg", [
    (["--sweep", "J"], "KEY=V1"),
    (["--sweep", "nonsense=1"], "no parameter"),
    (["--datasets", "imagenet"], "unknown dataset"),
])
def test_bench_bad_input(args, msg, tmp_path, capsys):
    base = ["bench", "--methods", "vae", "--datasets", "digits", "--out", str(tmp_path / "g")]
    # later flags win in argparse, so the case's own --datasets replaces the default one
    assert main(base + args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and msg in err[0]


def test_report_of_a_non_grid_is_a_user_error(tmp_path, capsys):
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r.md")]) == 2
    assert "not a bench grid" in capsys.readouterr().err


def _celeba_folder(root, n=24):
    """A CelebA folder in the official layout with the real attribute header."""
    import numpy as np
    from PIL import Image

    from probssl.data.celeba import ATTRIBUTE_NAMES

    (root / "img_align_celeba").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows, parts = [], []
    for i in range(n):
        f = f"{i + 1:06d}.jpg"
        Image.fromarray(rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)).save(
            root / "img_align_celeba" / f)
        values = rng.choice(["1", "-1"], size=len(ATTRIBUTE_NAMES))
        rows.append(f"{f} " + " ".join(values))
        parts.append(f"{f} {0 if i < 16 else 2}")
    (root / "list_attr_celeba.txt").write_text(
        f"{n}\n" + " ".join(ATTRIBUTE_NAMES) + "\n" + "\n".join(rows) + "\n")
    (root / "list_eval_partition.txt").write_text("\n".join(parts) + "\n")


def test_celeba_grid_reports_attributes_hair_colour_and_fid(tmp_path):
    _celeba_folder(tmp_path / "celeba")
    plan = plan_grid(["vae"], ["celeba"], [0], preset="quick", epochs=1,
                     train_overrides={"device": "cpu", "batch_size": 8,
                                      "data_dir": str(tmp_path / "celeba")})
    ev = EvalConfig(probe_epochs=2, gmm_n_init=1, k_max=3, fid_samples=8)
    (res,) = run_grid(plan, tmp_path / "grid", ev, progress=False, log=lambda *_: None)
    assert len(res["attributes"]["attributes"]) == 20 and "fid" in res
    out = write_report(tmp_path / "grid", tmp_path / "report.md")
    text = out.read_text()
    assert "Attributes on celeba" in text and "hair colour (5 classes)" in text
    assert "MSE per pixel (×1000) / FID" in text and "not comparable" in text
    assert (tmp_path / "report-attributes.png").stat().st_size > 0


def test_bench_eval_every_logs_online_knn_in_every_cell(tmp_path):
    """`bench --eval-every N` gives every cell the online k-NN callback (the learning curves
    of RESULTS.md's converged comparisons come from it)."""
    out = tmp_path / "grid"
    assert main(["bench", "--methods", "vae", "--datasets", "digits", "--seeds", "0",
                 "--preset", "quick", "--epochs", "2", "--eval-every", "1", "--device", "cpu",
                 "--probe-epochs", "1", "--gmm-n-init", "0", "--no-mlp-probe",
                 "--fid-features", "none", "--no-progress", "--augmentation", "mnist-vflip",
                 "--out", str(out)]) == 0
    rows = [json.loads(line) for line in
            (out / "runs" / "vae__digits__seed0" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(0 < r["knn_val"] <= 1 for r in rows)
    config = json.loads((out / "runs" / "vae__digits__seed0" / "config.json").read_text())
    assert config["train"]["eval_every"] == 1
    assert config["train"]["augmentation"] == "mnist-vflip"


def test_external_encoders_are_rows_beside_trained_methods(tmp_path, vae_digits_run):
    """`bench --encoder NAME=SPEC`: an encoder from outside probssl sits in the same tables as
    the trained methods, under the same protocol; a re-run reuses its result."""
    assert main(["export", str(vae_digits_run), "--out", str(tmp_path / "theirs.pt")]) == 0
    out = tmp_path / "grid"
    args = ["bench", "--methods", "random", "--datasets", "digits", "--seeds", "0",
            "--preset", "quick", "--device", "cpu", "--probe-epochs", "2", "--gmm-n-init", "1",
            "--no-mlp-probe", "--fid-features", "none", "--no-progress", "--out", str(out),
            "--encoder", f"theirs={tmp_path / 'theirs.pt'}"]
    assert main(args) == 0
    res = json.loads((out / "runs" / "theirs__digits__seed0" / "result.json").read_text())
    assert res["method"] == "theirs" and res["encoder"]["format"] == "probssl-export"
    assert res["input"]["range"] == "0-1" and 0 < res["knn_best"] <= 1
    stamp = (out / "runs" / "theirs__digits__seed0" / "result.json").stat().st_mtime_ns
    assert main(args) == 0  # nothing re-evaluated
    assert (out / "runs" / "theirs__digits__seed0" / "result.json").stat().st_mtime_ns == stamp
    report = write_report(out, tmp_path / "r.md").read_text()
    assert "| theirs |" in report and "| random |" in report
    assert main(args[:-1] + ["random=x.pt"]) == 2  # a row named like a method
