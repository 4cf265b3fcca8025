"""Classification metrics accumulated batch by batch, in NumPy (any backend can feed them).

One implementation for ``evaluate`` and for validation inside ``train``. The state is a handful of
integer/float arrays, so shards from several processes combine by plain summation
(:meth:`ClassificationMeter.state_arrays` / :meth:`merge_arrays`) and give exactly the numbers of
one process.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# An image whose scores hold a NaN or an infinity (a damaged or overflowing graph) has no answer:
# it is an error of that image, as an unreadable one is, never a probability of NaN.
NON_FINITE = "the model's scores for it are not finite numbers (NaN or infinity)"


def finite_rows(logits: np.ndarray) -> np.ndarray:
    """Which rows of ``logits`` ``[N, classes]`` hold only finite numbers (see :data:`NON_FINITE`)."""
    return np.isfinite(logits).all(axis=1)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    return np.exp(log_softmax(logits))


def topk_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores per row, best first (ties broken by lower index).

    ``argpartition`` alone keeps an arbitrary member of a tie at the k-th place, so equal scores
    could rank differently from one run or backend to the next; here the scores above the k-th
    value are kept, and the places left go to the lowest indices holding exactly that value.
    Linear in the number of classes, unlike a full sort.
    """
    scores = np.asarray(scores)
    scores = np.where(np.isnan(scores), -np.inf, scores)  # NaN ranks last, never breaks the count
    k = min(k, scores.shape[1])
    kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1 : k]
    above, tied = scores > kth, scores == kth
    room = k - above.sum(axis=1, keepdims=True)
    chosen = above | (tied & (np.cumsum(tied, axis=1) <= room))
    part = np.nonzero(chosen)[1].reshape(len(scores), k)  # in index order within each row
    order = np.take_along_axis(scores, part, axis=1)
    rank = np.lexsort((part, -order), axis=1)
    return np.take_along_axis(part, rank, axis=1)


@dataclass
class ClassScores:
    precision: float
    recall: float
    f1: float
    support: int


class ClassificationMeter:
    """Running top-1/top-5, summed loss and the confusion matrix (rows = truth, cols = prediction)."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
        self.correct_top5 = 0
        self.loss_sum = 0.0

    @property
    def count(self) -> int:
        return int(self.confusion.sum())

    def update(self, logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Add a batch; returns the top-5 predictions (best first) for callers that report them."""
        logits = np.asarray(logits, dtype=np.float32)
        targets = np.asarray(targets, dtype=np.int64)
        top5 = topk_indices(logits, 5)
        np.add.at(self.confusion, (targets, top5[:, 0]), 1)
        self.correct_top5 += int((top5 == targets[:, None]).any(axis=1).sum())
        self.loss_sum += float(-log_softmax(logits)[np.arange(len(targets)), targets].sum())
        return top5

    # -- combining shards -------------------------------------------------------------------
    def state_arrays(self) -> np.ndarray:
        """Everything as one float64 vector, for an all-reduce (sum) across processes."""
        return np.concatenate([self.confusion.ravel().astype(np.float64), [float(self.correct_top5), self.loss_sum]])

    def merge_arrays(self, summed: np.ndarray) -> None:
        """Replace the state by the all-reduced sum of every shard's :meth:`state_arrays`."""
        n = self.num_classes * self.num_classes
        self.confusion = np.rint(summed[:n]).astype(np.int64).reshape(self.num_classes, self.num_classes)
        self.correct_top5 = int(round(summed[n]))
        self.loss_sum = float(summed[n + 1])

    # -- results ----------------------------------------------------------------------------
    @property
    def top1(self) -> float:
        return 100.0 * float(np.trace(self.confusion)) / max(self.count, 1)

    @property
    def top5(self) -> float:
        return 100.0 * self.correct_top5 / max(self.count, 1)

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / max(self.count, 1)

    def per_class(self, classes: list[int] | None = None) -> dict[int, ClassScores]:
        """Precision/recall/F1/support for ``classes`` (default: those seen as truth or prediction)."""
        tp = np.diag(self.confusion).astype(np.float64)
        predicted = self.confusion.sum(axis=0).astype(np.float64)
        support = self.confusion.sum(axis=1)
        if classes is None:
            classes = [int(c) for c in np.flatnonzero((support > 0) | (predicted > 0))]
        out = {}
        for c in classes:
            p = tp[c] / predicted[c] if predicted[c] else 0.0
            r = tp[c] / support[c] if support[c] else 0.0
            f1 = 2 * p * r / (p + r) if p + r else 0.0
            out[c] = ClassScores(100 * p, 100 * r, 100 * f1, int(support[c]))
        return out

    def averages(self, classes: list[int]) -> dict[str, dict[str, float]]:
        """Macro (unweighted) and support-weighted averages of precision/recall/F1 over ``classes``."""
        scores = self.per_class(classes)
        total = sum(s.support for s in scores.values()) or 1
        result = {}
        for name, weight in (("macro", lambda s: 1.0 / max(len(scores), 1)), ("weighted", lambda s: s.support / total)):
            result[name] = {
                m: sum(getattr(s, m) * weight(s) for s in scores.values()) for m in ("precision", "recall", "f1")
            }
        return result

    def most_confused(self, limit: int = 20) -> list[tuple[int, int, int]]:
        """The largest off-diagonal cells: (true class, predicted class, count), largest first."""
        off = self.confusion.copy()
        np.fill_diagonal(off, 0)
        flat = np.flatnonzero(off)
        order = flat[np.argsort(-off.ravel()[flat], kind="stable")][:limit]
        return [(int(i // self.num_classes), int(i % self.num_classes), int(off.ravel()[i])) for i in order]
