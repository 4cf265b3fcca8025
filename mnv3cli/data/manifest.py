"""CSV/JSONL manifests: a data set as a list of ``path, label(s)[, split]`` rows instead of a folder tree.

A manifest is untrusted data, so reading it is bounded and strict about what it may name:

* paths are relative to the manifest's own folder and may not leave it (``..``, absolute paths)
  unless the caller allows it: a manifest from elsewhere must not make the tool read ``~/.ssh``.
  The check is on the written path; a symlink *inside* the folder is followed, as ImageFolder
  does, because whoever placed it owns the folder, not the manifest's author;
* each line is read with a length bound (:data:`MAX_LINE`), so a huge line costs bounded memory;
  a file of millions of rows costs linear time and keeps at most :data:`MAX_PROBLEMS` messages;
* labels are kept exactly as written (outputs show them through :mod:`mnv3cli.printable`).

Problems with one row (missing file, unknown split, empty label, a NUL byte, a bad JSON line) are
*reported*, as partial failures: the command goes on with the good rows and exits 1. Problems
with the data set as a whole (no ``path`` column, a path listed twice, a path escaping the folder,
a class in val/test that train never shows, an unreadable file) raise one :class:`UserError`,
because training or scoring on such a set would silently measure the wrong thing.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ..errors import UserError
from ..printable import plain

MANIFEST_SUFFIXES = (".csv", ".jsonl")
SPLITS = ("train", "val", "test")
SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
MAX_LINE = 1 << 20  # characters of one line: far above any real row, far below a memory problem
MAX_PROBLEMS = 1000  # bad-row messages kept; the rest are counted
SHOWN = 5  # names listed in an error before "... and N more"
LABEL_SEPARATOR = ";"  # between the labels of a multi-label CSV row


@dataclass(frozen=True)
class ManifestRow:
    """One good row: where it is in the file, the image, its label(s) and its split."""

    line: int  # 1-based line number in the file (CSV: counting the header line)
    path: Path  # absolute path of the image (not symlink-resolved: names stay the user's)
    labels: tuple[str, ...]  # one label (single-label) or several (multi-label); () without a label column
    split: str | None  # "train" | "val" | "test" | None


@dataclass
class Manifest:
    """The good rows of a manifest, its classes and the bad rows as messages."""

    source: Path
    rows: list[ManifestRow]  # good rows only
    classes: list[str]  # order of --classes FILE, else first appearance
    multi_label: bool  # the file used `labels` rather than `label`
    problems: list[str]  # bad rows, each "FILE:LINE: what is wrong" (partial failures)
    has_labels: bool = True  # the file has a label/labels column (predict accepts one without)
    bad_rows: int = 0  # all bad rows, also those beyond the MAX_PROBLEMS messages kept
    has_split: bool = field(default=False)  # some row names a split
    problem_lines: list[int] = field(default_factory=list)  # the line of each of ``problems``

    def split(self, name: str | None) -> list[ManifestRow]:
        """The rows of split ``name``; ``None`` means every row."""
        return list(self.rows) if name is None else [row for row in self.rows if row.split == name]

    def splits(self) -> set[str]:
        """The splits that hold at least one row."""
        return {row.split for row in self.rows if row.split is not None}

    def default_eval_split(self) -> str | None:
        """The split a scoring command reads unless told: ``test`` if any, else ``val``, else all rows."""
        present = self.splits()
        return "test" if "test" in present else "val" if "val" in present else None


def is_manifest(path: str | os.PathLike) -> bool:
    """True for an existing ``.csv`` or ``.jsonl`` *file* (a folder named ``x.csv`` is a folder)."""
    path = Path(path)
    return path.suffix.casefold() in MANIFEST_SUFFIXES and path.is_file()


def multi_hot(row: ManifestRow, classes: Sequence[str] | Mapping[str, int]) -> list[float]:
    """``row``'s labels as a 0/1 target vector over ``classes`` (names, or name -> index)."""
    index = classes if isinstance(classes, Mapping) else {name: i for i, name in enumerate(classes)}
    target = [0.0] * len(index)
    for label in row.labels:
        target[index[label]] = 1.0
    return target


def read_manifest(
    path: str | os.PathLike, *, classes_file: str | os.PathLike | None = None, allow_absolute: bool = False
) -> Manifest:
    """Read a CSV (header row naming ``path`` and ``label`` or ``labels``, optional ``split``) or a
    JSONL file (one object per line with the same keys; ``labels`` a list or a ``;``-separated
    string). Raises :class:`UserError` for what makes the whole set wrong (see the module doc)."""
    source = Path(path)
    reader = _Reader(source, allow_absolute)
    try:
        with open(source, encoding="utf-8-sig", newline="") as handle:
            if source.suffix.casefold() == ".jsonl":
                reader.read_jsonl(handle)
            else:
                reader.read_csv(handle)
    except FileNotFoundError:
        raise UserError(f"{plain(source)}: no such manifest") from None
    except IsADirectoryError:
        raise UserError(f"{plain(source)}: a folder, not a manifest file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{plain(source)}: cannot read manifest ({plain(str(exc))})") from None
    return reader.finish(classes_file)


def read_class_list(path: str | os.PathLike) -> list[str]:
    """``--classes FILE``: one class name a line (blank lines and ``#`` comments skipped), no repeats."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            lines = [line.strip() for line in _bounded_lines(handle, path)]
    except FileNotFoundError:
        raise UserError(f"{plain(path)}: no such classes file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{plain(path)}: cannot read classes file ({plain(str(exc))})") from None
    names = [line for line in lines if line and not line.startswith("#")]
    if not names:
        raise UserError(f"{plain(path)}: no class names (expected one a line)")
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        raise UserError(f"{plain(path)}: class(es) listed twice: {_names(repeated)}")
    return names


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(repr(plain(n)) for n in names[:SHOWN])
    return shown + (f" ... and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def _bounded_lines(handle: IO[str], source: Path) -> Iterator[str]:
    """The lines of ``handle``, each read with a bound: a line longer than :data:`MAX_LINE` is an error
    (one clear line) instead of a read of the whole file into one string."""
    number = 0
    while True:
        line = handle.readline(MAX_LINE + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE:
            raise UserError(f"{plain(source)}:{number}: line longer than {MAX_LINE} characters; not a manifest?")
        yield line


class _Reader:
    """Collects rows and problems while one manifest is read (one object per read, not shared)."""

    def __init__(self, source: Path, allow_absolute: bool) -> None:
        self.source = source
        self.folder = Path(os.path.abspath(source)).parent
        self.allow_absolute = allow_absolute
        self.rows: list[ManifestRow] = []
        self.problems: list[str] = []
        self.problem_lines: list[int] = []
        self.bad_rows = 0
        self.seen: dict[str, int] = {}  # absolute path -> line
        self.multi_label = False
        self.has_labels = True

    def problem(self, line: int, what: str) -> None:
        self.bad_rows += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(f"{plain(self.source)}:{line}: {what}")
            self.problem_lines.append(line)

    def read_csv(self, handle: IO[str]) -> None:
        lines = _bounded_lines(handle, self.source)
        reader = csv.reader(lines)
        try:
            header = next(reader, None)
            while header is not None and not any(c.strip() for c in header):
                header = next(reader, None)
            if header is None:
                raise UserError(f"{plain(self.source)}: empty manifest (expected a header row: path,label)")
            columns = self._columns([c.strip().casefold() for c in header])
            start = reader.line_num
            for cells in reader:
                line, start = start + 1, reader.line_num
                if not cells or not any(c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
                    continue
                self._csv_row(line, cells, columns)
        except csv.Error as exc:
            raise UserError(f"{plain(self.source)}:{reader.line_num}: malformed CSV ({exc})") from None

    def _columns(self, header: list[str]) -> dict[str, int]:
        if "path" not in header:
            raise UserError(
                f"{plain(self.source)}: no 'path' column in the header row "
                f"(got {','.join(plain(h) for h in header[:10])!r}; expected path,label[,split])"
            )
        if "label" in header and "labels" in header:
            raise UserError(f"{plain(self.source)}: both 'label' and 'labels' columns; keep one")
        self.multi_label = "labels" in header
        self.has_labels = self.multi_label or "label" in header
        wanted = ("path", "labels" if self.multi_label else "label", "split")
        return {name: header.index(name) for name in wanted if name in header}

    def _csv_row(self, line: int, cells: list[str], columns: dict[str, int]) -> None:
        if any("\x00" in c for c in cells):
            return self.problem(line, "holds a NUL byte")
        if len(cells) <= columns["path"]:
            return self.problem(line, "no path")
        cell = {name: (cells[i] if i < len(cells) else "") for name, i in columns.items()}
        labels = None
        if self.has_labels:
            key = "labels" if self.multi_label else "label"
            raw = cell.get(key, "")
            labels = raw.split(LABEL_SEPARATOR) if self.multi_label else [raw]
        self._add(line, cell["path"], labels, cell.get("split"))

    def read_jsonl(self, handle: IO[str]) -> None:
        keys_seen: str | None = None
        for number, text in enumerate(_bounded_lines(handle, self.source), start=1):
            if not text.strip():
                continue
            if "\x00" in text:
                self.problem(number, "holds a NUL byte")
                continue
            try:
                obj = json.loads(text)
            except (ValueError, RecursionError):
                self.problem(number, "not a JSON object")
                continue
            if not isinstance(obj, dict):
                self.problem(number, "not a JSON object")
                continue
            key = "labels" if "labels" in obj else "label" if "label" in obj else None
            if keys_seen is None:
                keys_seen = key or ""
                self.multi_label, self.has_labels = key == "labels", key is not None
            elif (key or "") != keys_seen:
                self.problem(number, f"has {key or 'no label'!r} while earlier rows use {keys_seen or 'no label'!r}")
                continue
            self._json_row(number, obj, key)
        if keys_seen is None:
            raise UserError(f"{plain(self.source)}: empty manifest (expected JSON objects with path and label)")

    def _json_row(self, number: int, obj: dict, key: str | None) -> None:
        path = obj.get("path")
        if not isinstance(path, str):
            return self.problem(number, "no 'path' string")
        labels = None
        if key is not None:
            value = obj[key]
            if isinstance(value, str):
                labels = value.split(LABEL_SEPARATOR) if key == "labels" else [value]
            elif isinstance(value, int) and not isinstance(value, bool):
                labels = [str(value)]
            elif key == "labels" and isinstance(value, list) and all(isinstance(v, str) for v in value):
                labels = value
            else:
                return self.problem(number, f"{key!r} must be {'a list of strings' if key == 'labels' else 'a string'}")
        split = obj.get("split")
        if split is not None and not isinstance(split, str):
            return self.problem(number, "'split' must be a string")
        self._add(number, path, labels, split)

    def _add(self, line: int, written: str, labels: list[str] | None, split: str | None) -> None:
        written = written.strip()
        if not written:
            return self.problem(line, "empty path")
        if any("\x00" in text for text in (written, split or "", *(labels or ()))):  # JSON's \u0000
            return self.problem(line, "holds a NUL byte")
        absolute = self._resolve(line, written)
        if labels is not None:
            labels = [label.strip() for label in labels if label.strip()]
            if not labels:
                return self.problem(line, f"{plain(written)!r} has an empty label")
        kind = None
        if split is not None and split.strip():
            kind = SPLIT_ALIASES.get(split.strip().casefold())
            if kind is None:
                return self.problem(line, f"unknown split {plain(split)!r} (expected train, val or test)")
        key = os.path.normcase(absolute)
        if key in self.seen:
            raise UserError(
                f"{plain(self.source)}:{line}: {plain(written)!r} is listed twice (first on line {self.seen[key]})"
            )
        self.seen[key] = line
        if not os.path.isfile(absolute):
            return self.problem(line, f"no such image {plain(written)!r}")
        self.rows.append(ManifestRow(line, Path(absolute), tuple(dict.fromkeys(labels or ())), kind))

    def _resolve(self, line: int, written: str) -> str:
        relative = os.path.normpath(written)
        escapes = os.path.isabs(written) or relative == os.pardir or relative.startswith(os.pardir + os.sep)
        if escapes and not self.allow_absolute:
            raise UserError(
                f"{plain(self.source)}:{line}: {plain(written)!r} is outside the manifest's folder "
                f"{plain(self.folder)} (paths are relative to it; --allow-absolute-paths allows others)"
            )
        return os.path.normpath(os.path.join(self.folder, written))

    def finish(self, classes_file: str | os.PathLike | None) -> Manifest:
        if not self.rows:
            first = f" ({self.problems[0]})" if self.problems else ""
            raise UserError(f"{plain(self.source)}: no usable rows; {self.bad_rows} bad row(s){first}")
        appearing = list(dict.fromkeys(label for row in self.rows for label in row.labels))
        classes = appearing
        if classes_file is not None:
            classes = read_class_list(classes_file)
            unknown = sorted(set(appearing) - set(classes))
            if unknown:
                raise UserError(f"{plain(self.source)}: label(s) not in {plain(classes_file)}: {_names(unknown)}")
        self._check_splits()
        has_split = any(row.split is not None for row in self.rows)
        return Manifest(
            self.source,
            self.rows,
            classes,
            self.multi_label,
            self.problems,
            self.has_labels,
            self.bad_rows,
            has_split,
            self.problem_lines,
        )

    def _check_splits(self) -> None:
        """A class scored in val/test that train never shows would be a class the model cannot know."""
        train = {label for row in self.rows if row.split == "train" for label in row.labels}
        if not train:
            return
        for split in ("val", "test"):
            unseen = list(
                dict.fromkeys(
                    label for row in self.rows if row.split == split for label in row.labels if label not in train
                )
            )
            if unseen:
                raise UserError(
                    f"{plain(self.source)}: class(es) in the {split} split but not in train: {_names(unseen)}"
                )
