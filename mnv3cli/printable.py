"""File names as text every output can hold: one escape rule for tables, JSON, CSV and reports.

File names are bytes on Linux. One that is not valid UTF-8 reaches Python with each undecodable byte
as a lone surrogate (:func:`os.fsdecode`), which no UTF-8 file, pipe or terminal can hold, so every
output shows it escaped: each undecodable byte as ``\\xNN`` (Python's ``backslashreplace``) and, in
such a name only, each literal backslash doubled, which makes the escape reversible
(``codecs.escape_decode(path.encode())[0]`` gives back the exact bytes). A record is therefore never
lost to its name, and the same name always gives the same text (which ``predict --resume`` matches).

Labels and names are untrusted (a class folder, a card inside a downloaded file), so two more rules
live here. People's output (tables, messages, the HTML report) shows them with :func:`plain`: control
characters escaped, never acting on the terminal, and never read as rich markup. CSV files keep them
exact but guard cells a spreadsheet would run as formulas (:func:`csv_cell`). JSON needs neither: it
escapes control characters itself.
"""

from __future__ import annotations

import os


def display_path(path: str | bytes | os.PathLike) -> tuple[str, bool]:
    """``(text, escaped)``: ``path`` as outputs show it, and whether it had to be escaped."""
    path = os.fsdecode(path)
    if _encodable(path):
        return path, False
    return _backslashreplace(path.replace("\\", "\\\\")), True


def printable_path(path: str | bytes | os.PathLike) -> str:
    """``path`` as outputs show it (:func:`display_path`'s text)."""
    return display_path(path)[0]


def clean_text(text: str) -> str:
    """``text`` (a message naming a path) with undecodable bytes shown as ``\\xNN``."""
    return text if _encodable(text) else _backslashreplace(text)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _backslashreplace(text: str) -> str:
    try:
        raw = os.fsencode(text)  # the bytes the name has on disk (surrogateescape on POSIX)
    except UnicodeEncodeError:  # a lone surrogate that is no escaped byte
        raw = text.encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "backslashreplace")


# Characters that move the cursor, clear the screen, change colours or reorder text on a terminal:
# C0 and C1 controls and DEL (ESC starts every terminal escape sequence), the line and paragraph
# separators, and the bidirectional embeddings, overrides and isolates ("Trojan Source").
_INVISIBLE = {
    *range(0x00, 0x20),
    *range(0x7F, 0xA0),
    0x2028,
    0x2029,
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
}
_SHOWN = {c: (f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in _INVISIBLE}


def plain(text: str | bytes | os.PathLike) -> str:
    """``text`` (a label, a path, a message naming them) as people's output shows it: undecodable
    bytes escaped as :func:`display_path` does, and every control character shown as ``\\xNN`` /
    ``\\uNNNN`` instead of acting on the terminal. Machine output (JSON, CSV) keeps the text exact;
    printing it through a rich console adds that no ``[...]`` in it is taken for markup."""
    return clean_text(os.fsdecode(text)).translate(_SHOWN)


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV injection");
# a cell that starts with a quote is guarded too, so that reading a cell back is exact.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


def plain_lines(text: str) -> str:
    """:func:`plain` for a message of several lines: its line breaks are kept."""
    return "\n".join(map(plain, text.split("\n")))


def csv_cell(value):
    """A text cell as written to a CSV file: one that a spreadsheet would take for a formula gets a
    leading ``'`` (shown by no spreadsheet, kept by every CSV reader). Numbers are written as they are."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def csv_row(cells) -> list:
    """:func:`csv_cell` over a row."""
    return [csv_cell(cell) for cell in cells]


def csv_text(cell: str) -> str:
    """The text a cell written by :func:`csv_cell` holds (``predict --resume`` reads its own file)."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA_STARTS) else cell
