"""``--help`` of every ``probssl`` command exits 0: parametrised over the parser's own
subcommands (nested ones included), so a new command is covered without editing this file."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from probssl.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from _commands(sub, (*prefix, name))


COMMANDS = sorted(set(_commands(build_parser())))


def test_every_command_group_is_listed():
    names = {c[0] for c in COMMANDS}
    assert {"train", "evaluate", "embed", "export", "datasets", "methods", "compare", "bench",
            "report", "verify-theory", "sample", "train-decoder", "figure", "experiment",
            "demo"} <= names
    assert ("experiment", "moving-balls") in COMMANDS
    assert ("figure", "reconstructions") in COMMANDS


@pytest.mark.parametrize("command", [(), *COMMANDS], ids=lambda c: " ".join(c) or "probssl")
def test_help_exits_0(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: probssl"), out[:200]


def test_help_in_a_real_process():
    p = subprocess.run([sys.executable, "-m", "probssl", "--help"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "usage: probssl" in p.stdout and "train" in p.stdout and not p.stderr
