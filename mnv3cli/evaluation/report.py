"""The ``--report`` folder of an evaluation: its summary (:mod:`.results`) as summary.json and
report.html, the per-class, per-image and confusion tables as CSV, and the plots.

The report is built in a private folder beside the target and published as a unit
(:func:`~mnv3cli.fileio.atomic_directory`): a run that fails part-way leaves the older report as it
was, never new files mixed with old ones. File names that are not UTF-8 are written escaped
(:func:`~mnv3cli.fileio.printable_path`), so every file is valid UTF-8 and every record is kept.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..fileio import atomic_directory
from ..printable import csv_row, printable_path
from ..registry.card import class_label
from .evaluate import EvalResult
from .html_report import render_html
from .plots import confusion_png, coverage_png, reliability_png
from .results import EvaluationSummary

REPORT_MARKER = "summary.json"  # a folder holding it is an mnv3 report that a new one may replace


def check_report_target(directory: str | os.PathLike) -> None:
    """Refuse a ``--report`` folder that holds something other than an mnv3 report (it would be
    replaced as a whole), before any slow work."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise UserError(f"--report {directory}: exists and is not a folder")
    if directory.is_dir() and any(directory.iterdir()) and not (directory / REPORT_MARKER).is_file():
        raise UserError(
            f"--report {directory}: folder holds other files (no {REPORT_MARKER}); "
            "choose a new or empty folder, or an older report to replace"
        )


def write_report(
    directory: str | os.PathLike, result: EvalResult, class_names: Sequence[str], summary_obj: EvaluationSummary
) -> tuple[list[Path], list[str]]:
    """Write summary.json, per_class.csv, predictions.csv, confusion.csv, confusion.png,
    reliability.png, coverage.png and report.html into ``directory``, replacing an older report
    there as a whole.

    Returns the files written and notes for the user (e.g. gallery images that could not be read).
    """
    directory = Path(directory)
    check_report_target(directory)
    label = partial(class_label, class_names)
    per_class = summary_obj.per_class  # never empty: every sample has a class
    texts = {
        "summary.json": json.dumps(summary_obj.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n",
        "per_class.csv": _csv(list(per_class[0]), [list(row.values()) for row in per_class]),
        "predictions.csv": _predictions_csv(result, label),
        "confusion.csv": _confusion_csv(result, label),
    }
    cal = result.calibration()
    images = {
        "confusion.png": confusion_png(result, label),
        "reliability.png": reliability_png(cal.bins, cal.ece),
        "coverage.png": coverage_png(cal.coverage),
    }
    notes: list[str] = []
    texts["report.html"] = render_html(summary_obj, result, label, images, notes)
    with atomic_directory(directory) as private:
        for name, text in texts.items():
            (private / name).write_text(text, encoding="utf-8", newline="")
        for name, data in images.items():
            (private / name).write_bytes(data)
        _fsync_all(private)
    return [directory / name for name in [*texts, *images]], notes


def _fsync_all(folder: Path) -> None:
    """Flush every file to disk before the rename publishes them (as atomic_write does for one)."""
    for path in folder.iterdir():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _csv(header: list[str], rows: list[list]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(map(csv_row, rows))  # labels and paths guarded against spreadsheet formulas
    return out.getvalue()


def _predictions_csv(result: EvalResult, label) -> str:
    """One row per image in sample order, then one per unreadable image (``error`` filled in)."""
    rows = [
        [
            printable_path(p.path),
            p.target,
            label(p.target),
            p.predicted,
            label(p.predicted),
            f"{p.probabilities[0]:.6f}",
            int(p.correct),
            f"{p.loss:.6f}",
            " ".join(map(str, p.top5)),
            " ".join(f"{q:.6f}" for q in p.probabilities),
            "",
        ]
        for p in result.predictions
    ]
    rows += [
        [printable_path(path), "", "", "", "", "", "", "", "", "", printable_path(reason)]
        for path, reason in result.errors
    ]
    return _csv(
        [
            "path",
            "true",
            "true_label",
            "predicted",
            "predicted_label",
            "probability",
            "correct",
            "loss",
            "top5",
            "top5_probabilities",
            "error",
        ],
        rows,
    )


def confusion_columns(result: EvalResult) -> list[int]:
    """The true classes, then any other class that was predicted (ascending)."""
    predicted = np.flatnonzero(result.meter.confusion.sum(axis=0))
    return result.classes + sorted(set(int(c) for c in predicted) - set(result.classes))


def _confusion_csv(result: EvalResult, label) -> str:
    """Rows = true classes, columns = predicted classes, cells = image counts."""
    columns = confusion_columns(result)
    matrix = result.meter.confusion[np.ix_(result.classes, columns)]
    return _csv(
        ["true \\ predicted", *map(label, columns)],
        [[label(c), *map(int, row)] for c, row in zip(result.classes, matrix, strict=False)],
    )
