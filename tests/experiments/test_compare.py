"""`probssl compare`: trains and evaluates each cell once, tabulates mean ± s.e."""

from __future__ import annotations

import json

from probssl.cli import main


def test_compare_writes_table_and_never_reruns_a_finished_cell(tmp_path, capsys):
    args = ["compare", "--methods", "vae,random", "--dataset", "digits", "--seeds", "0,1",
            "--epochs", "2", "--probe-epochs", "2", "--gmm-n-init", "1", "--device", "cpu",
            "--out", str(tmp_path)]
    assert main(args) == 0
    table = (tmp_path / "table.md").read_text()
    assert "| vae |" in table and "| random |" in table and "±" in table
    assert "Command: `" in table and "Machine:" in table and "Protocol:" in table
    results = json.loads((tmp_path / "results.json").read_text())
    assert len(results["per_seed"]["vae"]) == 2
    ckpt = tmp_path / "vae-digits-seed0" / "checkpoints" / "epoch-0002.pt"
    stamp = ckpt.stat().st_mtime_ns
    evals = (tmp_path / "vae-digits-seed0" / "eval.json").read_text()
    capsys.readouterr()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "training for" not in out  # nothing retrained
    assert ckpt.stat().st_mtime_ns == stamp
    assert (tmp_path / "vae-digits-seed0" / "eval.json").read_text() == evals


def test_compare_rejects_bad_seeds_and_methods(tmp_path, capsys):
    assert main(["compare", "--methods", "vae,nope", "--dataset", "digits", "--out",
                 str(tmp_path)]) == 2
    assert main(["compare", "--methods", "vae", "--dataset", "digits", "--seeds", "a,b",
                 "--out", str(tmp_path)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 2
