"""The theory suite: every identity holds; the CLI writes the table as JSON."""

from __future__ import annotations

import json

from probssl.cli import main
from probssl.experiments.verify_theory import verify_theory


def test_every_identity_holds_with_two_seeds():
    for seed in (0, 1):
        rows = verify_theory(seed=seed, scale=0.5)
        failed = [r.identity for r in rows if not r.passed]
        assert not failed, failed
        assert len(rows) >= 20


def test_verify_theory_cli_json(tmp_path, capsys):
    assert main(["verify-theory", "--scale", "0.3", "--json", str(tmp_path / "t.json")]) == 0
    rows = json.loads((tmp_path / "t.json").read_text())
    assert {"identity", "equation", "expected", "measured", "se", "tolerance", "pass"} <= set(
        rows[0])
    assert all(isinstance(r["pass"], bool) for r in rows)
    assert "identities hold" in capsys.readouterr().out
