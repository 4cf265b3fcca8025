"""Classify many images: parallel decoding, batched inference, top-k, one result per input in order.

Takes a :class:`~mnv3cli.inference.backends.Backend` (not a model), the preprocessing and the class
names, so any backend slots in and this module never imports torch. Inputs that fail (before or
during decoding) get a result carrying the error instead of predictions; the others go on.

Under torchrun every process classifies a share of the *batches* (as ``evaluate`` does: each batch
holds exactly the images it holds in one process, so every probability is the one a single process
computes), and after every round of one batch per process the results are gathered, so each process
yields all results in input order while holding only a round of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from .. import distributed as distributed_
from ..data.batches import iter_batches
from ..data.inputs import InputError, Source
from ..evaluation.metrics import NON_FINITE, finite_rows, softmax, topk_indices
from ..evaluation.multilabel import sigmoid
from ..inference.backends import Backend
from ..printable import clean_text, display_path
from ..registry.card import class_label
from ..registry.types import Preprocess

UNKNOWN = "unknown"  # the answer when the top probability is below --min-confidence


@dataclass(frozen=True)
class Label:
    index: int
    label: str
    probability: float

    def to_dict(self) -> dict:
        """JSON-ready, probability to 6 significant digits (predict --json, mnv3 serve)."""
        return {"index": self.index, "label": self.label, "probability": float(f"{self.probability:.6g}")}


def top_labels(probs: np.ndarray, top_k: int, class_names: Sequence[str]) -> list[tuple[Label, ...]]:
    """The ``top_k`` best :class:`Label` s of each row of ``probs`` ``[N, classes]``, best first."""
    top = topk_indices(probs, top_k)
    return [
        tuple(Label(int(c), class_label(class_names, c), float(probs[row, c])) for c in top[row])
        for row in range(len(probs))
    ]


@dataclass(frozen=True)
class InputResult:
    """The outcome for one input: ``predictions`` best first, or ``error`` (naming file and reason).
    ``answer``: with a confidence threshold, the top label or :data:`UNKNOWN` (None without one)."""

    path: str
    predictions: tuple[Label, ...] = ()
    error: str | None = None
    answer: str | None = None
    labels: tuple[Label, ...] | None = None  # multi-label model: every class at or above its threshold

    @property
    def shown_path(self) -> str:
        """``path`` as every output shows it: valid UTF-8 (see :mod:`.records`)."""
        return display_path(self.path)[0]

    def to_dict(self) -> dict:
        """The record of ``--json`` and ``--output``: always valid UTF-8 (see :mod:`.records`)."""
        path, escaped = display_path(self.path)
        record: dict = {"path": path, "path_escaped": True} if escaped else {"path": path}
        if self.error is not None:
            return record | {"error": clean_text(self.error)}
        answer = {} if self.answer is None else {"answer": self.answer}
        labels = {} if self.labels is None else {"labels": [p.to_dict() for p in self.labels]}
        return record | answer | labels | {"predictions": [p.to_dict() for p in self.predictions]}


def predict(
    sources: Sequence[Source],
    backend: Backend,
    preprocess: Preprocess,
    class_names: Sequence[str],
    *,
    top_k: int = 5,
    batch_size: int = 32,
    workers: int | None = None,
    fast_decode: bool = True,
    progress: Callable[[int], None] | None = None,
    distributed: bool = False,
    min_confidence: float | None = None,
    thresholds: Sequence[float] | None = None,
) -> Iterator[InputResult]:
    """Yield one :class:`InputResult` per source, in order, as soon as it (and all before it) is done.

    ``progress(n)`` is called after each batch (each round when distributed) with the number of
    inputs it settled. With ``distributed``, an initialised process group is required; every rank
    must pass the same arguments, and every rank yields every result. With ``min_confidence``, each
    result's ``answer`` is its top label, or :data:`UNKNOWN` when the top probability is below it
    (the top-k are still given).

    ``thresholds`` (one per class) marks a multi-label (sigmoid-head) model: scores are
    ``sigmoid(logit)``, not a softmax, and each result's ``labels`` are all classes scoring at least
    their threshold, best first; ``min_confidence`` then replaces every threshold, and the
    ``answer`` is the best of those labels, or :data:`UNKNOWN` when there is none.
    """
    todo = [i for i, s in enumerate(sources) if not isinstance(s, InputError)]
    done: dict[int, InputResult] = {}
    emitted = 0

    def flush() -> Iterator[InputResult]:
        nonlocal emitted
        while emitted < len(sources):
            source = sources[emitted]
            if isinstance(source, InputError):
                result = InputResult(str(source), error=source.message)
            elif emitted in done:
                result = done.pop(emitted)
            else:
                return
            emitted += 1
            yield result

    failed_early = len(sources) - len(todo)
    if failed_early and progress:
        progress(failed_early)
    rank, world = (distributed_.rank(), distributed_.world_size()) if distributed else (0, 1)
    mine = [todo[p] for p in distributed_.shard_positions(len(todo), batch_size, rank, world)]
    mine_sources = [s for i in mine if not isinstance(s := sources[i], InputError)]  # all: todo has none
    batches = iter_batches(mine_sources, preprocess, batch_size, workers, fast_decode)
    rounds = -(-len(todo) // (batch_size * world))  # ranks with fewer batches send nothing at the end
    try:
        for _ in range(rounds):
            batch = next(batches, None)
            settled = (
                []
                if batch is None
                else _classify(batch, mine_sources, mine, backend, class_names, top_k, min_confidence, thresholds)
            )
            shares = distributed_.all_gather_object(settled) if distributed else [settled]
            for share in shares:
                done.update(share)
            if progress:
                progress(sum(map(len, shares)))
            yield from flush()
    finally:
        batches.close()  # stops the decoding threads, also when the caller stops early
    yield from flush()


def _classify(
    batch,
    paths: Sequence[Source],
    positions: Sequence[int],
    backend: Backend,
    class_names: Sequence[str],
    top_k: int,
    min_confidence: float | None,
    thresholds: Sequence[float] | None = None,
) -> list[tuple[int, InputResult]]:
    """``(input position, result)`` for each input of ``batch`` (``batch`` indexes ``paths``)."""
    settled = [(positions[j], InputResult(str(paths[j]), error=message)) for j, message in batch.errors.items()]
    if batch.indices:
        logits = np.asarray(backend(batch.images), dtype=np.float32)
        finite = finite_rows(logits)
        probs = (
            (sigmoid(logits[finite]) if thresholds is not None else softmax(logits[finite])) if finite.any() else None
        )
        labels = iter(top_labels(probs, top_k, class_names) if probs is not None else ())
        above = iter(_above(probs, thresholds, min_confidence, class_names) if probs is not None and thresholds else ())
        for row, j in enumerate(batch.indices):
            if not finite[row]:
                settled.append((positions[j], InputResult(str(paths[j]), error=f"{paths[j]}: {NON_FINITE}")))
                continue
            best = next(labels)
            if thresholds is None:
                result = InputResult(str(paths[j]), best, answer=_answer(best[0], min_confidence))
            else:
                chosen = next(above)
                answer = None if min_confidence is None else (chosen[0].label if chosen else UNKNOWN)
                result = InputResult(str(paths[j]), best, answer=answer, labels=chosen)
            settled.append((positions[j], result))
    return settled


def _above(
    probs: np.ndarray, thresholds: Sequence[float], min_confidence: float | None, class_names: Sequence[str]
) -> list[tuple[Label, ...]]:
    """Per row, every class whose probability reaches its threshold (or ``min_confidence``), best first."""
    limit = np.full(probs.shape[1], min_confidence) if min_confidence is not None else np.asarray(thresholds)
    out = []
    for row in probs:
        hits = np.nonzero(row >= limit)[0]
        hits = hits[np.lexsort((hits, -row[hits]))]
        out.append(tuple(Label(int(c), class_label(class_names, int(c)), float(row[c])) for c in hits))
    return out


def _answer(best: Label, min_confidence: float | None) -> str | None:
    if min_confidence is None:
        return None
    return best.label if best.probability >= min_confidence else UNKNOWN
