"""bench grids are resumable and validated up front; report lays out the paper's tables."""


import pytest

from probssl.cli import main
from probssl.evaluate import EvalConfig
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
    logs = []
    again = run_grid(_plan(), out, EVAL, progress=False, log=logs.append)
    assert not any("training" in line for line in logs)
    assert ckpt.stat().st_mtime_ns == stamp
    assert [r["knn_best"] for r in again] == [r["knn_best"] for r in results]
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
