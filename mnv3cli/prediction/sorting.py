"""``predict --sort-into DIR``: every classified input under ``DIR/<answer>/``, and a CSV of what
went where.

Nothing is ever overwritten: a file is created with exclusive-create semantics (``open(..., "x")``,
``os.link``, ``os.symlink`` all fail when the name exists), so two inputs with the same name, an
earlier sort, or another process writing into the same folder never lose a file; a taken name gets
``-2``, ``-3`` ... before its extension, and the CSV records the name used. Inputs that could not be
classified (or placed) are listed in the CSV with their error and placed nowhere.
"""

from __future__ import annotations

import csv
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..data.images import EncodedImage
from ..fileio import atomic_write
from ..printable import csv_row, printable_path
from .predict import InputResult

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
    """Places inputs under ``root`` by answer (``mode``: copy, hardlink or symlink)."""

    def __init__(self, root: str | os.PathLike, mode: str = "copy") -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.root, self.mode = Path(root), mode
        self.placements: list[Placement] = []

    @property
    def placed(self) -> int:
        return sum(1 for p in self.placements if p.destination)

    @property
    def failed(self) -> int:
        return sum(1 for p in self.placements if not p.destination)

    def place(self, result: InputResult, source) -> Placement:
        """Put ``source`` (a path or a downloaded image) where ``result`` says; record it either way."""
        if result.error is not None:
            return self._record(result.path, "", "", None, result.error)
        best = result.predictions[0]
        answer = result.answer if result.answer is not None else best.label
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
                continue
        raise FileExistsError(f"{folder}: too many files named like {name}")

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

    def write_csv(self) -> Path:
        """``root/sorted.csv`` (``sorted-2.csv`` ... when taken): source, destination, answer,
        probability, error; one row per input, in input order."""
        for n in range(1, 10_000):
            path = self.root / (CSV_NAME if n == 1 else f"sorted-{n}.csv")
            try:
                with atomic_write(path, "w", exclusive=True, encoding="utf-8", newline="") as fh:
                    writer = csv.writer(fh, lineterminator="\n")
                    writer.writerow(["source", "destination", "answer", "probability", "error"])
                    for p in self.placements:
                        writer.writerow(
                            csv_row(
                                [
                                    printable_path(p.source),
                                    printable_path(p.destination),
                                    p.answer,
                                    "" if p.probability is None else f"{p.probability:.6f}",
                                    printable_path(p.error),
                                ]
                            )
                        )
                return path
            except FileExistsError:  # an earlier sort's list, or another process's: never replaced
                continue
        raise FileExistsError(f"{self.root}: too many files named like {CSV_NAME}")


def _download_name(url: str) -> str:
    name = os.path.basename(unquote(urlparse(url).path))
    return name if name not in ("", ".", "..") else "download.jpg"
