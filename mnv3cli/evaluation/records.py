"""``predict``'s records as text (a JSON line, or a CSV row), and read back for ``--resume``.

File names are bytes on Linux. One that is not valid UTF-8 reaches Python with each undecodable byte
as a lone surrogate (:func:`os.fsdecode`), which no UTF-8 file, pipe or terminal can hold, so every
record shows it escaped: each undecodable byte as ``\\xNN`` (Python's ``backslashreplace``) and, in
such a name only, each literal backslash doubled, which makes the escape reversible
(``codecs.escape_decode(path.encode())[0]`` gives back the exact bytes). A JSON record of such a
name also says ``"path_escaped": true``; error messages show the bytes the same way. Every record
is therefore valid UTF-8, and the same input always gives the same text, which ``--resume`` matches.

``--resume`` trusts a record only if writing its parsed content again gives exactly the bytes on
disk: a record cut short by a crash never passes, whatever byte the cut fell on.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from typing import IO, Any


def display_path(path: str) -> tuple[str, bool]:
    """``(text, escaped)``: ``path`` as records show it, and whether it had to be escaped."""
    if _encodable(path):
        return path, False
    return _backslashreplace(path.replace("\\", "\\\\")), True


def clean_text(text: str) -> str:
    """``text`` (an error message naming a path) with undecodable bytes shown as ``\\xNN``."""
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


class JsonLines:
    """``.jsonl``: one JSON object per input, the same objects ``--json`` prints."""

    def __init__(self, top_k: int) -> None:
        self.top_k = top_k

    def header(self) -> bytes:
        return b""

    @staticmethod
    def encode(record: dict) -> bytes:
        return (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")

    def line(self, result) -> bytes:
        return self.encode(result.to_dict())

    def parse(self, fh: IO[bytes]) -> Iterator[tuple[Any, bytes]]:
        """``(record or None, raw bytes)`` for each line, the header first (none here)."""
        for raw in fh:
            try:
                record = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                record = None
            yield (record if isinstance(record, dict) and isinstance(record.get("path"), str)
                   else None), raw

    def is_header(self, record) -> bool:
        return False

    def fits(self, record: dict) -> bool:
        """Whether the record was written with the same ``--top-k``."""
        return "error" in record or len(record.get("predictions", ())) == self.top_k

    @staticmethod
    def path(record: dict) -> str:
        return record["path"]

    @staticmethod
    def failed(record: dict) -> bool:
        return "error" in record


class CsvRows:
    """``.csv``: a header, then one row per input: path, label/index/probability per rank, error."""

    def __init__(self, top_k: int) -> None:
        self.top_k = top_k
        self.columns = ["path", *[f"{field}_{rank}" for rank in range(1, top_k + 1)
                                  for field in ("label", "index", "probability")], "error"]

    def header(self) -> bytes:
        return self.encode(self.columns)

    @staticmethod
    def encode(cells: list) -> bytes:
        buffer = io.StringIO()
        csv.writer(buffer).writerow(cells)
        return buffer.getvalue().encode("utf-8")

    def line(self, result) -> bytes:
        record = result.to_dict()
        cells = [record["path"]]
        for p in record.get("predictions", []):
            cells += [p["label"], p["index"], p["probability"]]
        cells += [""] * (1 + 3 * self.top_k - len(cells))
        return self.encode(cells + [record.get("error", "")])

    def parse(self, fh: IO[bytes]) -> Iterator[tuple[Any, bytes]]:
        # A quoted path may hold line breaks, so a row can span lines: count the bytes the csv
        # reader consumed for each row (it reads one line at a time and never ahead).
        consumed: list[bytes] = []

        def lines() -> Iterator[str]:
            for raw in fh:
                consumed.append(raw)
                yield raw.decode("utf-8", "surrogateescape")

        reader = csv.reader(lines())
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error:  # the file ends inside a quoted field
                yield None, b"".join(consumed)
                return
            raw = b"".join(consumed)
            consumed.clear()
            yield row, raw

    def is_header(self, row: list) -> bool:
        return row[:1] == ["path"] and row[-1:] == ["error"]

    def fits(self, row: list) -> bool:
        return len(row) == len(self.columns)

    @staticmethod
    def path(row: list) -> str:
        return row[0]

    @staticmethod
    def failed(row: list) -> bool:
        return row[-1] != ""


def record_format(suffix: str, top_k: int) -> JsonLines | CsvRows:
    """The format for an ``--output`` file name's suffix (``.jsonl`` or ``.csv``)."""
    return JsonLines(top_k) if suffix.lower() == ".jsonl" else CsvRows(top_k)
