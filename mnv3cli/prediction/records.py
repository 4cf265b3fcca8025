"""``predict``'s records as text (a JSON line, or a CSV row), and read back for ``--resume``.

File names that are not valid UTF-8 are escaped by :mod:`mnv3cli.printable`'s one rule; a JSON
record of such a name also says ``"path_escaped": true``. A CSV cell that a spreadsheet would
run as a formula is written with a leading ``'`` (:func:`~mnv3cli.printable.csv_cell`) and read back
without it.

``--resume`` trusts a record only if writing its parsed content again gives exactly the bytes on
disk: a record cut short by a crash never passes, whatever byte the cut fell on.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import IO, Any

from ..printable import csv_row, csv_text


class JsonLines:
    """``.jsonl``: one JSON object per input, the same objects ``--json`` prints (with
    ``--min-confidence``, each holds an ``answer``; with a multi-label model, its ``labels``)."""

    def __init__(self, top_k: int, answers: bool = False, labels: bool = False) -> None:
        self.top_k = top_k
        self.answers = answers
        self.labels = labels

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
            yield (record if isinstance(record, dict) and isinstance(record.get("path"), str) else None), raw

    def is_header(self, record) -> bool:
        return False

    def fits(self, record: dict) -> bool:
        """Whether the record was written with the same ``--top-k``, and with a
        ``--min-confidence`` when this run has one (its ``answer``)."""
        return "error" in record or (
            len(record.get("predictions", ())) == self.top_k
            and ("answer" in record) == self.answers
            and ("labels" in record) == self.labels
        )

    @staticmethod
    def path(record: dict) -> str:
        return record["path"]

    @staticmethod
    def failed(record: dict) -> bool:
        return "error" in record


class CsvRows:
    """``.csv``: a header, then one row per input: path, (with ``--min-confidence``) answer, (with a
    multi-label model) labels (``;``-separated, best first), label/index/probability per rank, error."""

    def __init__(self, top_k: int, answers: bool = False, labels: bool = False) -> None:
        self.top_k = top_k
        self.answers = answers
        self.labels = labels
        self.columns = [
            "path",
            *(["answer"] if answers else []),
            *(["labels"] if labels else []),
            *[f"{field}_{rank}" for rank in range(1, top_k + 1) for field in ("label", "index", "probability")],
            "error",
        ]

    def header(self) -> bytes:
        return self.encode(self.columns)

    @staticmethod
    def encode(cells: list) -> bytes:
        buffer = io.StringIO()
        csv.writer(buffer).writerow(csv_row(cells))  # text cells guarded against formulas
        return buffer.getvalue().encode("utf-8")

    def line(self, result) -> bytes:
        record = result.to_dict()
        cells = [record["path"], *([record.get("answer", "")] if self.answers else [])]
        if self.labels:
            cells.append(";".join(p["label"] for p in record.get("labels", [])))
        for p in record.get("predictions", []):
            cells += [p["label"], p["index"], p["probability"]]
        cells += [""] * (len(self.columns) - 1 - len(cells))
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
            yield [csv_text(cell) for cell in row], raw

    def is_header(self, row: list) -> bool:
        return row[:1] == ["path"] and row[-1:] == ["error"]

    def fits(self, row: list) -> bool:
        """A header: exactly this run's columns; a row: as many cells, and an answer exactly
        when the row is a result (not an error) of a run with ``--min-confidence``."""
        if len(row) != len(self.columns):
            return False
        if self.is_header(row):
            return row == self.columns
        return not self.answers or (row[1] != "") == (row[-1] == "")

    @staticmethod
    def path(row: list) -> str:
        return row[0]

    @staticmethod
    def failed(row: list) -> bool:
        return row[-1] != ""


def record_format(suffix: str, top_k: int, answers: bool = False, labels: bool = False) -> JsonLines | CsvRows:
    """The format for an ``--output`` file name's suffix (``.jsonl`` or ``.csv``); ``answers``:
    the run has a ``--min-confidence`` (each result carries its answer); ``labels``: a multi-label
    model (each result carries its labels)."""
    return (JsonLines if suffix.lower() == ".jsonl" else CsvRows)(top_k, answers, labels)
