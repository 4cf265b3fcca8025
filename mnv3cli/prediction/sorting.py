"""``predict --sort-into DIR``: every classified input under ``DIR/<answer>/``, and a CSV of what
went where.

Nothing is ever overwritten: a file is created with exclusive-create semantics (``open(..., "x")``,
``os.link``, ``os.symlink`` all fail when the name exists), so two inputs with the same name, an
earlier sort, or another process writing into the same folder never lose a file; a taken name gets
``-2``, ``-3`` ... before its extension, and the CSV records the name used. Inputs that could not be
classified (or placed) are listed in the CSV with their error and placed nowhere.

The list is written as the run goes, like ``predict --output`` (:class:`~mnv3cli.fileio.PartFile`:
``sorted.csv.part``, renamed once complete), so an interrupted run keeps it, and ``--resume``
continues it: inputs the results file holds but the list lacks are placed again (a file placed just
before the interruption is found, not copied twice), then the rest.
"""

from __future__ import annotations

import csv
import filecmp
import io
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..data.images import EncodedImage
from ..errors import UserError
from ..fileio import PartFile, atomic_write, part_path
from ..printable import csv_row, display_path, printable_path
from .predict import UNKNOWN, InputResult
from .records import CsvRows

MODES = ("copy", "hardlink", "symlink")
CSV_NAME = "sorted.csv"


@dataclass(frozen=True)
class Placement:
    source: str
    destination: str  # "" when not placed
    answer: str
    probability: float | None
    error: str


def folder_name(label: str) -> str:
    """A class label as one safe folder name: no separators, never ``.``/``..`` or empty."""
    name = "".join("_" if c in "/\\\0" else c for c in label).strip()
    return name if name not in ("", ".", "..") else "_"


class SortInto:
    """Places inputs under ``root`` by answer (``mode``: copy, hardlink or symlink), listing each
    placement in ``root/sorted.csv`` as it happens (see :meth:`open`); a context manager."""

    def __init__(self, root: str | os.PathLike, mode: str = "copy") -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.root, self.mode = Path(root), mode
        self.placements: list[Placement] = []  # this run's
        self.kept = self.kept_placed = 0  # rows an interrupted run listed (``open(resume=True)``)
        self._list: PartFile | None = None
        self._reuse = self._idle = False

    def __enter__(self) -> SortInto:
        return self

    def __exit__(self, *exc_info) -> None:
        if self._list is not None:  # unfinished: the whole rows stay in the .part for --resume
            self._listing.__exit__(*exc_info)

    @property
    def placed(self) -> int:
        return self.kept_placed + sum(1 for p in self.placements if p.destination)

    @property
    def failed(self) -> int:
        return self.kept - self.kept_placed + sum(1 for p in self.placements if not p.destination)

    def open(self, sources: Sequence = (), resume: bool = False, finished: bool = False) -> int:
        """Start the list: ``sorted.csv.part`` (``sorted-2.csv.part`` ... when taken), appended to
        row by row (flushed and fsynced as ``predict``'s results are) and published whole by
        :meth:`write_csv`. With ``resume``, the unfinished list of an interrupted run over the same
        ``sources`` is continued instead: returns how many of them it lists (its first rows), and
        placing again finds a file already placed rather than placing it twice. ``finished``: the
        results of that run were complete; without an unfinished list, so was its sorting (nothing
        to do: returns ``len(sources)``, and :meth:`write_csv` writes nothing)."""
        self.root.mkdir(parents=True, exist_ok=True)
        expected = [display_path(str(source))[0] for source in sources]
        self._reuse = resume
        for path in _list_names(self.root) if resume else ():
            if part_path(path).is_file() and self._adopt(path, expected):
                return self.kept
        if resume and finished:
            self._idle = True
            return len(expected)
        for path in _list_names(self.root):
            if not (path.exists() or part_path(path).exists()) and self._take(path):
                self._listing.start(0)
                self._listing.write(_row(HEADER))
                return 0
        raise FileExistsError(f"{self.root}: too many files named like {CSV_NAME}")

    @property
    def _listing(self) -> PartFile:
        """The list being written: :meth:`open` made it (a bug, not a user error, otherwise)."""
        if self._list is None:
            raise RuntimeError("SortInto: the list is not open; open() comes first")
        return self._list

    def _take(self, path: Path) -> bool:
        try:
            self._list = PartFile(path).__enter__()
        except UserError:  # another process writes that list
            return False
        return True

    def _adopt(self, path: Path, expected: Sequence[str]) -> bool:
        """Continue ``path``'s unfinished list when it is one of these inputs (its first row's)."""
        if not self._take(path):
            return False
        keep, rows, placed = _scan(self._listing.part, expected)
        if keep and (rows or not expected):
            self._listing.start(keep)
            self.kept, self.kept_placed = rows, placed
            return True
        self._listing.__exit__(None, None, None)
        self._list = None
        return False

    def place(self, result: InputResult, source) -> Placement:
        """Put ``source`` (a path or a downloaded image) where ``result`` says; list it either way."""
        if self._list is None:
            self.open()
        if result.error is not None:
            return self._record(result.path, "", "", None, result.error)
        best = result.predictions[0]
        if result.labels is not None:  # multi-label: the best label at or above its threshold decides
            best = result.labels[0] if result.labels else best
        answer = result.answer if result.answer is not None else best.label
        if result.labels == ():
            answer = UNKNOWN
        folder = self.root / folder_name(answer)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            destination = self._put(source, folder)
        except OSError as exc:
            reason = f"cannot {self.mode} into {folder}: {exc.strerror or exc}"
            return self._record(result.path, "", answer, best.probability, reason)
        return self._record(result.path, str(destination), answer, best.probability, "")

    def _record(self, *fields) -> Placement:
        placement = Placement(*fields)
        self.placements.append(placement)
        self._listing.write(_row(_cells(placement)))
        return placement

    def _put(self, source, folder: Path) -> Path:
        in_memory = isinstance(source, EncodedImage)
        name = _download_name(source.name) if in_memory else os.path.basename(os.fspath(source))
        stem, suffix = os.path.splitext(name)
        for n in range(1, 10_000):
            target = folder / (name if n == 1 else f"{stem}-{n}{suffix}")
            try:
                self._create(source, target, in_memory)
                return target
            except FileExistsError:
                if self._reuse and self._same(source, target, in_memory):  # placed before the kill
                    return target
                continue
        raise FileExistsError(f"{folder}: too many files named like {name}")

    def _same(self, source, target: Path, in_memory: bool) -> bool:
        """Whether ``target`` is what placing ``source`` would have made (a resumed run's check)."""
        try:
            if in_memory:
                return target.read_bytes() == source.data
            if self.mode == "symlink":
                return target.is_symlink() and os.readlink(target) == os.path.abspath(source)
            if self.mode == "hardlink":
                return os.path.samefile(source, target)
            return not target.is_symlink() and filecmp.cmp(source, target, shallow=False)
        except OSError:
            return False

    def _create(self, source, target: Path, in_memory: bool) -> None:
        if in_memory or self.mode == "copy":  # a download has no file to link to
            with atomic_write(target, "wb", exclusive=True) as out:  # whole or absent, even on kill -9
                if in_memory:
                    out.write(source.data)
                else:
                    with open(source, "rb") as src:
                        shutil.copyfileobj(src, out)
            if not in_memory:
                shutil.copystat(source, target)
        elif self.mode == "hardlink":
            os.link(source, target)
        else:
            os.symlink(os.path.abspath(source), target)

    def write_csv(self) -> Path | None:
        """Publish the list: ``root/sorted.csv`` (``sorted-2.csv`` ... when taken, never replaced):
        source, destination, answer, probability, error; one row per input, in input order. None
        when there was nothing to sort (see :meth:`open`)."""
        if self._idle:
            return None
        if self._list is None:
            self.open()
        self._listing.sync()
        for path in _list_names(self.root):
            try:
                os.link(self._listing.part, path)  # fails when the name is taken: an earlier sort's list
            except FileExistsError:
                continue
            os.unlink(self._listing.part)
            self._listing.published = True
            self._listing.__exit__(None, None, None)
            self._list = None
            return path
        raise FileExistsError(f"{self.root}: too many files named like {CSV_NAME}")


HEADER = ["source", "destination", "answer", "probability", "error"]


def _cells(p: Placement) -> list[str]:
    probability = "" if p.probability is None else f"{p.probability:.6f}"
    return [printable_path(p.source), printable_path(p.destination), p.answer, probability, printable_path(p.error)]


def _row(cells: list[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(csv_row(cells))  # guarded against spreadsheet formulas
    return buffer.getvalue().encode("utf-8")


def _list_names(root: Path) -> Iterator[Path]:
    return (root / (CSV_NAME if n == 1 else f"sorted-{n}.csv") for n in range(1, 10_000))


def _scan(part: Path, expected: Sequence[str]) -> tuple[int, int, int]:
    """``(bytes, rows, placed rows)`` of the whole rows at the start of ``part`` that list
    ``expected``'s first inputs in order (the header counts in the bytes; 0 bytes: not a list)."""
    keep = rows = placed = 0
    with open(part, "rb") as fh:
        for row, raw in CsvRows(1).parse(fh):  # the CSV reader predict --resume uses, formula guard included
            if row is None or _row(row) != raw or len(row) != len(HEADER):
                break
            if keep == 0:
                if row != HEADER:
                    break
            elif rows == len(expected) or row[0] != expected[rows]:
                break
            else:
                rows, placed = rows + 1, placed + (row[1] != "")
            keep += len(raw)
    return keep, rows, placed


def _download_name(url: str) -> str:
    name = os.path.basename(unquote(urlparse(url).path))
    return name if name not in ("", ".", "..") else "download.jpg"
