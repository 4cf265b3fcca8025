"""Whether the probabilities mean what they say: calibration error, NLL, Brier, accuracy against
coverage, and the one-parameter fix (temperature scaling).

A model whose top-1 probability is 93 % should be right 93 % of the time. The measures follow Guo et
al., "On Calibration of Modern Neural Networks" (ICML 2017): the expected calibration error over 15
equal-width confidence bins, the negative log-likelihood of the true class, and the Brier score
(squared distance between the probability vector and the one-hot truth, summed over classes). The
fix from the same paper divides the logits by one temperature fitted on held-out images to minimise
the NLL: the ranking of the classes, hence every top-k, stays the same; only probabilities move.

All NumPy on per-image values (confidence, correctness, Brier term), so results merged from several
processes give the same numbers as one process, and any backend feeds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..rounding import loss, percent, significant
from .metrics import log_softmax

# Fewest labelled images a temperature is fitted on: on fewer the fit is noise (1 image gave 0.05,
# the clamp; 2 validation images gave 20), and it would be stored and applied to every answer.
MIN_CALIBRATION_IMAGES = 50
ECE_BINS = 15  # Guo et al.'s choice, so that numbers compare with the literature
COVERAGES = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)  # percent of images answered, most confident first


@dataclass(frozen=True)
class ConfidenceBin:
    lower: float  # confidence range [lower, upper), the last bin includes 1.0
    upper: float
    count: int
    confidence: float  # mean top-1 probability of the images in the bin (0 when empty)
    accuracy: float  # fraction of them answered right (0 when empty)


@dataclass(frozen=True)
class CoveragePoint:
    coverage: int  # percent of the images answered (the most confident ones)
    images: int
    top1: float  # percent of those answered right
    threshold: float  # the lowest top-1 probability among them: a --min-confidence that gives this


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> list[ConfidenceBin]:
    """Images grouped by top-1 probability into ``bins`` equal-width bins over [0, 1]."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)  # 1.0 goes to the last bin
    out = []
    for b in range(bins):
        mask = which == b
        n = int(mask.sum())
        out.append(
            ConfidenceBin(
                b / bins,
                (b + 1) / bins,
                n,
                float(confidence[mask].mean()) if n else 0.0,
                float(correct[mask].mean()) if n else 0.0,
            )
        )
    return out


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE as a fraction: the count-weighted mean gap between confidence and accuracy per bin."""
    total = len(confidence)
    if not total:
        return 0.0
    return float(
        sum(b.count * abs(b.accuracy - b.confidence) for b in reliability_bins(confidence, correct, bins)) / total
    )


def accuracy_coverage(
    confidence: np.ndarray, correct: np.ndarray, coverages: Sequence[int] = COVERAGES
) -> list[CoveragePoint]:
    """Top-1 when answering only the most confident ``c`` % of the images, for each ``c``.

    Ties in confidence are broken by sample order, so the result is deterministic. On a small set
    several coverages answer the same images (of 2 images, 80, 90 and 100 % all answer both): only
    the largest of them is kept, so that no two points (or table rows) repeat the same figures."""
    confidence = np.asarray(confidence, dtype=np.float64)
    order = np.argsort(-confidence, kind="stable")
    hits = np.cumsum(np.asarray(correct, dtype=np.int64)[order])
    counts = {int(c): int(np.ceil(len(order) * c / 100)) for c in sorted(coverages)}
    out: dict[int, CoveragePoint] = {}  # images answered -> the largest coverage answering them
    for c, n in counts.items():
        if n > 0:
            out[n] = CoveragePoint(c, n, 100.0 * float(hits[n - 1]) / n, float(confidence[order[n - 1]]))
    return list(out.values())


def brier_terms(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per-image Brier score: sum over classes of (p_k - [k == target])^2, in [0, 2]."""
    probs = np.exp(log_softmax(np.asarray(logits, dtype=np.float64)))
    rows = np.arange(len(targets))
    return (probs**2).sum(axis=1) - 2 * probs[rows, targets] + 1.0


@dataclass(frozen=True)
class Calibration:
    """Calibration of one evaluation (``summary()["calibration"]``)."""

    ece: float  # fraction, 15 bins
    nll: float  # mean negative log-likelihood of the true class (= evaluate's mean loss)
    brier: float  # mean Brier score
    bins: list[ConfidenceBin]
    coverage: list[CoveragePoint]

    @classmethod
    def measure(cls, confidence, correct, nll: Sequence[float], brier: Sequence[float]) -> Calibration:
        confidence = np.asarray(confidence, dtype=np.float64)
        n = max(len(confidence), 1)
        return cls(
            expected_calibration_error(confidence, correct),
            float(np.sum(nll)) / n,
            float(np.sum(brier)) / n,
            reliability_bins(confidence, correct),
            accuracy_coverage(confidence, correct),
        )


# -- temperature scaling -------------------------------------------------------------------------


def nll_at(logits: np.ndarray, targets: np.ndarray, temperature: float) -> float:
    """Mean NLL of ``targets`` under softmax(logits / temperature)."""
    logp = log_softmax(np.asarray(logits, dtype=np.float64) / temperature)
    return float(-logp[np.arange(len(targets)), targets].mean())


def fit_temperature(
    logits: np.ndarray, targets: np.ndarray, *, lowest: float = 0.05, highest: float = 20.0, tolerance: float = 1e-6
) -> float:
    """The temperature T in [``lowest``, ``highest``] that minimises the NLL of softmax(logits / T).

    The NLL is convex in the inverse temperature b = 1/T (a log-sum-exp of linear functions of b
    minus a linear one), with derivative mean(E_p[z] - z_target) and second derivative mean(Var_p[z]).
    So a safeguarded Newton iteration on b (bisection whenever a step would leave the bracket that
    holds the minimum) converges in a handful of steps, without an optimisation library.
    """
    z = np.asarray(logits, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.int64)
    if not len(z):
        return 1.0
    z_true = z[np.arange(len(z)), targets]
    low, high = 1.0 / highest, 1.0 / lowest  # bracket of b

    def derivatives(b: float) -> tuple[float, float]:
        p = np.exp(log_softmax(b * z))
        mean = (p * z).sum(axis=1)
        var = (p * z * z).sum(axis=1) - mean**2
        return float((mean - z_true).mean()), float(np.maximum(var, 0).mean())

    if derivatives(low)[0] >= 0:  # still rising at the flattest end allowed
        return highest
    if derivatives(high)[0] <= 0:  # still falling at the sharpest end allowed
        return lowest
    b = 1.0 if low < 1.0 < high else (low + high) / 2
    for _ in range(100):
        grad, curvature = derivatives(b)
        if grad > 0:
            high = b
        else:
            low = b
        step = b - grad / curvature if curvature > 0 else None
        b_next = step if step is not None and low < step < high else (low + high) / 2
        if abs(b_next - b) < tolerance * b:
            b = b_next
            break
        b = b_next
    return 1.0 / b


@dataclass(frozen=True)
class TemperatureFit:
    """A fitted temperature and what it changed, on the images it was fitted on."""

    temperature: float
    images: int
    top1: float  # percent; the same before and after (dividing logits keeps their order)
    ece_before: float  # fractions
    ece_after: float
    nll_before: float
    nll_after: float

    def to_dict(self) -> dict:
        return {
            "temperature": significant(self.temperature, 4),
            "images": self.images,
            "top1": percent(self.top1),
            "ece_before": percent(100 * self.ece_before),
            "ece_after": percent(100 * self.ece_after),
            "nll_before": loss(self.nll_before),
            "nll_after": loss(self.nll_after),
        }


def temperature_fit(logits: np.ndarray, targets: np.ndarray | Sequence[int]) -> TemperatureFit:
    """Fit a temperature on ``logits`` (raw: temperature 1) and measure ECE and NLL before and after."""
    logits = np.asarray(logits, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.int64)
    # kept to the 4 significant digits every output shows, so the checkpoint holds the very number
    # reported (the NLL is flat there: the 5th digit changes nothing a person could measure)
    temperature = significant(fit_temperature(logits, targets), 4)
    correct = logits.argmax(axis=1) == targets

    def ece(t: float) -> float:
        return expected_calibration_error(np.exp(log_softmax(logits / t)).max(axis=1), correct)

    return TemperatureFit(
        temperature,
        len(targets),
        100.0 * float(correct.mean()) if len(targets) else 0.0,
        ece(1.0),
        ece(temperature),
        nll_at(logits, targets, 1.0),
        nll_at(logits, targets, temperature),
    )
