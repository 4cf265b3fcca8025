"""Classify many images: parallel decoding, batched inference, top-k, one result per input in order.

Takes a :class:`~mnv3cli.inference.backends.Backend` (not a model), the preprocessing and the class
names, so any backend slots in and this module never imports torch. Inputs that fail (before or
during decoding) get a result carrying the error instead of predictions; the others go on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from ..data.batches import iter_batches
from ..data.inputs import InputError, Source
from ..inference.backends import Backend
from ..registry.card import class_label
from ..registry.types import Preprocess
from .metrics import softmax, topk_indices

UNKNOWN = "unknown"  # the answer when the top probability is below --min-confidence


@dataclass(frozen=True)
class Label:
    index: int
    label: str
    probability: float


@dataclass(frozen=True)
class InputResult:
    """The outcome for one input: ``predictions`` best first, or ``error`` (naming file and reason).
    ``answer``: with a confidence threshold, the top label or :data:`UNKNOWN` (None without one)."""

    path: str
    predictions: tuple[Label, ...] = ()
    error: str | None = None
    answer: str | None = None

    def to_dict(self) -> dict:
        if self.error is not None:
            return {"path": self.path, "error": self.error}
        answer = {} if self.answer is None else {"answer": self.answer}
        return {"path": self.path, **answer, "predictions": [
            {"index": p.index, "label": p.label, "probability": float(f"{p.probability:.6g}")}
            for p in self.predictions]}


def predict(sources: Sequence[Source], backend: Backend, preprocess: Preprocess,
            class_names: Sequence[str], *, top_k: int = 5, batch_size: int = 32,
            workers: int | None = None, fast_decode: bool = True,
            progress: Callable[[int], None] | None = None,
            min_confidence: float | None = None) -> Iterator[InputResult]:
    """Yield one :class:`InputResult` per source, in order, as soon as it (and all before it) is done.

    ``progress(n)`` is called after each batch with the number of inputs it settled. With
    ``min_confidence``, each result's ``answer`` is its top label, or :data:`UNKNOWN` when the top
    probability is below it (the top-k are still given).
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
    batches = iter_batches([sources[i] for i in todo], preprocess, batch_size, workers, fast_decode)
    for batch in batches:
        for j, message in batch.errors.items():
            done[todo[j]] = InputResult(str(sources[todo[j]]), error=message)
        if batch.indices:
            probs = softmax(backend(batch.images))
            top = topk_indices(probs, top_k)
            for row, j in enumerate(batch.indices):
                labels = tuple(Label(int(c), class_label(class_names, c), float(probs[row, c])) for c in top[row])
                done[todo[j]] = InputResult(str(sources[todo[j]]), labels,
                                            answer=_answer(labels[0], min_confidence))
        if progress:
            progress(len(batch.indices) + len(batch.errors))
        yield from flush()
    yield from flush()


def _answer(best: Label, min_confidence: float | None) -> str | None:
    if min_confidence is None:
        return None
    return best.label if best.probability >= min_confidence else UNKNOWN
