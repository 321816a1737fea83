"""Shared assertion for the bad-input corpus: a command given bad input prints exactly one
line on stderr, starting with ``probssl``, naming what is wrong, and returns exit status 2
(never a traceback)."""

from __future__ import annotations

from probssl.cli import main


def assert_one_line_error(argv: list[str], expected: str, capsys, code: int = 2) -> str:
    """Run ``main(argv)`` in-process; assert exit ``code``, one stderr line containing
    ``expected`` (case-insensitive) and no traceback. Returns the line."""
    capsys.readouterr()
    got = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert got == code, (got, err)
    assert len(lines) == 1, lines
    assert lines[0].startswith("probssl"), lines[0]
    assert expected.lower() in lines[0].lower(), (expected, lines[0])
    return lines[0]
