"""Evaluate a backend on labelled images: accuracy, loss, confusion and per-sample predictions.

One function for ``mnv3 evaluate`` and for validation inside ``mnv3 train``. Decoding runs on the
torch-free thread pool of :mod:`mnv3cli.data`, so any :class:`~mnv3cli.inference.backends.Backend`
works. Unreadable images become error records and the run goes on.

Under ``torch.distributed`` every process evaluates a share of the *batches* (not of the images):
each batch then holds exactly the images it holds in a one-process run, so every logit is
bit-identical (batch composition changes the arithmetic of the convolutions in the last bits),
and summed counts plus an order-independent loss sum (:func:`math.fsum`) make the merged result
identical to one process's, not merely close. The merge at the end is the only collective, so
ranks may hold different numbers of batches, or batches of which no image is readable.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .. import distributed as distributed_
from ..data import iter_batches
from ..errors import UserError
from ..registry.types import Preprocess
from .calibration import Calibration, brier_terms
from .metrics import NON_FINITE, ClassificationMeter, finite_rows, log_softmax


@dataclass(frozen=True)
class EvalProgress:
    """Sent after every batch (of this process's share when distributed)."""

    done: int  # samples finished, evaluated or failed
    total: int  # samples this process handles
    images: int  # evaluated so far
    errors: int  # failed so far
    top1: float  # running top-1 in percent over ``images``


@dataclass(frozen=True)
class SamplePrediction:
    """One evaluated image: its ``index`` in the evaluated sample list, truth and top-5."""

    index: int
    path: str
    target: int
    top5: tuple[int, ...]  # class indices, best first
    probabilities: tuple[float, ...]  # softmax probability of each of ``top5``
    loss: float  # cross-entropy of the true class
    brier: float = 0.0  # sum over classes of (probability - one-hot truth)^2

    @property
    def predicted(self) -> int:
        return self.top5[0]

    @property
    def correct(self) -> bool:
        return self.top5[0] == self.target


@dataclass
class EvalResult:
    meter: ClassificationMeter
    top1: float  # percent
    top5: float  # percent
    loss: float  # mean cross-entropy over evaluated images
    images: int  # evaluated (errors excluded)
    errors: list[tuple[str, str]]  # (path, reason) of images that could not be read
    seconds: float  # wall time, decoding included
    images_per_sec: float
    predictions: list[SamplePrediction]  # in sample order
    classes: list[int]  # class indices that occur as ground truth, ascending
    logits: np.ndarray | None = None  # [images, classes] in the order of ``predictions`` (keep_logits)

    def calibration(self) -> Calibration:
        """ECE, NLL, Brier, reliability bins and accuracy against coverage of these predictions."""
        return Calibration.measure(
            [p.probabilities[0] for p in self.predictions],
            [p.correct for p in self.predictions],
            [p.loss for p in self.predictions],
            [p.brier for p in self.predictions],
        )

    def least_confident_correct(self, limit: int = 10) -> list[SamplePrediction]:
        """Right answers given with the lowest probability: the model was lucky, or the image is hard."""
        right = [p for p in self.predictions if p.correct]
        return sorted(right, key=lambda p: (p.probabilities[0], p.index))[:limit]

    def confident_mistakes(self, limit: int = 10) -> list[SamplePrediction]:
        """Wrong top-1 predictions, most confident first: often label noise or look-alike classes."""
        wrong = [p for p in self.predictions if not p.correct]
        return sorted(wrong, key=lambda p: (-p.probabilities[0], p.index))[:limit]


def spread_subset(samples: Sequence, limit: int | None) -> list:
    """``limit`` samples spread evenly over the list (every k-th), so a sorted folder keeps all its
    classes in proportion instead of only the first few; the whole list when ``limit`` is None."""
    if limit is None or limit >= len(samples):
        return list(samples)
    return [samples[i * len(samples) // limit] for i in range(limit)]


def evaluate(
    backend,
    samples: Sequence[tuple[str, int]],
    num_classes: int,
    preprocess: Preprocess,
    *,
    batch_size: int = 32,
    workers: int | None = None,
    fast_decode: bool = True,
    limit: int | None = None,
    on_batch: Callable[[EvalProgress], None] | None = None,
    distributed: bool = False,
    keep_logits: bool = False,
) -> EvalResult:
    """Run ``backend`` over ``samples`` (``(path, class index)``) and measure it.

    ``limit`` evaluates an evenly spread subset (:func:`spread_subset`). With ``distributed``,
    an initialised default process group is required; every rank must pass the same arguments
    and gets the same merged result. ``keep_logits`` keeps every image's logits (``result.logits``,
    e.g. to fit a temperature): images x classes floats, so only when asked.
    """
    start = time.perf_counter()
    samples = spread_subset(samples, limit)
    rank, world = (distributed_.rank(), distributed_.world_size()) if distributed else (0, 1)
    positions = distributed_.shard_positions(len(samples), batch_size, rank, world)
    paths = [samples[i][0] for i in positions]
    labels = np.asarray([target for _, target in samples], dtype=np.int64)
    if len(labels) and not 0 <= labels.min() <= labels.max() < num_classes:  # checked on every rank alike
        raise ValueError(f"class indices must lie in [0, {num_classes})")
    targets = labels[np.asarray(positions, dtype=np.intp)]

    meter = ClassificationMeter(num_classes)
    predictions: list[SamplePrediction] = []
    kept: list[np.ndarray] = []
    errors: list[tuple[int, str, str]] = []
    done = 0
    for batch in iter_batches(paths, preprocess, batch_size, workers, fast_decode):
        errors.extend((positions[i], paths[i], reason) for i, reason in batch.errors.items())
        indices: list[int] = []  # the batch's images with finite scores
        if batch.indices:
            logits = np.asarray(backend(batch.images), dtype=np.float32)
            if logits.shape[1] != num_classes:
                raise UserError(
                    f"the model has {logits.shape[1]} outputs but the images are labelled with {num_classes} classes"
                )
            finite = finite_rows(logits)
            errors.extend((positions[i], paths[i], f"{paths[i]}: {NON_FINITE}") for i in _rows(batch.indices, ~finite))
            indices, logits = _rows(batch.indices, finite), logits[finite]
        if indices:
            batch_targets = targets[indices]
            top5 = meter.update(logits, batch_targets)
            predictions.extend(
                _records(
                    logits,
                    top5,
                    batch_targets,
                    [positions[i] for i in indices],
                    [paths[i] for i in indices],
                )
            )
            if keep_logits:
                kept.append(logits)
        done += len(batch.indices) + len(batch.errors)
        if on_batch is not None:
            on_batch(EvalProgress(done, len(positions), len(predictions), len(errors), meter.top1))

    logits_all = np.concatenate(kept) if kept else np.zeros((0, num_classes), np.float32)
    if distributed:
        predictions, errors, logits_all = _merge_shards(meter, predictions, errors, logits_all)
    # The batch-wise float sums depend on how batches were grouped; the exact sum does not.
    meter.loss_sum = math.fsum(p.loss for p in predictions)
    seconds = time.perf_counter() - start
    return EvalResult(
        meter=meter,
        top1=meter.top1,
        top5=meter.top5,
        loss=meter.mean_loss,
        images=meter.count,
        errors=[(path, reason) for _, path, reason in sorted(errors)],
        seconds=seconds,
        images_per_sec=meter.count / seconds if seconds > 0 else 0.0,
        predictions=predictions,
        classes=sorted({target for _, target in samples}),
        logits=logits_all if keep_logits else None,
    )


def _rows(indices: Sequence[int], keep: np.ndarray) -> list[int]:
    return [i for i, kept in zip(indices, keep, strict=True) if kept]


def _records(logits, top5, targets, positions, paths) -> list[SamplePrediction]:
    logp = log_softmax(logits)
    probs = np.exp(np.take_along_axis(logp, top5, axis=1))
    losses = -logp[np.arange(len(targets)), targets]
    briers = brier_terms(logits, targets)
    return [
        SamplePrediction(
            pos, path, int(t), tuple(int(c) for c in top), tuple(float(p) for p in prob), float(loss), float(brier)
        )
        for pos, path, t, top, prob, loss, brier in zip(
            positions, paths, targets, top5, probs, losses, briers, strict=False
        )
    ]


def _merge_shards(
    meter: ClassificationMeter, predictions: list, errors: list, logits: np.ndarray
) -> tuple[list, list, np.ndarray]:
    """Sum the meters of all ranks and gather every rank's records (and kept logits), in sample order."""
    meter.merge_arrays(distributed_.all_reduce_sum(meter.state_arrays()))
    gathered = distributed_.all_gather_object((predictions, errors, logits))
    merged_predictions = sorted((p for preds, _, _ in gathered for p in preds), key=lambda p: p.index)
    merged_errors = sorted(e for _, errs, _ in gathered for e in errs)
    rows = {
        p.index: row for preds, _, kept in gathered for p, row in zip(preds, kept, strict=False)
    }  # empty unless kept
    merged_logits = np.stack([rows[p.index] for p in merged_predictions]) if rows else logits[:0]
    return merged_predictions, merged_errors, merged_logits
