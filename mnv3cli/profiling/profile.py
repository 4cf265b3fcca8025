"""``profile_model``: a registered model's parameters, compute and latency in one record.

Plain functions returning dataclasses; the ``profile`` command only formats them. Counting lives in
:mod:`.counting`, timing and memory in :mod:`.timing`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import torch

from ..errors import UserError
from ..inference.backend_registry import profile_choices
from ..registry import ModelCard
from ..rounding import significant
from .counting import ComputeCount, ParamCount, count_compute, count_parameters
from .timing import LatencyStats, backend_availability, measure_latency

# ------------------------------------------------------------------------------------------ together


def _swap(top1_on: Callable, card: ModelCard, runner: Callable) -> float:
    return top1_on(runner, card)


@dataclass
class ModelProfile:
    model: str
    width: float
    resolution: int
    params: ParamCount
    compute: ComputeCount
    latency: list[LatencyStats] = field(default_factory=list)
    skipped_backends: dict[str, str] = field(default_factory=dict)
    weights: str | None = None  # the file profiled (an exported graph is timed as it is)

    def to_dict(self, per_layer: bool = False) -> dict[str, Any]:
        """The ``--json`` record: ``latency_ms`` is the first backend's batch-1 (or smallest) stats;
        times rounded to 3 significant digits."""
        first = (
            min((s for s in self.latency if s.backend == self.latency[0].backend), key=lambda s: s.batch_size)
            if self.latency
            else None
        )
        stages = [
            g
            for g in self.params.per_stage  # parts with weights or work (not pool/dropout)
            if self.params.per_stage[g] or self.compute.per_stage.get(g)
        ]
        record: dict[str, Any] = {
            "model": self.model,
            "weights": self.weights,
            "width": self.width,
            "resolution": self.resolution,
            "params": self.params.total,
            "trainable_params": self.params.trainable,
            "params_per_stage": {g: n for g, n in self.params.per_stage.items() if g in stages},
            "size_bytes": {"fp32": self.params.bytes_fp32, "fp16": self.params.bytes_fp16},
            "macs": self.compute.macs,
            "flops": self.compute.flops,
            "macs_per_stage": {g: n for g, n in self.compute.per_stage.items() if g in stages},
            "elementwise_ops": self.compute.elementwise_total,
            "elementwise": self.compute.elementwise,
            "convention": self.compute.convention,
            "latency_ms": _rounded(first) if first else None,
            "latency": [_rounded(s) for s in self.latency],
            "skipped_backends": self.skipped_backends,
        }
        if per_layer:
            record["layers"] = [asdict(layer) for layer in self.compute.layers]
        return record


@dataclass
class ProfileResult:
    """What one ``mnv3 profile`` run measured: the first model's profile, then each ``--compare``'s.

    The terminal tables, the ``--plot`` image and ``--json`` all render this one object."""

    profiles: list[ModelProfile]
    compared: bool = False  # --compare given: --json is a list, one object per model
    per_layer: bool = False  # --per-layer: every conv/linear layer too

    def to_dict(self) -> dict[str, Any] | list[dict[str, Any]]:
        """The ``--json`` document: one model's record, or the list of them with ``--compare``."""
        records = [p.to_dict(per_layer=self.per_layer) for p in self.profiles]
        return records if self.compared else records[0]


def _rounded(stats: LatencyStats) -> dict[str, Any]:
    """A timing as JSON: milliseconds and images/s to 3 significant digits (:mod:`mnv3cli.rounding`);
    the digits beyond are run-to-run noise."""
    record = asdict(stats)
    for key in ("min", "median", "p90", "mean", "std", "images_per_s"):
        record[key] = significant(record[key])
    return record


def _model_for(
    name: str | None, weights: str | None, width: float | None, resolution: int | None
) -> tuple[str, torch.nn.Module, Path | None, int, ModelCard | None]:
    """(registry name, model, exported graph or None, resolution, card of real weights or None)
    for what ``profile`` was given.

    An exported file is counted as the model its card describes and timed as it is; other weights
    are loaded (their width and classes count); without weights, the registry model, randomly
    initialised (weights change no cost).
    """
    from ..factory import create_model
    from ..inference.exported import is_exported, read_card
    from ..model import MobileNetV3
    from ..registry import get_entry

    if weights is not None and is_exported(weights):
        card = read_card(weights)
        if name and get_entry(name).name != card.model_name:
            raise UserError(f"--model {name}: {weights} holds {card.model_name}")
        size = card.preprocess.input_size
        if width is not None:
            raise UserError(f"--width {width:g}: {weights} is an exported graph of fixed width")
        if resolution and resolution != size:
            raise UserError(f"--resolution {resolution}: {weights} is fixed to {size}x{size}")
        arch = (get_entry(card.model_name).arch if card.model_name != "custom" else {}) | dict(card.arch)
        model = MobileNetV3(**arch, num_classes=card.num_classes).eval()
        return card.model_name, model, Path(weights), size, card
    overrides: dict[str, Any] = {"width": width} if width is not None else {}
    if weights is not None:
        from ..weights.loader import load_model

        loaded = load_model(weights, model_name=name, progress=False, **overrides)
        card = replace(loaded.card, preprocess=loaded.card.preprocess.at_resolution(resolution))
        return loaded.card.model_name, loaded.model, None, card.preprocess.input_size, card
    if name is None:
        raise UserError("nothing to profile: give a model name or weights")
    entry = get_entry(name)
    model = create_model(entry.name, **overrides).eval()
    return entry.name, model, None, resolution or 224, None


def profile_model(
    name: str | None,
    *,
    width: float | None = None,
    resolution: int | None = None,
    batch_sizes: Sequence[int] = (1,),
    device: str | torch.device = "cpu",
    backends: Sequence[str] | None = None,
    runs: int = 50,
    warmup: int = 10,
    threads: int | None = None,
    on_step: Callable[[str], None] | None = None,
    weights: str | None = None,
    top1_on: Callable[[Callable, ModelCard], float] | None = None,
) -> ModelProfile:
    """Count and time the registered model ``name`` (randomly initialised: weights change no cost),
    or ``weights``: a weights file, or an exported ``.onnx``/``.xml`` graph timed as it is.

    ``backends=None`` compares every backend available on ``device`` (the others are listed in
    ``skipped_backends``); naming an unavailable one is a :class:`UserError`. ``runs=0`` only counts.
    ``top1_on(runner, card)``: the top-1 of a prepared backend (NumPy batch -> logits) for weights
    described by ``card``; measured for every backend row when real weights are given.
    ``resolution``: default 224, or the weights' own.
    """
    from ..inference.device import resolve_device

    device = device if isinstance(device, torch.device) else resolve_device(device)
    name, model, graph, resolution, card = _model_for(name, weights, width, resolution)
    accuracy = functools.partial(_swap, top1_on, card) if top1_on and card else None
    availability = backend_availability(device, graph)
    if backends is None:
        chosen = [b for b, why in availability.items() if why is None]
    else:
        for b in backends:
            if b not in availability:
                raise UserError(f"--backend {b}: unknown backend; choose one of: {', '.join(profile_choices())}")
            if availability[b] is not None:
                raise UserError(f"--backend {b}: {availability[b]}")
        chosen = list(dict.fromkeys(backends))
    latency = (
        measure_latency(
            model,
            backends=chosen,
            batch_sizes=batch_sizes,
            device=device,
            resolution=resolution,
            runs=runs,
            warmup=warmup,
            threads=threads,
            on_step=on_step,
            graph=graph,
            accuracy=accuracy,
        )
        if runs > 0
        else []
    )
    return ModelProfile(
        model=name,
        weights=weights,
        width=cast(dict[str, Any], model.config)["width"],  # MobileNetV3.config
        resolution=resolution,
        params=count_parameters(model),
        compute=count_compute(model, resolution),
        latency=latency,
        skipped_backends={b: why for b, why in availability.items() if why is not None and backends is None},
    )
