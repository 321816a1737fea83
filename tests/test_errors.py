"""exception_line: every one-line error built from a foreign exception goes through it."""

import pytest

from probssl.errors import UserError, exception_line


def test_exception_line_is_one_line_bounded_and_never_empty():
    multi = ValueError("while parsing a block mapping\n  in line 1\nexpected <block end>")
    assert exception_line(multi) == "while parsing a block mapping"
    assert exception_line(multi, all_lines=True) == \
        "while parsing a block mapping in line 1 expected <block end>"
    assert exception_line(KeyError()) == "KeyError"  # no message: its type, never ""
    assert exception_line(RuntimeError("x" * 500), 50) == "x" * 47 + "..."
    assert exception_line(TypeError("bad"), with_type=True) == "TypeError: bad"
    assert "\n" not in exception_line(RuntimeError("\n\n  size mismatch\nfor weight"))


def test_brackets_inside_strings_do_not_make_a_file_deep(tmp_path):
    from probssl.schema import load_config_file
    from probssl.userio import MAX_NESTING, parse_json_text

    text = '{"note": "' + "[" * (MAX_NESTING + 5) + '\\" {{"}'
    assert parse_json_text(text, "x")["note"].startswith("[[[")
    (tmp_path / "c.json").write_text('{"method": "vae", "params": {}, "x": "' + "{" * 100 + '"}')
    assert load_config_file(tmp_path / "c.json")["method"] == "vae"
    with pytest.raises(UserError, match="nested deeper"):
        parse_json_text("[" * (MAX_NESTING + 1) + "]" * (MAX_NESTING + 1), "x")
