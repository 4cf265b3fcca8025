"""Evaluate a multi-label (sigmoid-head) model on ``(path, multi-hot target)`` samples.

The images go through the one :func:`~.evaluate.evaluate` (decoding, batching, bad files,
distributed shards, speed) with its logits kept; the multi-label numbers are then computed from
those logits and the multi-hot targets, so there is one inference path for both kinds of head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .evaluate import EvalResult, evaluate, spread_subset
from .multilabel import MultiLabelMetrics, multilabel_metrics, sigmoid


@dataclass
class MultiLabelEval:
    """The shared evaluation (errors, speed) and what a sigmoid head is measured by."""

    base: EvalResult  # its top-1/loss mean nothing here; errors, images and speed do
    probs: np.ndarray  # [images, classes] sigmoid probabilities, in the order of base.predictions
    targets: np.ndarray  # [images, classes] booleans, same order
    metrics: MultiLabelMetrics
    loss: float  # mean binary cross-entropy per class

    @property
    def paths(self) -> list[str]:
        return [p.path for p in self.base.predictions]


def bce(logits: np.ndarray, targets: np.ndarray) -> float:
    """Mean BCE-with-logits, stable for large logits (what ``nn.BCEWithLogitsLoss`` computes)."""
    z = np.asarray(logits, dtype=np.float64)
    loss = np.maximum(z, 0) - z * targets + np.log1p(np.exp(-np.abs(z)))
    return float(loss.mean()) if loss.size else float("nan")


def evaluate_multilabel(
    backend,
    samples: Sequence[tuple[str, Sequence[float]]],
    class_names: Sequence[str],
    preprocess,
    thresholds: Sequence[float] | None = None,
    **options,
) -> MultiLabelEval:
    """Run ``backend`` over ``samples`` and measure mAP, F1 and per-class AP/precision/recall at
    ``thresholds`` (0.5 each when None). ``options`` go to :func:`~.evaluate.evaluate`."""
    samples = spread_subset(samples, options.pop("limit", None))
    hot = np.asarray([target for _, target in samples], dtype=bool).reshape(len(samples), len(class_names))
    base = evaluate(
        backend, [(path, 0) for path, _ in samples], len(class_names), preprocess, keep_logits=True, **options
    )
    logits = base.logits if base.logits is not None else np.zeros((0, len(class_names)))
    targets = hot[[p.index for p in base.predictions]] if base.predictions else hot[:0]
    probs = sigmoid(logits)
    chosen = thresholds if thresholds is not None else [0.5] * len(class_names)
    metrics = multilabel_metrics(probs, targets, chosen, class_names)
    return MultiLabelEval(base, probs, targets, metrics, bce(logits, targets))
