"""``profile_model``: a registered model's parameters, compute and latency in one record.

Plain functions returning dataclasses; the ``profile`` command only formats them. Counting lives in
:mod:`.counting`, timing and memory in :mod:`.timing`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ..errors import UserError
from ..rounding import significant
from .counting import ComputeCount, ParamCount, count_compute, count_parameters
from .timing import BACKENDS, LatencyStats, backend_availability, measure_latency

# ------------------------------------------------------------------------------------------ together

@dataclass
class ModelProfile:
    model: str
    width: float
    resolution: int
    params: ParamCount
    compute: ComputeCount
    latency: list[LatencyStats] = field(default_factory=list)
    skipped_backends: dict[str, str] = field(default_factory=dict)

    def to_dict(self, per_layer: bool = False) -> dict[str, Any]:
        """The ``--json`` record: ``latency_ms`` is the first backend's batch-1 (or smallest) stats;
        times rounded to 3 significant digits."""
        first = (min((s for s in self.latency if s.backend == self.latency[0].backend),
                     key=lambda s: s.batch_size) if self.latency else None)
        stages = [g for g in self.params.per_stage  # parts with weights or work (not pool/dropout)
                  if self.params.per_stage[g] or self.compute.per_stage.get(g)]
        record: dict[str, Any] = {
            "model": self.model, "width": self.width, "resolution": self.resolution,
            "params": self.params.total, "trainable_params": self.params.trainable,
            "params_per_stage": {g: n for g, n in self.params.per_stage.items() if g in stages},
            "size_bytes": {"fp32": self.params.bytes_fp32, "fp16": self.params.bytes_fp16},
            "macs": self.compute.macs, "flops": self.compute.flops,
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


def _rounded(stats: LatencyStats) -> dict[str, Any]:
    """A timing as JSON: milliseconds and images/s to 3 significant digits (:mod:`mnv3cli.rounding`);
    the digits beyond are run-to-run noise."""
    record = asdict(stats)
    for key in ("min", "median", "p90", "mean", "std", "images_per_s"):
        record[key] = significant(record[key])
    return record


def profile_model(name: str, *, width: float | None = None, resolution: int = 224,
                  batch_sizes: Sequence[int] = (1,), device: str | torch.device = "cpu",
                  backends: Sequence[str] | None = None, runs: int = 50, warmup: int = 10,
                  threads: int | None = None,
                  on_step: Callable[[str], None] | None = None) -> ModelProfile:
    """Count and time the registered model ``name`` (randomly initialised: weights change no cost).

    ``backends=None`` compares every backend available on ``device`` (the others are listed in
    ``skipped_backends``); naming an unavailable one is a :class:`UserError`. ``runs=0`` only counts.
    """
    from ..factory import create_model
    from ..inference.device import resolve_device
    from ..registry import get_entry

    entry = get_entry(name)
    device = device if isinstance(device, torch.device) else resolve_device(device)
    model = create_model(entry.name, **({"width": width} if width is not None else {})).eval()
    availability = backend_availability(device)
    if backends is None:
        chosen = [b for b in BACKENDS if availability[b] is None]
    else:
        for b in backends:
            if b not in availability:
                raise UserError(f"--backend {b}: unknown backend; choose from {', '.join(BACKENDS)}")
            if availability[b] is not None:
                raise UserError(f"--backend {b}: {availability[b]}")
        chosen = list(dict.fromkeys(backends))
    latency = (measure_latency(model, backends=chosen, batch_sizes=batch_sizes, device=device,
                               resolution=resolution, runs=runs, warmup=warmup, threads=threads,
                               on_step=on_step) if runs > 0 else [])
    return ModelProfile(model=entry.name, width=model.config["width"], resolution=resolution,
                        params=count_parameters(model), compute=count_compute(model, resolution),
                        latency=latency,
                        skipped_backends={b: why for b, why in availability.items()
                                          if why is not None and backends is None})
