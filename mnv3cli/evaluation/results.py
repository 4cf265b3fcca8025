"""An evaluation's results as one typed object, and the one list of its headline rows.

:class:`EvaluationSummary` is what ``mnv3 evaluate`` shows: ``--json`` and summary.json print its
:meth:`~EvaluationSummary.to_dict`, the terminal table and report.html's summary table both render
:data:`HEADLINE`. A new metric is therefore one field (filled in :func:`summary`) and one
:class:`Row`; nothing else names it. Numbers are stored rounded as :mod:`mnv3cli.rounding` says, so
every surface shows the same digits.

Per-class scores and their averages cover the classes present in the evaluated data: a folder with
500 of ImageNet's 1000 classes is judged on those 500 (predictions of the other 500 still count as
mistakes). Balanced accuracy (mean per-class recall) and macro F1 leave out a class none of whose
images could be read, as scikit-learn's ``balanced_accuracy_score`` and
``f1_score(average="macro", labels=<true classes>)`` do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from functools import partial
from typing import Any

from ..printable import printable_path
from ..registry.card import class_label
from ..rounding import format_seconds, format_significant, loss, percent, probability, significant
from .evaluate import EvalResult, SamplePrediction

CONTEXT = ("model", "weights", "backend", "data", "layout", "tta")  # what was evaluated; absent when not given


@dataclass(frozen=True)
class EvaluationSummary:
    """Everything a script needs, in the key order of ``--json``. The context fields (model ...
    tta) are None when not known (``summary()`` called from Python) and then left out of the dict."""

    top1: float  # percent
    top5: float | None  # percent; None with 5 classes or fewer (every label is in the top 5)
    balanced_accuracy: float  # percent: mean per-class recall (top-1 that weighs every class alike)
    macro_f1: float  # percent: mean per-class F1
    loss: float  # mean cross-entropy
    images: int  # evaluated
    errors: int  # unreadable
    classes: int  # present in the data
    seconds: float
    images_per_sec: float
    calibration: dict[str, Any]  # temperature, ece, nll, brier, bins, coverage
    averages: dict[str, dict[str, float]]  # macro/weighted -> precision, recall, f1
    per_class: list[dict[str, Any]]
    most_confused: list[dict[str, Any]]
    confident_mistakes: list[dict[str, Any]]
    least_confident_correct: list[dict[str, Any]]
    failed: list[dict[str, str]]  # path, error
    model: str | None = field(default=None, kw_only=True)
    weights: str | None = field(default=None, kw_only=True)
    backend: str | None = field(default=None, kw_only=True)
    data: str | None = field(default=None, kw_only=True)
    layout: str | None = field(default=None, kw_only=True)
    tta: str | None = field(default=None, kw_only=True)  # only when test-time augmentation was on

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the context that is known, then the numbers."""
        context = {name: getattr(self, name) for name in CONTEXT if getattr(self, name) is not None}
        return context | {f.name: getattr(self, f.name) for f in fields(self) if f.name not in CONTEXT}


@dataclass(frozen=True)
class Row:
    """One headline row: its label and its text (None: not shown for this evaluation). ``terminal``
    and ``page``: where it appears (the terminal names the context in its title line instead; the
    report page leaves out the timings, which say nothing about the model)."""

    label: str
    text: Callable[[EvaluationSummary], str | None]
    terminal: bool = True
    page: bool = True


def _context(name: str) -> Row:
    return Row(name, lambda s: getattr(s, name), terminal=False)


def _pct(value: float | None) -> str | None:
    return None if value is None else f"{value:.2f} %"


HEADLINE: tuple[Row, ...] = (
    *(_context(name) for name in ("model", "weights", "backend", "data", "layout")),
    Row("top-1", lambda s: _pct(s.top1)),
    Row("top-5", lambda s: _pct(s.top5)),
    Row("balanced accuracy", lambda s: _pct(s.balanced_accuracy)),
    Row("macro F1", lambda s: _pct(s.macro_f1)),
    Row("mean loss", lambda s: f"{s.loss:.4f}"),
    Row("ECE (15 bins)", lambda s: _pct(s.calibration["ece"])),
    Row("Brier score", lambda s: f"{s.calibration['brier']:.4f}"),
    Row("images", lambda s: str(s.images)),
    Row("unreadable", lambda s: str(s.errors)),
    Row("classes", lambda s: str(s.classes)),
    Row("wall time", lambda s: format_seconds(s.seconds), page=False),
    Row("images/s", lambda s: format_significant(s.images_per_sec), page=False),
    # calibrated weights: said beside the numbers the temperature changed
    Row("temperature", lambda s: None if s.calibration["temperature"] == 1 else f"{s.calibration['temperature']:.4g}"),
    Row("test-time aug.", lambda s: s.tta),
)


def headline(summary_obj: EvaluationSummary, surface: str) -> list[tuple[str, str]]:
    """``(label, text)`` of the rows shown on ``surface`` (``"terminal"`` or ``"page"``)."""
    rows = [(row.label, row.text(summary_obj)) for row in HEADLINE if getattr(row, surface)]
    return [(label, text) for label, text in rows if text is not None]


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
    **context: str | None,
) -> EvaluationSummary:
    """The summary of ``result``, numbers rounded as :mod:`mnv3cli.rounding` says. ``temperature``:
    the one the model's logits were divided by (the card's), reported with calibration;
    ``context``: any of model, weights, backend, data, layout, tta."""
    meter = result.meter
    label = partial(class_label, class_names)
    averages = meter.averages(result.classes)
    # over the classes with evaluated images, as scikit-learn's (a class whose images were all
    # unreadable has no recall): balanced_accuracy_score, f1_score(labels=those, average="macro")
    balanced = meter.averages([c for c in result.classes if meter.confusion[c].sum()] or [0])["macro"]
    per_class = []
    for index, s in meter.per_class(result.classes).items():
        row: dict[str, Any] = {"index": index, "label": label(index)}
        if wordnet_ids:
            row["wordnet_id"] = wordnet_ids[index]
        row |= {"precision": percent(s.precision), "recall": percent(s.recall), "f1": percent(s.f1)}
        per_class.append(row | {"support": s.support})
    return EvaluationSummary(
        top1=percent(result.top1),
        top5=percent(result.top5) if has_top5(class_names) else None,
        balanced_accuracy=percent(balanced["recall"]),
        macro_f1=percent(balanced["f1"]),
        loss=loss(result.loss),
        images=result.images,
        errors=len(result.errors),
        classes=len(result.classes),
        seconds=significant(result.seconds),
        images_per_sec=significant(result.images_per_sec),
        calibration={"temperature": significant(temperature, 4)} | calibration_summary(result),
        averages={kind: {k: percent(v) for k, v in avg.items()} for kind, avg in averages.items()},
        per_class=per_class,
        most_confused=[
            {"true": t, "true_label": label(t), "predicted": p, "predicted_label": label(p), "count": n}
            for t, p, n in meter.most_confused(confused)
        ],
        confident_mistakes=[_sample(m, label) for m in result.confident_mistakes(mistakes)],
        least_confident_correct=[_sample(m, label) for m in result.least_confident_correct(mistakes)],
        failed=[{"path": printable_path(path), "error": printable_path(reason)} for path, reason in result.errors],
        **context,
    )


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
