"""An evaluation as data: the summary object (``--json``, summary.json) and the ``--report`` folder.

Per-class scores and their averages cover the classes present in the evaluated data: a folder with
500 of ImageNet's 1000 classes is judged on those 500 (predictions of the other 500 still count as
mistakes). The report is built in a private folder beside the target and published as a unit
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
from ..rounding import loss, percent, probability, significant
from .evaluate import EvalResult, SamplePrediction
from .html_report import render_html
from .plots import confusion_png, coverage_png, reliability_png

REPORT_MARKER = "summary.json"  # a folder holding it is an mnv3 report that a new one may replace


def has_top5(class_names: Sequence[str]) -> bool:
    """Top-5 says something only when the model has more than 5 classes; with 5 or fewer every
    label is among the top 5 and it would read 100 % (``--json`` then says ``"top5": null``)."""
    return len(class_names) > 5


def summary(
    result: EvalResult,
    class_names: Sequence[str],
    wordnet_ids: Sequence[str] | None = None,
    *,
    mistakes: int = 10,
    confused: int = 10,
    temperature: float = 1.0,
) -> dict:
    """Everything a script needs, JSON-ready: headline numbers, calibration, per-class scores, errors;
    numbers rounded as :mod:`mnv3cli.rounding` says. ``temperature``: the one the model's logits were
    divided by (the card's), reported with calibration."""
    meter = result.meter
    label = partial(class_label, class_names)
    per_class = []
    for index, s in meter.per_class(result.classes).items():
        row = {"index": index, "label": label(index)}
        if wordnet_ids:
            row["wordnet_id"] = wordnet_ids[index]
        per_class.append(
            row
            | {
                "precision": percent(s.precision),
                "recall": percent(s.recall),
                "f1": percent(s.f1),
                "support": s.support,
            }
        )
    return {
        "top1": percent(result.top1),
        "top5": percent(result.top5) if has_top5(class_names) else None,
        "loss": loss(result.loss),
        "images": result.images,
        "errors": len(result.errors),
        "classes": len(result.classes),
        "seconds": significant(result.seconds),
        "images_per_sec": significant(result.images_per_sec),
        "calibration": {"temperature": significant(temperature, 4)} | calibration_summary(result),
        "averages": {
            kind: {k: percent(v) for k, v in avg.items()} for kind, avg in meter.averages(result.classes).items()
        },
        "per_class": per_class,
        "most_confused": [
            {"true": t, "true_label": label(t), "predicted": p, "predicted_label": label(p), "count": n}
            for t, p, n in meter.most_confused(confused)
        ],
        "confident_mistakes": [_sample(m, label) for m in result.confident_mistakes(mistakes)],
        "least_confident_correct": [_sample(m, label) for m in result.least_confident_correct(mistakes)],
        "failed": [{"path": printable_path(path), "error": printable_path(reason)} for path, reason in result.errors],
    }


def calibration_summary(result: EvalResult) -> dict:
    """ECE (percent, 15 bins), NLL, Brier, the reliability bins and accuracy against coverage."""
    cal = result.calibration()
    return {
        "ece": percent(100 * cal.ece),
        "nll": loss(cal.nll),
        "brier": loss(cal.brier),
        "bins": [
            {
                "lower": round(b.lower, 4),
                "upper": round(b.upper, 4),
                "images": b.count,
                "confidence": percent(100 * b.confidence),
                "accuracy": percent(100 * b.accuracy),
            }
            for b in cal.bins
        ],
        "coverage": [
            {
                "coverage": p.coverage,
                "images": p.images,
                "top1": percent(p.top1),
                "min_confidence": probability(p.threshold),
            }
            for p in cal.coverage
        ],
    }


def _sample(m: SamplePrediction, label) -> dict:
    return {
        "path": printable_path(m.path),
        "true": m.target,
        "true_label": label(m.target),
        "predicted": m.predicted,
        "predicted_label": label(m.predicted),
        "probability": probability(m.probabilities[0]),
    }


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
    directory: str | os.PathLike, result: EvalResult, class_names: Sequence[str], summary_obj: dict
) -> tuple[list[Path], list[str]]:
    """Write summary.json, per_class.csv, predictions.csv, confusion.csv, confusion.png,
    reliability.png, coverage.png and report.html into ``directory``, replacing an older report
    there as a whole.

    Returns the files written and notes for the user (e.g. gallery images that could not be read).
    """
    directory = Path(directory)
    check_report_target(directory)
    label = partial(class_label, class_names)
    per_class = summary_obj["per_class"]  # never empty: every sample has a class
    texts = {
        "summary.json": json.dumps(summary_obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n",
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
