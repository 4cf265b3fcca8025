"""The summary and ``--report`` folder of a multi-label evaluation: summary.json, per_class.csv,
predictions.csv (each image's true and predicted label sets) and report.html, published as a unit
like the single-label report (:func:`~mnv3cli.fileio.atomic_directory`)."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

from ..fileio import atomic_directory
from ..printable import printable_path
from ..rounding import significant
from .multilabel_eval import MultiLabelEval
from .report import _csv, _fsync_all, check_report_target


def multilabel_summary(found: MultiLabelEval, **context) -> dict:
    """The ``--json`` record: ``context`` (model, weights, data...), mAP, micro/macro F1 and the
    per-class AP/precision/recall/F1 at the thresholds, fractions rounded to 4 significant digits,
    and the images that could not be read."""
    m = found.metrics

    def r(x):
        return None if x is None else significant(x, 4)

    return context | {
        "head": "sigmoid",
        "images": m.images,
        "map": r(m.map),
        "micro_f1": r(m.micro_f1),
        "macro_f1": r(m.macro_f1),
        "loss": r(found.loss),
        "per_class": [
            row | {k: r(row[k]) for k in ("ap", "precision", "recall", "f1", "threshold")} for row in m.per_class
        ],
        "failed": [{"path": printable_path(p), "error": e} for p, e in found.base.errors],
    }


def write_multilabel_report(directory: str | os.PathLike, found: MultiLabelEval, summary: dict) -> list[Path]:
    directory = Path(directory)
    check_report_target(directory)
    names = [row["label"] for row in summary["per_class"]]
    chosen = [row["threshold"] for row in summary["per_class"]]
    rows = []
    for path, probs, truth in zip(found.paths, found.probs, found.targets, strict=True):
        predicted = [n for n, p, t in zip(names, probs, chosen, strict=True) if p >= t]
        rows.append(
            [printable_path(path), ";".join(n for n, t in zip(names, truth, strict=True) if t), ";".join(predicted)]
        )
    per_class = summary["per_class"]
    texts = {
        "summary.json": json.dumps(summary, indent=2, ensure_ascii=False, allow_nan=False) + "\n",
        "per_class.csv": _csv(list(per_class[0]), [list(row.values()) for row in per_class]),
        "predictions.csv": _csv(["path", "true_labels", "predicted_labels"], rows),
        "report.html": _html(summary),
    }
    with atomic_directory(directory) as private:
        for name, text in texts.items():
            (private / name).write_text(text, encoding="utf-8", newline="")
        _fsync_all(private)
    return [directory / name for name in texts]


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _html(s: dict) -> str:
    """One self-contained page: the headline numbers and the per-class table (text escaped)."""
    e = html.escape
    head = "".join(
        f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>"
        for k, v in (
            ("model", str(s.get("model", ""))),
            ("weights", str(s.get("weights", ""))),
            ("data", str(s.get("data", ""))),
            ("images", str(s["images"])),
            ("mAP %", _pct(s["map"])),
            ("micro F1 %", _pct(s["micro_f1"])),
            ("macro F1 %", _pct(s["macro_f1"])),
        )
    )
    body = "".join(
        f"<tr><td>{e(r['label'])}</td><td>{_pct(r['ap'])}</td><td>{_pct(r['precision'])}</td>"
        f"<td>{_pct(r['recall'])}</td><td>{_pct(r['f1'])}</td><td>{r['support']}</td><td>{r['threshold']:.3g}</td></tr>"
        for r in s["per_class"]
    )
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>mnv3 multi-label evaluation</title>'
        "<style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:right}</style></head><body>"
        f"<h1>Multi-label evaluation</h1><table>{head}</table><h2>Per class</h2><table>"
        "<tr><th>class</th><th>AP %</th><th>precision %</th><th>recall %</th><th>F1 %</th><th>support</th>"
        f"<th>threshold</th></tr>{body}</table></body></html>\n"
    )
