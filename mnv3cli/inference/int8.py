"""int8 export with an enforced accuracy budget: calibrate, measure on held-out images, keep layers in
float until the drop is within the budget, and refuse to certify what the images cannot show.

The budget is checked on labelled images calibration never saw (``--val``, or the half of the
data folder not used for calibration, split class by class). The drop is a paired measurement
(the same images through fp32 and int8): with ``b`` images only fp32 gets right and ``c`` only
int8 gets right, out of ``n``, the drop is ``(b - c) / n`` and its standard error (the
measurement's own noise) is ``sqrt(b + c - (b - c)^2 / n) / n``. A budget of ``B`` points is
certified only when the drop is at most ``B`` **and** that noise is at most ``B``: the images
needed for the latter are ``(b + c) / n / B^2`` (as fractions), and on fewer the export is
refused, however small the measured drop. (A 0.4-point drop measured on 250 images became 1.6
points on 500 others in NNCF's own accuracy-control loop: a budget checked on too few images is
not a budget.)

Each step of the loop keeps more layers in float (:func:`~.quantize.plan`) and measures again on
the same held-out images; the steps are few and nested, and the step count is reported.
"""

from __future__ import annotations

import math
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
from .quantize import Layer

DEFAULT_CALIBRATION = 300  # images; NNCF's default subset size, "a few hundred"
SENSITIVITY_IMAGES = 32  # calibration images that rank the layers (one int8 run per layer each)


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
        return 100.0 * (self.only_fp32 - self.only_int8) / self.n

    @property
    def noise(self) -> float:
        """Standard error of :attr:`drop`, in points."""
        b, c, n = self.only_fp32, self.only_int8, self.n
        return 100.0 * math.sqrt(max(b + c - (b - c) ** 2 / n, 0.0)) / n

    def images_needed(self, budget: float) -> int | None:
        """Held-out images for this measurement's noise to be at most ``budget`` points, at the
        rate of disagreement seen here (at least one disagreement assumed); None for budget 0."""
        rate = max(self.only_fp32 + self.only_int8, 1) / self.n
        return math.ceil(rate * (100.0 / budget) ** 2) if budget > 0 else None

    @staticmethod
    def min_images(budget: float) -> float:
        """Fewest held-out images that can certify ``budget`` points: on fewer, one image is more
        than the budget (1 image "certified" 0.00 ± 0.00 with no disagreement to see). Infinite for
        a budget of 0, which no finite measurement shows."""
        return math.ceil(100.0 / budget) if budget > 0 else math.inf

    def certifies(self, budget: float) -> bool:
        """Enough images (:meth:`min_images`), and the drop and its own noise both within ``budget`` points."""
        return self.n >= self.min_images(budget) and self.drop <= budget and self.noise <= budget


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
    latency_ms: dict[str, dict[int, float]] = field(default_factory=dict)  # fp32/int8 -> batch -> ms


class BudgetNotMet(PartialFailure):
    """No step of the loop certified the budget: nothing was written (exit 1)."""


def split(
    samples: Sequence[tuple[str, int]], calibration: int, val: Sequence[tuple[str, int]] | None
) -> tuple[list[str], list[tuple[str, int]]]:
    """Calibration paths (class-balanced: classes in turn) and held-out labelled samples.

    Without ``val`` the folder is split class by class, alternately, so both halves cover the
    classes alike and no calibration image is ever measured.
    """
    by_class: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for sample in samples:
        by_class[sample[1]].append(sample)
    order = [
        group[i]
        for i in range(max(map(len, by_class.values()), default=0))
        for group in by_class.values()
        if i < len(group)
    ]  # round-robin over classes
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
    if fmt == "openvino":
        from .openvino_backend import OpenVinoBackend

        return OpenVinoBackend(path, threads=threads)
    from .onnx_backend import OnnxBackend

    return OnnxBackend(path, threads=threads, device="cpu")


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
    """The int8 graph as ONNX (with the card) or OpenVINO IR (converted from it), atomically."""
    import onnx

    from ..fileio import atomic_write
    from .exported import CARD_KEY, card_json

    onnx.helper.set_model_props(qmodel, {CARD_KEY: card_json(card)})
    if fmt == "onnx":
        with atomic_write(path, "wb") as fh:
            fh.write(qmodel.SerializeToString())
        return
    import openvino as ov

    from .export import save_ir, staging_folder

    with staging_folder(path) as tmp:
        source = tmp / "int8.onnx"
        source.write_bytes(qmodel.SerializeToString())
        ir = ov.convert_model(str(source))
        ir.set_rt_info(card_json(card), CARD_KEY.split("."))
        save_ir(ir, path, tmp)


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
    (``onnx`` or ``openvino``) only if its top-1 on ``held_out`` is certified within ``max_drop``
    points of fp32 (module docstring); else raise :class:`BudgetNotMet` having written nothing.
    ``calibration``: image paths (preprocessed exactly as at inference).
    """
    import onnx

    from . import quantize
    from .export import DEFAULT_OPSET, export_onnx

    say = on_step or (lambda message: None)
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
            yield from quantize.plan(layers, gain)[1:]

        best: tuple[PairedDrop, list[Layer]] | None = None
        for steps, (why, kept) in enumerate(ranked(), start=1):
            candidate = quantize.keep_in_float(qmodel, fp32_graph, {layer.node for layer in kept})
            trial = Path(tmp) / f"int8.{'xml' if fmt == 'openvino' else 'onnx'}"
            _write(candidate, fmt, trial, card)
            int8 = _runner(trial, fmt, threads)
            measured = PairedDrop.measure(fp32_pred, _predict(int8, val_images), labels)
            added = f" (+ {why})" if kept else ""
            say(
                f"step {steps}, {len(kept)} of {len(layers)} layers in float{added}: int8 top-1 "
                f"{measured.int8_top1:.1f} % vs fp32 {measured.fp32_top1:.1f} %, drop "
                f"{measured.drop:.2f} ± {measured.noise:.2f} points"
            )
            if best is None or measured.drop < best[0].drop:
                best = (measured, kept)
            if measured.certifies(max_drop):
                sizes = sorted({1, min(32, len(val_images))})
                latency = {
                    name: {b: _latency(run, val_images, b, 20 if b == 1 else 3) for b in sizes}
                    for name, run in (("fp32", fp32), ("int8", int8))
                }
                if fmt == "openvino":  # weights first: an .xml never points at a missing .bin
                    os.replace(trial.with_suffix(".bin"), path.with_suffix(".bin"))
                os.replace(trial, path)
                return Int8Result(path, fmt, measured, max_drop, kept, len(layers), steps, len(cal_images), latency)
    measured, kept = best
    needed = measured.images_needed(max_drop)
    reason = (
        f"on {measured.n} held-out images the smallest drop reached was {measured.drop:.2f} ± "
        f"{measured.noise:.2f} points with {len(kept)} of {len(layers)} layers in float"
    )
    if measured.drop <= max_drop and needed is not None and measured.noise > max_drop:
        reason += f"; certifying a {max_drop:g}-point drop needs at least {needed} held-out images"
    raise BudgetNotMet(f"int8 budget --max-drop {max_drop:g} not met: {reason}; nothing written")
