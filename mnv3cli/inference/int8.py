"""int8 export with an enforced accuracy budget: calibrate, measure on held-out images, keep layers in
float until the drop is within the budget, and refuse to certify what the images cannot show.

The budget is checked on labelled images calibration never saw (``--val``, or the half of the
data folder not used for calibration, split class by class). What is certified: a one-sided
95 % upper confidence bound of the paired top-1 drop on these held-out images is within the
budget (:mod:`.certificate`: Tango's score bound for paired proportions, which needs a minimum
of held-out images even when int8 and fp32 never disagree). A point estimate is not a budget: a
drop of 0.80 points measured on 250 images was 2.2 points on 500 others.

Each step of the loop keeps more layers in float (:func:`~.quantize.plan`) and measures again on
the same held-out images, stopping at the first step that passes. Since that is a choice among
up to ``S`` = 7 steps made on the same images, each step is tested at confidence ``1 - 0.05 / S``
(Bonferroni), so that the certificate holds at 95 % whichever step passes (a 1-point budget then
needs at least 595 held-out images). The steps are planned on calibration images only.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import PartialFailure
from ..registry import ModelCard
from .certificate import CONFIDENCE, PairedDrop, minimum_images
from .quantize import Layer

DEFAULT_CALIBRATION = 300  # images; NNCF's default subset size, "a few hundred"
SENSITIVITY_IMAGES = 32  # calibration images that rank the layers (one int8 run per layer each)
STEPS = 7  # the most steps tried: 0, 1, 2, 4 ... 32 layers kept in float


def step_confidence(steps: int = STEPS) -> float:
    """Each step's confidence for the certificate to hold at :data:`CONFIDENCE` over ``steps``
    steps tried on the same held-out images (Bonferroni)."""
    return 1.0 - (1.0 - CONFIDENCE) / max(steps, 1)


@dataclass
class Int8Result:
    path: Path
    fmt: str
    measured: PairedDrop
    budget: float
    kept: list[Layer]
    layers: int  # quantizable layers in all
    steps: int  # measurements made on the held-out images
    calibration_images: int
    confidence: float  # of each step's bound: 95 % over all the steps that could have been tried
    latency_ms: dict[str, dict[int, float]] = field(default_factory=dict)  # fp32/int8 -> batch -> ms


class BudgetNotMet(PartialFailure):
    """No step of the loop certified the budget: nothing was written (exit 1)."""


def in_turn(samples: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
    """The samples with their classes in turn (round-robin): every slice ``[k::m]`` covers the
    classes alike."""
    by_class: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for sample in samples:
        by_class[sample[1]].append(sample)
    return [
        group[i]
        for i in range(max(map(len, by_class.values()), default=0))
        for group in by_class.values()
        if i < len(group)
    ]


def split(
    samples: Sequence[tuple[str, int]], calibration: int, val: Sequence[tuple[str, int]] | None
) -> tuple[list[str], list[tuple[str, int]]]:
    """Calibration paths (class-balanced: classes in turn) and held-out labelled samples.

    Without ``val`` the folder is split class by class, alternately, so both halves cover the
    classes alike and no calibration image is ever measured.
    """
    order = in_turn(samples)
    if val is None:
        cal, held_out = order[0::2], list(order[1::2])
    else:
        cal, held_out = order, list(val)
    return [path for path, _ in cal[:calibration]], held_out


def _images(paths: Sequence[str], card: ModelCard) -> np.ndarray:
    from ..data import iter_batches

    chunks = []
    for batch in iter_batches(list(paths), card.preprocess, batch_size=50):
        if batch.errors:
            from ..errors import UserError

            raise UserError(next(iter(batch.errors.values())))
        chunks.append(batch.images)
    return np.concatenate(chunks)


def _runner(path: Path, fmt: str, threads: int | None) -> Callable[[np.ndarray], np.ndarray]:
    """The file ``path`` run by the backend that owns the export format ``fmt`` (registry), f32, CPU."""
    from .backend_registry import OpenOptions, get_export_format

    entry, _ = get_export_format(fmt)
    return entry.open(path, OpenOptions(device="cpu", threads=threads))


def _logits(run: Callable, images: np.ndarray) -> np.ndarray:
    return np.concatenate([run(images[i : i + 50]) for i in range(0, len(images), 50)])


def _predict(run: Callable, images: np.ndarray) -> np.ndarray:
    return _logits(run, images).argmax(1)


def _graph_logits(folder: Path, fmt: str, threads: int | None, images: np.ndarray) -> Callable:
    """``logits(onnx.ModelProto)`` on ``images``, run as ``fmt`` would run it."""

    def logits(model) -> np.ndarray:
        path = folder / "probe.onnx"
        path.write_bytes(model.SerializeToString())
        return _logits(_runner(path, fmt, threads), images)

    return logits


def _latency(run: Callable, images: np.ndarray, batch: int, runs: int) -> float:
    x = np.ascontiguousarray(images[:batch])
    run(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


def _write(qmodel, fmt: str, path: Path, card: ModelCard) -> None:
    """The int8 graph, with the card, in the export format ``fmt`` (its ``from_onnx``), atomically."""
    import onnx

    from .backend_registry import get_export_format
    from .exported import CARD_KEY, card_json

    onnx.helper.set_model_props(qmodel, {CARD_KEY: card_json(card)})
    _, export = get_export_format(fmt)
    if export.from_onnx is None:
        raise ValueError(f"--format {fmt} cannot hold a quantized ONNX graph")
    export.from_onnx(qmodel, path, card)


def check_held_out(n: int, budget: float, confidence: float) -> None:
    """Refuse (exit 2) a held-out set too small to certify ``budget`` whatever int8 does."""
    from ..errors import UserError

    least = minimum_images(budget, confidence)
    if least is None or n < least:
        needs = "no number of images can certify a drop of 0" if least is None else f"at least {least} are needed"
        raise UserError(
            f"--max-drop {budget:g}: {n} held-out images cannot certify it ({needs}, even if int8 and "
            "fp32 never disagreed); give more labelled images with --val DIR"
        )


def export_int8(
    model,
    card: ModelCard,
    path: str | os.PathLike,
    fmt: str,
    calibration: Sequence[str],
    held_out: Sequence[tuple[str, int]],
    *,
    max_drop: float = 1.0,
    threads: int | None = None,
    opset: int | None = None,
    on_step: Callable[[str], None] | None = None,
) -> Int8Result:
    """Quantize ``model`` (torch, with ``card``) to int8 and write it to ``path`` as ``fmt``
    (``onnx`` or ``openvino``) only if a 95 % upper confidence bound of its top-1 drop on
    ``held_out`` is within ``max_drop`` points of fp32 (module docstring); else raise
    :class:`BudgetNotMet` having written nothing (or UserError, before any work, when
    ``held_out`` is too small for any certificate). ``calibration``: image paths (preprocessed
    exactly as at inference).
    """
    import onnx

    from . import quantize
    from .backend_registry import get_export_format
    from .export import DEFAULT_OPSET, export_onnx

    confidence = step_confidence()
    check_held_out(len(held_out), max_drop, confidence)
    say = on_step or (lambda message: None)
    _, export = get_export_format(fmt)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    say(f"decoding {len(calibration)} calibration and {len(held_out)} held-out images")
    cal_images = _images(calibration, card)
    val_images = _images([p for p, _ in held_out], card)
    labels = np.asarray([label for _, label in held_out])
    # beside the output, so that publishing the certified file is a rename on one file system
    with tempfile.TemporaryDirectory(prefix=".mnv3-int8-", dir=path.parent) as tmp:
        fp32_path = export_onnx(
            model,
            Path(tmp) / "fp32.onnx",
            input_size=card.preprocess.input_size,
            card=card,
            opset=opset or DEFAULT_OPSET,
        )
        fp32 = _runner(fp32_path, fmt, threads)
        fp32_pred = _predict(fp32, val_images)
        say(f"quantizing with NNCF on {len(cal_images)} images")
        qmodel = quantize.quantize_graph(fp32_path, cal_images)
        fp32_graph = onnx.load(str(fp32_path))
        layers = quantize.find_layers(qmodel)
        probe = cal_images[:SENSITIVITY_IMAGES]

        def ranked() -> Iterator[tuple[str, list[Layer]]]:
            yield "nothing", []  # measured first: when all-int8 passes, no ranking is needed
            say(f"measuring each of {len(layers)} layers' sensitivity on {len(probe)} calibration images")
            gain = quantize.sensitivity(
                qmodel, fp32_graph, layers, _logits(fp32, probe), _graph_logits(Path(tmp), fmt, threads, probe)
            )
            yield from quantize.plan(layers, gain)[1:STEPS]

        best: tuple[PairedDrop, list[Layer]] | None = None
        for steps, (why, kept) in enumerate(ranked(), start=1):
            candidate = quantize.keep_in_float(qmodel, fp32_graph, {layer.node for layer in kept})
            trial = Path(tmp) / f"int8{export.suffix}"
            _write(candidate, fmt, trial, card)
            int8 = _runner(trial, fmt, threads)
            measured = PairedDrop.measure(fp32_pred, _predict(int8, val_images), labels)
            added = f" (+ {why})" if kept else ""
            say(
                f"step {steps}, {len(kept)} of {len(layers)} layers in float{added}: int8 top-1 "
                f"{measured.int8_top1:.1f} % vs fp32 {measured.fp32_top1:.1f} %, drop "
                f"{measured.drop:.2f} points, upper bound {measured.upper_bound(confidence):.2f}"
            )
            if best is None or measured.upper_bound(confidence) < best[0].upper_bound(confidence):
                best = (measured, kept)
            if measured.certifies(max_drop, confidence):
                sizes = sorted({1, min(32, len(val_images))})
                latency = {
                    name: {b: _latency(run, val_images, b, 20 if b == 1 else 3) for b in sizes}
                    for name, run in (("fp32", fp32), ("int8", int8))
                }
                for companion in export.companions:  # weights first: an .xml never points at a missing .bin
                    os.replace(trial.with_suffix(companion), path.with_suffix(companion))
                os.replace(trial, path)
                return Int8Result(
                    path, fmt, measured, max_drop, kept, len(layers), steps, len(cal_images), confidence, latency
                )
    assert best is not None  # the first step is always measured
    measured, kept = best
    needed = measured.images_needed(max_drop, confidence)
    reason = (
        f"on {measured.n} held-out images the lowest 95 % upper bound of the drop was "
        f"{measured.upper_bound(confidence):.2f} points (measured drop {measured.drop:.2f}, "
        f"{measured.discordant} images where int8 and fp32 disagree) with {len(kept)} of {len(layers)} "
        "layers in float"
    )
    if needed is not None:
        reason += (
            f"; at that rate of disagreement, certifying a {max_drop:g}-point drop needs about "
            f"{needed} held-out images (--val DIR)"
        )
    raise BudgetNotMet(f"int8 budget --max-drop {max_drop:g} not met: {reason}; nothing written")
