"""Metrics of a multi-label (sigmoid-head) model: mean average precision, F1 at decision thresholds,
and the per-class F1-optimal thresholds that ``train`` stores in a model card.

A multi-label model scores each class on its own (``sigmoid(logit)``), so "top-1 accuracy" means
nothing; the usual summary (VOC, COCO, OpenImages) is the mean over classes of the average
precision, which ranks the images by each class's score and needs no threshold. Deciding which
labels an image carries does need one per class, and F1 at those thresholds says how good the
decisions are. Plain NumPy (any backend feeds it); AP follows ``sklearn.metrics.
average_precision_score``'s step-wise definition (a test compares the two).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Per-class probability of a sigmoid head, without overflow for large negative logits."""
    z = np.asarray(logits, dtype=np.float64)
    return np.where(z >= 0, 1.0 / (1.0 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1.0 + np.exp(-np.abs(z))))


def average_precision(scores: np.ndarray, targets: np.ndarray) -> float | None:
    """AP of one class: sum over thresholds of (recall step) x precision, images ranked by score
    (ties share a threshold). None when no image carries the class (AP is undefined)."""
    targets = np.asarray(targets, dtype=bool)
    positives = int(targets.sum())
    if positives == 0:
        return None
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    s, t = np.asarray(scores)[order], targets[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # last index of each distinct score
    tp = np.cumsum(t)[last]
    precision = tp / (last + 1)
    recall_step = np.diff(np.r_[0, tp]) / positives
    return float((recall_step * precision).sum())


def best_f1_thresholds(probs: np.ndarray, targets: np.ndarray) -> tuple[float, ...]:
    """Per class, the threshold on ``probs`` that maximises F1 on these images (a label is given
    when its probability is >= the threshold): the midpoint between the lowest score kept and the
    highest one dropped, so that nearby images fall on the same side. 0.5 for a class no image
    carries (no evidence either way)."""
    out = []
    for c in range(probs.shape[1]):
        p, t = probs[:, c].astype(np.float64), np.asarray(targets[:, c], dtype=bool)
        if not t.any():
            out.append(0.5)
            continue
        order = np.argsort(-p, kind="stable")
        s, tt = p[order], t[order]
        last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
        tp = np.cumsum(tt)[last]
        f1 = 2 * tp / (last + 1 + t.sum())
        k = int(np.argmax(f1))
        below = s[last[k] + 1] if last[k] + 1 < len(s) else 0.0
        out.append(float(np.clip((s[last[k]] + below) / 2, 0.0, 1.0)))
    return tuple(out)


@dataclass
class MultiLabelMetrics:
    """What ``evaluate`` reports for a sigmoid head (fractions in [0, 1])."""

    images: int
    map: float | None  # macro AP over the classes some image carries
    micro_f1: float
    macro_f1: float
    per_class: list[dict] = field(default_factory=list)  # label, ap, precision, recall, f1, support, threshold

    def to_dict(self) -> dict:
        return {
            "images": self.images,
            "map": self.map,
            "micro_f1": self.micro_f1,
            "macro_f1": self.macro_f1,
            "per_class": self.per_class,
        }


def _f1(tp: float, fp: float, fn: float) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


def multilabel_metrics(
    probs: np.ndarray, targets: np.ndarray, thresholds: Sequence[float], class_names: Sequence[str]
) -> MultiLabelMetrics:
    """mAP, micro/macro F1 and per-class AP, precision and recall at ``thresholds`` of ``probs``
    ``[N, classes]`` against multi-hot ``targets`` of the same shape."""
    targets = np.asarray(targets, dtype=bool)
    decided = probs >= np.asarray(thresholds, dtype=np.float64)[None, :]
    tp = (decided & targets).sum(axis=0)
    fp = (decided & ~targets).sum(axis=0)
    fn = (~decided & targets).sum(axis=0)
    per_class, aps, f1s = [], [], []
    for c, name in enumerate(class_names):
        ap = average_precision(probs[:, c], targets[:, c])
        f1 = _f1(tp[c], fp[c], fn[c])
        if ap is not None:
            aps.append(ap)
            f1s.append(f1)
        per_class.append(
            {
                "label": name,
                "ap": ap,
                "precision": float(tp[c] / (tp[c] + fp[c])) if tp[c] + fp[c] else 0.0,
                "recall": float(tp[c] / (tp[c] + fn[c])) if tp[c] + fn[c] else 0.0,
                "f1": f1,
                "support": int(targets[:, c].sum()),
                "threshold": float(thresholds[c]),
            }
        )
    return MultiLabelMetrics(
        images=len(probs),
        map=float(np.mean(aps)) if aps else None,
        micro_f1=_f1(tp.sum(), fp.sum(), fn.sum()),
        macro_f1=float(np.mean(f1s)) if f1s else 0.0,
        per_class=per_class,
    )


def _bce_at(z: np.ndarray, t: np.ndarray, b: float) -> float:
    x = b * z
    return float((np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))).mean())


def fit_class_temperatures(logits: np.ndarray, targets: np.ndarray, lowest: float = 0.05, highest: float = 20.0):
    """Per class, the temperature T in [``lowest``, ``highest``] minimising the binary cross-entropy
    of sigmoid(logit / T) (temperature scaling, one sigmoid at a time). The loss is convex in
    b = 1/T, so a ternary search on b finds the minimum; a class no image shows (or every image
    shows) keeps 1, there being nothing to calibrate against."""
    z, t = np.asarray(logits, dtype=np.float64), np.asarray(targets, dtype=np.float64)
    out = []
    for c in range(z.shape[1]):
        if t[:, c].min() == t[:, c].max():
            out.append(1.0)
            continue
        lo, hi = 1 / highest, 1 / lowest
        for _ in range(60):
            m1, m2 = lo + (hi - lo) / 3, hi - (hi - lo) / 3
            if _bce_at(z[:, c], t[:, c], m1) <= _bce_at(z[:, c], t[:, c], m2):
                hi = m2
            else:
                lo = m1
        out.append(float(np.clip(2 / (lo + hi), lowest, highest)))
    return tuple(out)


def carry_thresholds(thresholds, temperatures) -> tuple[float, ...]:
    """Thresholds on sigmoid(z) moved to sigmoid(z / T): the same logits pass, so every image keeps
    its labels when a temperature is fitted (``mnv3 calibrate`` changes probabilities, not answers)."""
    out = []
    for p, temp in zip(thresholds, temperatures, strict=True):
        p = min(max(float(p), 1e-12), 1 - 1e-12)
        out.append(float(sigmoid(np.array([np.log(p / (1 - p)) / temp]))[0]))
    return tuple(out)
