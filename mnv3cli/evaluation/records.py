"""``predict``'s records as text (a JSON line, or a CSV row), and read back for ``--resume``.

File names that are not valid UTF-8 are escaped by :mod:`mnv3cli.printable`'s one rule; a JSON
record of such a name also says ``"path_escaped": true``.

``--resume`` trusts a record only if writing its parsed content again gives exactly the bytes on
disk: a record cut short by a crash never passes, whatever byte the cut fell on.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import IO, Any


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
