"""Convergence rule, paired differences and the merged curves report of `probssl report`."""

import pytest

from probssl.cli import main
from probssl.errors import UserError
from probssl.experiments.convergence import (
    Cell,
    convergence,
    paired,
    rankme_lines,
    report_lines,
)


def _cell(seed, curve, label="m", **result):
    return Cell(label, "d", seed, {"epochs": max(e for e, _ in curve), **result}, curve)


def test_convergence_rule_is_change_over_last_fifth_within_one_standard_error():
    # three seeds flat over epochs 8-10 (window starts at the first logged epoch >= 8)
    flat = {s: _cell(s, [(2, 0.5), (4, 0.7), (6, 0.8), (8, 0.90 + d), (10, 0.90 + d)])
            for s, d in enumerate((0.00, 0.01, 0.02))}
    v = convergence(flat)
    assert (v["window_start"], v["last_epoch"]) == (8, 10)
    assert v["final_mean"] == pytest.approx(0.91)
    assert v["final_se"] == pytest.approx(0.01 / 3 ** 0.5)  # stdev 0.01 over 3 seeds
    assert v["delta_mean"] == pytest.approx(0.0) and v["converged"]
    # still rising by 3 points over the window, with seeds 1 point apart: not converged
    rising = {s: _cell(s, [(5, 0.5), (8, 0.87 + d), (10, 0.90 + d)])
              for s, d in enumerate((0.00, 0.01, 0.02))}
    v = convergence(rising)
    assert v["delta_mean"] == pytest.approx(0.03) and not v["converged"]
    # one seed has no standard error: never called converged; no curve: no verdict
    assert not convergence({0: _cell(0, [(8, 0.9), (10, 0.9)])})["converged"]
    assert convergence({0: Cell("m", "d", 0, {"epochs": 3})}) is None


def test_paired_differences_use_common_seeds_and_count_wins():
    a = {s: _cell(s, [(1, 0.0)], knn_best=x) for s, x in enumerate((0.90, 0.92, 0.91, 0.5))}
    b = {s: _cell(s, [(1, 0.0)], knn_best=x) for s, x in enumerate((0.88, 0.93, 0.89))}
    mean, se, wins, n = paired(a, b, "knn_best", 100)
    assert n == 3 and wins == 2  # seed 3 has no partner
    assert mean == pytest.approx((2 - 1 + 2) / 3)
    assert paired(a, b, "mse", 1000) is None


def test_report_lines_name_unconverged_runs_and_reject_an_unknown_reference():
    cells = [_cell(s, [(5, 0.5), (8, 0.8 + s / 100), (10, 0.9 + s / 100)], "vae",
                   knn_best=0.9) for s in range(3)]
    text = "\n".join(report_lines(cells))
    assert "| vae | 0,1,2 | 10 | 90.0 ± 0.0 |" in text and "**no**" in text
    with pytest.raises(UserError, match="--paired-with 'simvae'.*labels are vae"):
        report_lines(cells, "simvae")


def test_report_merges_grids_with_curves_and_paired_differences(tmp_path):
    common = ["--datasets", "digits", "--seeds", "0,1", "--preset", "quick", "--epochs", "2",
              "--eval-every", "1", "--device", "cpu", "--probe-epochs", "1", "--gmm-n-init",
              "0", "--no-mlp-probe", "--fid-features", "none", "--no-progress"]
    assert main(["bench", "--methods", "vae", "--out", str(tmp_path / "a"), *common]) == 0
    assert main(["bench", "--methods", "simclr", "--sweep", "J=2", "--out",
                 str(tmp_path / "b"), *common]) == 0
    out = tmp_path / "merged.md"
    assert main(["report", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out),
                 "--paired-with", "vae"]) == 0
    text = out.read_text()
    assert "| vae | 0,1 | 2 |" in text and "| simclr n_views=2 | 0,1 | 2 |" in text
    assert "## Convergence on digits" in text and "## Paired differences on digits" in text
    assert "(simclr n_views=2)" not in text and "| simclr n_views=2 |" in text
    assert (tmp_path / "merged-curves.png").stat().st_size > 0
    # one grid: the paper-layout report, then the curves sections appended
    assert main(["report", str(tmp_path / "a"), "--out", str(tmp_path / "one.md")]) == 0
    one = (tmp_path / "one.md").read_text()
    assert "Table 1: MLP probe / kNN" in one and "## Convergence on digits" in one
    # --out inside a grid is refused before anything is written
    assert main(["report", str(tmp_path / "a"), str(tmp_path / "b"), "--out",
                 str(tmp_path / "b" / "grid.json")]) == 2


def test_rankme_correlation_is_spearman_over_runs_and_silent_below_four():
    cells = [_cell(s, [(1, 0.0)], knn_best=k, rankme=r)
             for s, (k, r) in enumerate([(0.9, 8.0), (0.8, 6.0), (0.7, 7.0), (0.5, 2.0)])]
    line = rankme_lines(cells, "d")[0]
    assert "Spearman ρ = 0.80 over 4 runs" in line
    assert rankme_lines(cells[:3], "d") == []


def test_factor_table_gives_mean_se_and_the_seeds_values():
    from probssl.experiments.convergence import Cell, factor_lines

    def cell(seed, x, colour):
        return Cell("simclr", "shapes", seed, {"factors": {
            "x": {"metric": "r2", "value": x}, "colour": {"metric": "accuracy",
                                                          "value": colour}}})

    lines = factor_lines({"simclr": {0: cell(0, 0.02, 0.9), 1: cell(1, 0.04, 1.0)}}, "shapes")
    assert "| run | seeds | x | colour |" in lines
    row = next(ln for ln in lines if ln.startswith("| simclr"))
    assert "3.0 ± 1.0 [2.0, 4.0]" in row and "95.0 ± 5.0 [90.0, 100.0]" in row
    assert factor_lines({"vae": {0: Cell("vae", "digits", 0, {})}}, "digits") == []
