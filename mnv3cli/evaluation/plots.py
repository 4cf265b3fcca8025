"""The report's pictures, as PNG bytes: confusion, reliability diagram, accuracy against coverage.

Drawn with matplotlib's object API (``Figure``, no pyplot): no global state and no GUI backend, so
it works headless and in threads. Each function takes plain numbers and returns the PNG's bytes;
:mod:`mnv3cli.evaluation.report` writes them and the HTML page embeds them.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Sequence

import numpy as np

from ..printable import plain
from .calibration import ConfidenceBin, CoveragePoint
from .evaluate import EvalResult

HEATMAP_MAX_CLASSES = 50  # beyond this a heatmap is unreadable: chart the most confused pairs
CONFUSED_PAIRS_PLOTTED = 25


def _png(fig) -> bytes:
    """The figure as PNG. A class name in a script the font lacks (CJK, say) is drawn as boxes
    without matplotlib's "Glyph ... missing from font(s)" warning on stderr for every character:
    the report's HTML and CSV files carry the names as text."""
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font", category=UserWarning)
        fig.savefig(out, format="png", dpi=100, bbox_inches="tight")
    return out.getvalue()


def _drawable(label: Callable[[int], str]) -> Callable[[int], str]:
    """Class names as matplotlib draws them verbatim: control characters shown escaped (a font has
    no glyph for them), and ``$`` escaped, which would otherwise start mathtext (``$\\foo$`` raises)."""
    return lambda index: plain(label(index)).replace("$", r"\$")


def confusion_png(result: EvalResult, label: Callable[[int], str]) -> bytes:
    """A heatmap for up to :data:`HEATMAP_MAX_CLASSES` classes, else the most confused pairs."""
    from matplotlib.figure import Figure

    label = _drawable(label)
    if len(result.classes) <= HEATMAP_MAX_CLASSES:
        return _png(_heatmap(Figure, result, label))
    return _png(_confused_pairs(Figure, result, label))


def reliability_png(bins: Sequence[ConfidenceBin], ece: float) -> bytes:
    """Accuracy per confidence bin (bars) against the bin's mean confidence (dots) and the diagonal
    of perfect calibration; below, how many images fell in each bin (three images say little)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 6.2))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    width = 1.0 / max(len(bins), 1)
    lefts = [b.lower for b in bins]
    filled = [b for b in bins if b.count]
    top.bar(
        lefts,
        [b.accuracy for b in bins],
        width=width,
        align="edge",
        color="tab:blue",
        edgecolor="black",
        linewidth=0.5,
        label="accuracy",
    )
    top.plot(
        [b.lower + width / 2 for b in filled],
        [b.confidence for b in filled],
        "o",
        color="tab:red",
        markersize=4,
        label="mean confidence in the bin",
    )
    top.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    top.set(
        xlim=(0, 1),
        ylim=(0, 1),
        ylabel="accuracy",
        title=f"Reliability diagram: ECE {100 * ece:.2f} % ({len(bins)} bins)",
    )
    top.legend(loc="lower right", fontsize=8)
    bottom.bar(
        lefts, [b.count for b in bins], width=width, align="edge", color="grey", edgecolor="black", linewidth=0.5
    )
    bottom.set(xlim=(0, 1), xlabel="confidence (top-1 probability)", ylabel="images")
    return _png(fig)


def coverage_png(points: Sequence[CoveragePoint]) -> bytes:
    """Top-1 when only the most confident N % of the images are answered."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.5))
    ax = fig.add_subplot()
    ax.plot([p.coverage for p in points], [p.top1 for p in points], "o-", color="tab:blue")
    ax.set(
        xlim=(0, 101),
        xlabel="coverage: % of images answered (most confident first)",
        ylabel="top-1 %",
        title="Accuracy against coverage",
    )
    ax.grid(alpha=0.3)
    return _png(fig)


def _heatmap(Figure, result: EvalResult, label):
    """Row-normalised (recall) colours, counts written in the cells; outside predictions as 'other'."""
    classes = result.classes
    full = result.meter.confusion
    matrix = full[np.ix_(classes, classes)].astype(np.float64)
    names = [label(c) for c in classes]
    other = full[classes].sum(axis=1) - matrix.sum(axis=1)
    if other.any():
        matrix = np.column_stack([matrix, other])
        names_x = names + ["(other classes)"]
    else:
        names_x = names
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    k = len(classes)
    side = min(4 + 0.32 * k, 20)
    fig = Figure(figsize=(side + 1.5, side))
    ax = fig.add_subplot()
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    fig.colorbar(image, ax=ax, label="fraction of the true class")
    font = 9 if k <= 25 else 7
    ax.set_xticks(range(len(names_x)), names_x, rotation=90, fontsize=font)
    ax.set_yticks(range(k), names, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 25:
        for (i, j), count in np.ndenumerate(matrix):
            if count:
                ax.text(
                    j,
                    i,
                    int(count),
                    ha="center",
                    va="center",
                    fontsize=font,
                    color="white" if rates[i, j] > 0.5 else "black",
                )
    ax.set_title(f"Confusion matrix: {result.images} images, top-1 {result.top1:.1f} %")
    return fig


def _confused_pairs(Figure, result: EvalResult, label):
    from matplotlib.ticker import MaxNLocator

    pairs = result.meter.most_confused(CONFUSED_PAIRS_PLOTTED)
    fig = Figure(figsize=(10, 1 + 0.3 * max(len(pairs), 1)))
    ax = fig.add_subplot()
    ax.barh(range(len(pairs)), [n for _, _, n in pairs], color="tab:blue")
    ax.set_yticks(range(len(pairs)), [f"{label(t)} -> {label(p)}" for t, p, _ in pairs], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("images")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"Most confused pairs (true -> predicted) of {len(result.classes)} classes, top-1 {result.top1:.1f} %")
    return fig
