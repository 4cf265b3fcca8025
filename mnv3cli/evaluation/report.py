"""An evaluation as data: the summary object (``--json``, summary.json) and the ``--report`` files.

Per-class scores and their averages cover the classes present in the evaluated data: a folder with
500 of ImageNet's 1000 classes is judged on those 500 (predictions of the other 500 still count as
mistakes). Every file is written atomically, so an interrupted run never leaves half a report.
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

from ..fileio import atomic_write
from ..registry.card import class_label
from ..rounding import loss, percent, probability, significant
from .evaluate import EvalResult

HEATMAP_MAX_CLASSES = 50  # beyond this a heatmap is unreadable: chart the most confused pairs
CONFUSED_PAIRS_PLOTTED = 25


def has_top5(class_names: Sequence[str]) -> bool:
    """Top-5 says something only when the model has more than 5 classes; with 5 or fewer every
    label is among the top 5 and it would read 100 % (``--json`` then says ``"top5": null``)."""
    return len(class_names) > 5


def summary(result: EvalResult, class_names: Sequence[str], wordnet_ids: Sequence[str] | None = None,
            *, mistakes: int = 10, confused: int = 10) -> dict:
    """Everything a script needs, JSON-ready: headline numbers, per-class scores, errors; numbers
    rounded as :mod:`mnv3cli.rounding` says."""
    meter = result.meter
    label = partial(class_label, class_names)
    per_class = []
    for index, s in meter.per_class(result.classes).items():
        row = {"index": index, "label": label(index)}
        if wordnet_ids:
            row["wordnet_id"] = wordnet_ids[index]
        per_class.append(row | {"precision": percent(s.precision), "recall": percent(s.recall),
                                "f1": percent(s.f1), "support": s.support})
    return {
        "top1": percent(result.top1), "top5": percent(result.top5) if has_top5(class_names) else None,
        "loss": loss(result.loss), "images": result.images, "errors": len(result.errors),
        "classes": len(result.classes), "seconds": significant(result.seconds),
        "images_per_sec": significant(result.images_per_sec),
        "averages": {kind: {k: percent(v) for k, v in avg.items()}
                     for kind, avg in meter.averages(result.classes).items()},
        "per_class": per_class,
        "most_confused": [{"true": t, "true_label": label(t), "predicted": p, "predicted_label": label(p),
                           "count": n} for t, p, n in meter.most_confused(confused)],
        "confident_mistakes": [{"path": m.path, "true": m.target, "true_label": label(m.target),
                                "predicted": m.predicted, "predicted_label": label(m.predicted),
                                "probability": probability(m.probabilities[0])}
                               for m in result.confident_mistakes(mistakes)],
        "failed": [{"path": path, "error": reason} for path, reason in result.errors],
    }


def write_report(directory: str | os.PathLike, result: EvalResult, class_names: Sequence[str],
                 summary_obj: dict) -> tuple[list[Path], list[str]]:
    """Write summary.json, per_class.csv, predictions.csv, confusion.csv and confusion.png.

    Returns the files written and notes on anything skipped (the plot needs matplotlib, the
    ``plot`` extra).
    """
    directory = Path(directory)
    label = partial(class_label, class_names)
    per_class = summary_obj["per_class"]  # never empty: every sample has a class
    files = {
        "summary.json": json.dumps(summary_obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n",
        "per_class.csv": _csv(list(per_class[0]), [list(row.values()) for row in per_class]),
        "predictions.csv": _predictions_csv(result, label),
        "confusion.csv": _confusion_csv(result, label),
    }
    written = []
    for name, text in files.items():
        with atomic_write(directory / name, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        written.append(directory / name)
    notes = []
    try:
        png = _confusion_png(result, label)
    except ImportError:
        notes.append("confusion.png skipped: matplotlib is not installed (pip install 'mnv3cli[plot]')")
    else:
        with atomic_write(directory / "confusion.png", "wb") as fh:
            fh.write(png)
        written.append(directory / "confusion.png")
    return written, notes


def _csv(header: list[str], rows: list[list]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _predictions_csv(result: EvalResult, label) -> str:
    """One row per image in sample order, then one per unreadable image (``error`` filled in)."""
    rows = [[p.path, p.target, label(p.target), p.predicted, label(p.predicted),
             f"{p.probabilities[0]:.6f}", int(p.correct), f"{p.loss:.6f}",
             " ".join(map(str, p.top5)), " ".join(f"{q:.6f}" for q in p.probabilities), ""]
            for p in result.predictions]
    rows += [[path, "", "", "", "", "", "", "", "", "", reason] for path, reason in result.errors]
    return _csv(["path", "true", "true_label", "predicted", "predicted_label", "probability", "correct",
                 "loss", "top5", "top5_probabilities", "error"], rows)


def _confusion_columns(result: EvalResult) -> list[int]:
    """The true classes, then any other class that was predicted (ascending)."""
    predicted = np.flatnonzero(result.meter.confusion.sum(axis=0))
    return result.classes + sorted(set(int(c) for c in predicted) - set(result.classes))


def _confusion_csv(result: EvalResult, label) -> str:
    """Rows = true classes, columns = predicted classes, cells = image counts."""
    columns = _confusion_columns(result)
    matrix = result.meter.confusion[np.ix_(result.classes, columns)]
    return _csv(["true \\ predicted", *map(label, columns)],
                [[label(c), *map(int, row)] for c, row in zip(result.classes, matrix)])


def _confusion_png(result: EvalResult, label) -> bytes:
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    if len(result.classes) <= HEATMAP_MAX_CLASSES:
        fig = _heatmap(Figure, result, label)
    else:
        fig = _confused_pairs(Figure, result, label)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=100, bbox_inches="tight")
    return out.getvalue()


def _heatmap(Figure, result: EvalResult, label):
    """Row-normalised (recall) colours, counts written in the cells; outside predictions as 'other'."""
    classes = result.classes
    full = result.meter.confusion
    matrix = full[np.ix_(classes, classes)].astype(np.float64)
    names = [label(c) for c in classes]
    other = full[classes].sum(axis=1) - matrix.sum(axis=1)
    if other.any():
        matrix = np.column_stack([matrix, other])
        names_x = names + ["(other classes)"]
    else:
        names_x = names
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    k = len(classes)
    side = min(4 + 0.32 * k, 20)
    fig = Figure(figsize=(side + 1.5, side))
    ax = fig.add_subplot()
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    fig.colorbar(image, ax=ax, label="fraction of the true class")
    font = 9 if k <= 25 else 7
    ax.set_xticks(range(len(names_x)), names_x, rotation=90, fontsize=font)
    ax.set_yticks(range(k), names, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 25:
        for (i, j), count in np.ndenumerate(matrix):
            if count:
                ax.text(j, i, int(count), ha="center", va="center", fontsize=font,
                        color="white" if rates[i, j] > 0.5 else "black")
    ax.set_title(f"Confusion matrix: {result.images} images, top-1 {result.top1:.1f} %")
    return fig


def _confused_pairs(Figure, result: EvalResult, label):
    from matplotlib.ticker import MaxNLocator

    pairs = result.meter.most_confused(CONFUSED_PAIRS_PLOTTED)
    fig = Figure(figsize=(10, 1 + 0.3 * max(len(pairs), 1)))
    ax = fig.add_subplot()
    ax.barh(range(len(pairs)), [n for _, _, n in pairs], color="tab:blue")
    ax.set_yticks(range(len(pairs)), [f"{label(t)} -> {label(p)}" for t, p, _ in pairs], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("images")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"Most confused pairs (true -> predicted) of {len(result.classes)} classes, "
                 f"top-1 {result.top1:.1f} %")
    return fig
