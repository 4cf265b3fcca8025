"""How many digits a number keeps: one rule per kind of quantity, for JSON and tables alike.

A float carries about 16 digits, a measurement far fewer: ``74.90000000000052`` % or a latency of
``4.271830999990925`` ms promise precision nobody has, and make diffs of two runs all noise. The
``--json`` output of ``evaluate``, ``profile``, ``predict`` and ``export`` is rounded here, and the
tables showing the same figures print as many digits (the rule is stated in docs/conventions.md):

* percentages (top-1, top-5, precision, recall, F1): 2 decimals;
* probabilities (0-1): 6 significant digits;
* losses: 4 significant digits;
* times, rates and memory (ms per batch, seconds, images/s, MiB) and measured differences (an
  export's largest logit difference): 3 significant digits, but never fewer than the integer part
  has (1635.9 images/s -> 1636, not 1640); a duration under a second is shown in ms (``487 ms``,
  never ``0.0 s``).

Counts, bytes, parameters and MACs are exact integers and are never rounded.
"""

from __future__ import annotations

import math
from typing import overload


def _decimals(x: float, digits: int) -> int:
    """Decimals that leave ``digits`` significant digits in ``x`` (0 once the integer part has them)."""
    if x == 0 or not math.isfinite(x):
        return 0
    return max(0, digits - 1 - math.floor(math.log10(abs(x))))


def significant(x: float, digits: int = 3) -> float:
    """``x`` to ``digits`` significant digits, integer digits kept: 0.0123456 -> 0.0123,
    4.2749 -> 4.27, 1635.9 -> 1636.0."""
    if not math.isfinite(x):
        return x
    return round(float(x), _decimals(x, digits))


@overload
def percent(x: float) -> float: ...
@overload
def percent(x: None) -> None: ...
@overload
def percent(x: float | None) -> float | None: ...
def percent(x: float | None) -> float | None:
    """A percentage to 2 decimals (``None``, a value that does not apply, passes through)."""
    return None if x is None else round(float(x), 2)


def probability(x: float) -> float:
    """A probability to 6 significant digits."""
    return float(f"{x:.6g}")


def loss(x: float) -> float:
    """A loss to 4 significant digits."""
    return significant(x, 4)


def format_significant(x: float, digits: int = 3, plus_minus: float | None = None) -> str:
    """:func:`significant` as table text, thousands separated: ``0.0123``, ``4.27``, ``1,636``;
    ``plus_minus`` (a spread) is shown with as many decimals as ``x``: ``4.27 ± 0.37``."""
    if not math.isfinite(x):
        return str(x)
    decimals = _decimals(x, digits)
    text = f"{x:,.{decimals}f}"
    return text if plus_minus is None else f"{text} ± {plus_minus:,.{decimals}f}"


def format_seconds(seconds: float) -> str:
    """A duration for people, 3 significant digits: ``4.21 ms``, ``487 ms``, ``12.3 s``, ``1,234 s``;
    never ``0.0 s`` (under a second it counts milliseconds)."""
    if 0 < seconds < 1:
        return f"{format_significant(1000 * seconds)} ms"
    return f"{format_significant(seconds)} s"
