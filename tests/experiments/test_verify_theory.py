"""The theory suite: every identity holds; the CLI writes the table as JSON."""

from __future__ import annotations

import json

import pytest
import torch

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


def test_a_new_critic_moves_no_other_row(monkeypatch):
    """Each check and each critic draws from a generator of its own: registering one more
    critic adds its row and leaves every other measured value exactly as it was."""
    import probssl.experiments.verify_theory as vt

    def measured(critics):
        monkeypatch.setattr(vt, "CRITICS", critics)
        return {r.identity: r.measured for r in vt.verify_theory(seed=0, scale=0.1)}

    every = list(vt.CRITICS)
    fewer = measured([c for c in every if c != "cosine"])
    torch.manual_seed(12345)  # the global generator's state before a run moves no row either
    torch.rand(7)
    more = measured(every)
    assert set(more) - set(fewer) == {"I_N <= log N (cosine critic, every batch)"}
    # equal up to float reassociation (the classifier row differs by 1e-13 run to run)
    assert all(more[k] == pytest.approx(v, rel=1e-9, abs=1e-12) for k, v in fewer.items())
