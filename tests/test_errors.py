"""exception_line: every one-line error built from a foreign exception goes through it."""

from probssl.errors import exception_line


def test_exception_line_is_one_line_bounded_and_never_empty():
    multi = ValueError("while parsing a block mapping\n  in line 1\nexpected <block end>")
    assert exception_line(multi) == "while parsing a block mapping"
    assert exception_line(multi, all_lines=True) == \
        "while parsing a block mapping in line 1 expected <block end>"
    assert exception_line(KeyError()) == "KeyError"  # no message: its type, never ""
    assert exception_line(RuntimeError("x" * 500), 50) == "x" * 47 + "..."
    assert exception_line(TypeError("bad"), with_type=True) == "TypeError: bad"
    assert "\n" not in exception_line(RuntimeError("\n\n  size mismatch\nfor weight"))
