"""What a model costs: parameters, compute (MACs / FLOPs / elementwise work) and measured latency.

Plain functions returning dataclasses; the ``profile`` command only formats them. Counting uses
forward hooks on one batch-1 forward pass, so it works for any resolution and width and for any
``nn.Module`` (elementwise work is recognised on this package's blocks and torch's activations).
Latency is timed per backend on a device-resident input: warm-up, then ``runs`` timed calls, each
synchronised on CUDA so the clock sees the GPU work and not just the kernel launches.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import math
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from ..errors import UserError
from ..model.layers import InvertedResidual, SqueezeExcite
from .export import export_onnx, to_torchscript

CONVENTION = ("MACs: multiply-accumulates of Conv2d and Linear layers for one image, bias excluded "
              "(the paper's and torchvision's convention); FLOPs = 2 x MACs; elementwise ops "
              "(activations, batch norm, SE pooling and scaling, residual adds, global pooling; one "
              "op per element) are counted separately")

BACKENDS = ("eager", "channels_last", "torchscript", "onnxruntime")

_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.SiLU, nn.Sigmoid, nn.GELU)
_POOLS = (nn.AdaptiveAvgPool2d, nn.AvgPool2d, nn.AdaptiveMaxPool2d, nn.MaxPool2d)


# --------------------------------------------------------------------------------------------- params

def module_groups(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's top-level parts, with ``stages`` split into its stages (``stages.0`` ...).

    These are the rows of the per-stage tables; every parameter belongs to exactly one group.
    """
    groups = []
    for name, child in model.named_children():
        if name == "stages" and isinstance(child, nn.Sequential):
            groups.extend((f"stages.{i}", stage) for i, stage in enumerate(child))
        else:
            groups.append((name, child))
    return groups


def _group_of(name: str, groups: Sequence[str]) -> str:
    return next((g for g in groups if name == g or name.startswith(g + ".")), "other")


@dataclass
class ParamCount:
    total: int
    trainable: int
    per_stage: dict[str, int]
    bytes_fp32: int  # size of the state dict saved as .safetensors with float tensors in fp32
    bytes_fp16: int  # ... and in fp16


def _safetensors_size(state: dict[str, torch.Tensor], dtype: torch.dtype) -> int:
    from safetensors.torch import save

    cast = {k: (v.to(dtype) if v.is_floating_point() else v).detach().cpu().contiguous()
            for k, v in state.items()}
    return len(save(cast))


def count_parameters(model: nn.Module) -> ParamCount:
    """Total, trainable and per-stage parameter counts, and the file size in fp32 and fp16."""
    params = dict(model.named_parameters())
    groups = [g for g, _ in module_groups(model)]
    per_stage = dict.fromkeys(groups, 0)
    for name, p in params.items():
        group = _group_of(name, groups)
        per_stage[group] = per_stage.get(group, 0) + p.numel()
    state = model.state_dict()
    return ParamCount(total=sum(p.numel() for p in params.values()),
                      trainable=sum(p.numel() for p in params.values() if p.requires_grad),
                      per_stage=per_stage, bytes_fp32=_safetensors_size(state, torch.float32),
                      bytes_fp16=_safetensors_size(state, torch.float16))


# -------------------------------------------------------------------------------------------- compute

@dataclass
class LayerCount:
    """One Conv2d or Linear layer of the counted forward pass."""

    name: str
    kind: str  # "conv 3x3/2", "dwconv 5x5", "conv 1x1", "linear"
    stage: str
    output_shape: list[int]
    params: int
    macs: int


@dataclass
class ComputeCount:
    resolution: int
    macs: int
    flops: int
    elementwise: dict[str, int]
    per_stage: dict[str, int]  # MACs
    layers: list[LayerCount]
    convention: str = CONVENTION

    @property
    def elementwise_total(self) -> int:
        return sum(self.elementwise.values())


def _layer_kind(m: nn.Module) -> str:
    if isinstance(m, nn.Linear):
        return "linear"
    kh, kw = m.kernel_size
    depthwise = m.groups > 1 and m.groups == m.in_channels
    stride = f"/{m.stride[0]}" if m.stride[0] > 1 else ""
    return f"{'dwconv' if depthwise else 'conv'} {kh}x{kw}{stride}"


def _macs(m: nn.Module, out: torch.Tensor) -> int:
    """Multiplies per image: every output element costs one MAC per weight that touches it."""
    if isinstance(m, nn.Linear):
        return out[0].numel() * m.in_features
    kh, kw = m.kernel_size
    return out[0].numel() * (m.in_channels // m.groups) * kh * kw


def _elementwise(m: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> dict[str, int]:
    if isinstance(m, _ACTIVATIONS):
        return {"activation": out[0].numel()}
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        return {"batchnorm": out[0].numel()}
    if isinstance(m, SqueezeExcite):  # the mean over H x W and the x * gate product
        return {"se_pool": inp[0].numel(), "se_scale": out[0].numel()}
    if isinstance(m, InvertedResidual) and m.use_residual:
        return {"residual_add": out[0].numel()}
    if isinstance(m, _POOLS):
        return {"global_pool" if out[0].numel() == out.shape[1] else "pool": inp[0].numel()}
    return {}


def count_compute(model: nn.Module, resolution: int = 224, in_channels: int = 3) -> ComputeCount:
    """Count MACs per Conv2d/Linear layer and elementwise ops in one batch-1 forward pass."""
    groups = [g for g, _ in module_groups(model)]
    layers: list[LayerCount] = []
    elementwise: dict[str, int] = {}

    def hook(name: str):
        def record(m: nn.Module, args: tuple, out: torch.Tensor) -> None:
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                layers.append(LayerCount(name, _layer_kind(m), _group_of(name, groups),
                                         list(out.shape[1:]), sum(p.numel() for p in m.parameters()),
                                         _macs(m, out)))
            for key, n in _elementwise(m, args[0], out).items():
                elementwise[key] = elementwise.get(key, 0) + n
        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in model.named_modules() if name]
    param = next(model.parameters(), None)
    x = torch.zeros(1, in_channels, resolution, resolution,
                    device=param.device if param is not None else None)
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    per_stage = dict.fromkeys(groups, 0)
    for layer in layers:
        per_stage[layer.stage] = per_stage.get(layer.stage, 0) + layer.macs
    macs = sum(layer.macs for layer in layers)
    return ComputeCount(resolution=resolution, macs=macs, flops=2 * macs, elementwise=elementwise,
                        per_stage=per_stage, layers=layers)


# -------------------------------------------------------------------------------------------- latency

@dataclass
class LatencyStats:
    backend: str
    batch_size: int
    device: str
    threads: int
    runs: int
    warmup: int
    min: float  # milliseconds per batch
    median: float
    p90: float
    mean: float
    std: float
    images_per_s: float  # batch_size / median
    peak_memory_bytes: int | None
    memory_kind: str  # "cpu_rss_growth" | "cuda_max_allocated"


def summarize(times_ms: Sequence[float], batch_size: int) -> dict[str, float]:
    """min / median / p90 (nearest rank) / mean / std of per-batch times, and images per second."""
    ordered = sorted(times_ms)
    median = statistics.median(ordered)
    return {"min": ordered[0], "median": median,
            "p90": ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)],
            "mean": statistics.fmean(ordered),
            "std": statistics.stdev(ordered) if len(ordered) > 1 else 0.0,
            "images_per_s": batch_size * 1000.0 / median if median > 0 else math.inf}


def _proc_status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of this process; False where Linux's /proc is missing."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _release_free_memory() -> None:
    """Hand memory freed by earlier runs back to the OS (glibc), so RSS growth is this run's own."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: growth may then under-count reused memory
        pass


def settle_allocator() -> None:
    """Put glibc's malloc in the state a long-running process reaches, before anything is timed.

    A fresh process maps and unmaps its activation buffers on every forward pass (glibc's default
    128 KiB mmap threshold): ~650 page faults per MobileNetV3-Small image, about +30 % latency. Freeing
    one large mapped block raises the threshold (glibc's dynamic rule, up to 32 MiB), after which
    buffers are reused; without this the first backend timed would pay those faults and later ones
    not. Elsewhere this is a harmless allocation.
    """
    block = torch.empty(32 * 2**20 - 2**16, dtype=torch.uint8)
    del block


@contextlib.contextmanager
def _peak_memory(device: torch.device) -> Iterator[dict[str, Any]]:
    """Peak memory of the enclosed work: CUDA max allocated, or growth of the process's peak RSS."""
    result: dict[str, Any] = {"bytes": None, "kind": "cpu_rss_growth"}
    if device.type == "cuda":
        result["kind"] = "cuda_max_allocated"
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        yield result
        torch.cuda.synchronize(device)
        result["bytes"] = torch.cuda.max_memory_allocated(device)
        return
    _release_free_memory()
    baseline = _proc_status_kib("VmRSS") if _reset_peak_rss() else None
    yield result
    peak = _proc_status_kib("VmHWM")
    if baseline is not None and peak is not None:
        result["bytes"] = max(0, peak - baseline) * 1024


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Run with ``threads`` intra-op threads (None: leave as is), restoring the previous setting."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def backend_availability(device: torch.device) -> dict[str, str | None]:
    """Each backend -> None when it can run on ``device``, else the reason it cannot."""
    from . import onnx_backend

    available: dict[str, str | None] = dict.fromkeys(BACKENDS[:3])
    if not onnx_backend.available():
        available["onnxruntime"] = "onnxruntime is not installed (pip install onnxruntime)"
    else:
        try:
            onnx_backend.providers_for(str(device))
            available["onnxruntime"] = None
        except UserError as exc:
            available["onnxruntime"] = str(exc)
    return available


Runner = Callable[[], Any]


class _Prepared(NamedTuple):
    """A backend ready to time: ``forward(convert(example))`` is one inference."""

    forward: Callable[[Any], Any]
    convert: Callable[[torch.Tensor], Any]


def _prepare(model: nn.Module, backend: str, device: torch.device, resolution: int, in_channels: int,
             threads: int, workdir: Path) -> _Prepared:
    """Export/convert ``model`` once for ``backend``; any batch size then runs on it."""
    if backend == "onnxruntime":  # the very backend ``predict`` uses, on a host NumPy batch
        from .onnx_backend import OnnxBackend

        path = export_onnx(model, workdir / f"{backend}.onnx", input_size=resolution,
                           in_channels=in_channels)
        return _Prepared(OnnxBackend(path, threads=threads, device=str(device)),
                         lambda x: x.cpu().numpy())
    convert: Callable[[torch.Tensor], Any] = lambda x: x.to(device)
    if backend == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        convert = lambda x: x.to(device).contiguous(memory_format=torch.channels_last)
    elif backend == "torchscript":
        model = to_torchscript(model)
    elif backend != "eager":
        raise UserError(f"--backend {backend}: unknown backend; choose from {', '.join(BACKENDS)}")

    def forward(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(x)
    return _Prepared(forward, convert)


def _out_of_memory(exc: BaseException) -> bool:
    """torch reports a failed CPU allocation as a plain RuntimeError; tell it from real bugs."""
    return isinstance(exc, (MemoryError, torch.OutOfMemoryError)) or "can't allocate memory" in str(exc)


def time_runner(run: Runner, *, runs: int, warmup: int, device: torch.device) -> list[float]:
    """Milliseconds of each of ``runs`` calls after ``warmup`` untimed ones (synchronised on CUDA)."""
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        run()
    sync()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        sync()
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def measure_latency(model: nn.Module, *, backends: Sequence[str], batch_sizes: Sequence[int],
                    device: torch.device, resolution: int = 224, in_channels: int = 3, runs: int = 50,
                    warmup: int = 10, threads: int | None = None,
                    on_step: Callable[[str], None] | None = None) -> list[LatencyStats]:
    """Time every backend at every batch size; the model is copied, never modified.

    Each backend is prepared once (exported, scripted) and every batch size runs on it; the
    allocator is settled first so that the order of backends does not bias the comparison.
    """
    import copy

    results = []
    settle_allocator()
    model = copy.deepcopy(model).eval().to(device)
    generator = torch.Generator().manual_seed(0)
    with torch_threads(threads) as used, tempfile.TemporaryDirectory(prefix="mnv3-profile-") as tmp:
        for backend in backends:
            prepared = _prepare(copy.deepcopy(model), backend, device, resolution, in_channels, used,
                                Path(tmp))
            for batch in batch_sizes:
                if on_step:
                    on_step(f"{backend}, batch {batch}")
                try:
                    x = prepared.convert(torch.randn(batch, in_channels, resolution, resolution,
                                                     generator=generator))
                    with _peak_memory(device) as memory:
                        times = time_runner(functools.partial(prepared.forward, x), runs=runs,
                                            warmup=warmup, device=device)
                except (MemoryError, RuntimeError) as exc:
                    if not _out_of_memory(exc):
                        raise
                    raise UserError(f"--batch-size {batch}: not enough memory on {device} for "
                                    f"{batch} images of {resolution}x{resolution} ({backend})") from None
                results.append(LatencyStats(backend=backend, batch_size=batch, device=str(device),
                                            threads=used, runs=runs, warmup=warmup,
                                            **summarize(times, batch),
                                            peak_memory_bytes=memory["bytes"],
                                            memory_kind=memory["kind"]))
    return results


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
        """The ``--json`` record: ``latency_ms`` is the first backend's batch-1 (or smallest) stats."""
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
            "latency_ms": asdict(first) if first else None,
            "latency": [asdict(s) for s in self.latency],
            "skipped_backends": self.skipped_backends,
        }
        if per_layer:
            record["layers"] = [asdict(layer) for layer in self.compute.layers]
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
    from ..registry import get_entry
    from .device import resolve_device

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
