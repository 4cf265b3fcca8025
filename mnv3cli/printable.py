"""File names as text every output can hold: one escape rule for tables, JSON, CSV and reports.

File names are bytes on Linux. One that is not valid UTF-8 reaches Python with each undecodable byte
as a lone surrogate (:func:`os.fsdecode`), which no UTF-8 file, pipe or terminal can hold, so every
output shows it escaped: each undecodable byte as ``\\xNN`` (Python's ``backslashreplace``) and, in
such a name only, each literal backslash doubled, which makes the escape reversible
(``codecs.escape_decode(path.encode())[0]`` gives back the exact bytes). A record is therefore never
lost to its name, and the same name always gives the same text (which ``predict --resume`` matches).
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
