"""The plain-text and CSV-guard rules of mnv3cli.printable (issue 24, item 3)."""

from __future__ import annotations

import csv
import io

import pytest

from mnv3cli.printable import csv_cell, csv_row, csv_text, plain, plain_lines


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("ants", "ants"),
        ("[/] [bold]x", "[/] [bold]x"),  # markup is the console's business: kept as text
        ("\x1b[31mred", "\\x1b[31mred"),
        ("a\nb\rc\td\x07\x7f\x9b", "a\\x0ab\\x0dc\\x09d\\x07\\x7f\\x9b"),
        ("abc\u202edcba", "abc\\u202edcba"),  # a bidirectional override (Trojan Source)
        ("caf\udce9", "caf\\xe9"),  # undecodable bytes, as display_path shows them
    ],
)
def test_plain_escapes_control_characters(text, shown):
    assert plain(text) == shown
    assert plain(plain(text)) == shown  # idempotent: printing twice never double-escapes


def test_plain_lines_keeps_line_breaks_only():
    assert plain_lines("one \x1b[2J\ntwo") == "one \\x1b[2J\ntwo"


@pytest.mark.parametrize("text", ["=1+2", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "'=x", "'", "''", "plain", ""])
def test_csv_cells_are_guarded_and_read_back_exactly(text):
    cell = csv_cell(text)
    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert csv_text(cell) == text
    buffer = io.StringIO()
    csv.writer(buffer).writerow(csv_row([text, 3, -1.5]))
    read = next(csv.reader(io.StringIO(buffer.getvalue())))
    assert [csv_text(c) for c in read] == [text, "3", "-1.5"]  # numbers are not text: left alone
