"""What a model costs in time and memory: latency per backend and batch size, peak memory.

Latency is timed per backend on a device-resident input: warm-up, then ``runs`` timed calls, each
synchronised on CUDA so the clock sees the GPU work and not just the kernel launches. Peak memory is
the growth of the process's peak RSS (CPU) or of torch's max allocated bytes (CUDA) over the runs.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from ..errors import UserError
from ..inference.backend_registry import OpenOptions, describe_file, get_backend, list_backends
from ..inference.export import export_onnx

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
    top1: float | None = None  # percent, on the --data images, of this very backend (when measured)


def summarize(times_ms: Sequence[float], batch_size: int) -> dict[str, float]:
    """min / median / p90 (nearest rank) / mean / std of per-batch times, and images per second."""
    ordered = sorted(times_ms)
    median = statistics.median(ordered)
    return {
        "min": ordered[0],
        "median": median,
        "p90": ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)],
        "mean": statistics.fmean(ordered),
        "std": statistics.stdev(ordered) if len(ordered) > 1 else 0.0,
        "images_per_s": batch_size * 1000.0 / median if median > 0 else math.inf,
    }


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


def backend_availability(device: torch.device, graph: Path | None = None) -> dict[str, str | None]:
    """Each timing row of every registered backend -> None when it can run on ``device`` (and the
    exported file ``graph``, when given), else the reason it cannot."""
    available: dict[str, str | None] = {}
    for entry in list_backends():
        why = entry.unavailable() or entry.unavailable(str(device))
        if why is None and graph is not None and not entry.opens(graph.suffix):
            readers = ", ".join(e.name for e in list_backends() if e.opens(graph.suffix))
            why = (
                f"{graph.name} is an exported graph ({readers} only)"
                if entry.kind == "model"
                else f"{graph.name} is {describe_file(graph)}"
            )
        available.update(dict.fromkeys(entry.rows, why))
    return available


Runner = Callable[[], Any]


class _Prepared(NamedTuple):
    """A backend ready to time: ``forward(convert(example))`` is one inference."""

    forward: Callable[[Any], Any]
    convert: Callable[[torch.Tensor], Any]


def _prepare(
    model: nn.Module,
    backend: str,
    device: torch.device,
    resolution: int,
    in_channels: int,
    threads: int,
    workdir: Path,
    graph: Path | None = None,
) -> _Prepared:
    """Open the timing row ``backend`` through its registry entry, once; any batch size then runs on
    it. A graph engine runs the model exported to ONNX (or the exported file ``graph`` as it is) on
    a host NumPy batch, as ``predict`` does; the torch model runs on a device-resident input."""
    entry = get_backend(backend)
    options = OpenOptions(device=str(device), threads=threads, variant=backend if backend != entry.name else None)
    if entry.kind == "model":
        runner = entry.open(model, options)
        return _Prepared(runner.forward, runner.to_input)
    path = graph or export_onnx(model, workdir / "model.onnx", input_size=resolution, in_channels=in_channels)
    return _Prepared(entry.open(path, options), lambda x: x.cpu().numpy())


def _numpy_runner(prepared: _Prepared) -> Callable:
    """The prepared backend as a NumPy batch -> NumPy logits callable (for :func:`accuracy`)."""

    def run(images):
        out = prepared.forward(prepared.convert(torch.from_numpy(images)))
        return out.float().cpu().numpy() if isinstance(out, torch.Tensor) else out

    return run


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


def measure_latency(
    model: nn.Module,
    *,
    backends: Sequence[str],
    batch_sizes: Sequence[int],
    device: torch.device,
    resolution: int = 224,
    in_channels: int = 3,
    runs: int = 50,
    warmup: int = 10,
    threads: int | None = None,
    on_step: Callable[[str], None] | None = None,
    graph: Path | None = None,
    accuracy: Callable[[Callable], float] | None = None,
) -> list[LatencyStats]:
    """Time every backend at every batch size; the model is copied, never modified.

    Each backend is prepared once (exported, scripted) and every batch size runs on it; the
    allocator is settled first so that the order of backends does not bias the comparison.
    ``graph``: an exported file the graph backends run instead of exporting ``model``.
    ``accuracy``: called with each prepared backend (a NumPy batch -> logits callable), returns its
    top-1, so that speed and accuracy in one table are of the very same artefact.
    """
    import copy

    results = []
    settle_allocator()
    model = copy.deepcopy(model).eval().to(device)
    generator = torch.Generator().manual_seed(0)
    with torch_threads(threads) as used, tempfile.TemporaryDirectory(prefix="mnv3-profile-") as tmp:
        for backend in backends:
            prepared = _prepare(copy.deepcopy(model), backend, device, resolution, in_channels, used, Path(tmp), graph)
            top1 = accuracy(_numpy_runner(prepared)) if accuracy is not None else None
            for batch in batch_sizes:
                if on_step:
                    on_step(f"{backend}, batch {batch}")
                try:
                    x = prepared.convert(torch.randn(batch, in_channels, resolution, resolution, generator=generator))
                    with _peak_memory(device) as memory:
                        times = time_runner(
                            functools.partial(prepared.forward, x), runs=runs, warmup=warmup, device=device
                        )
                except (MemoryError, RuntimeError) as exc:
                    if not _out_of_memory(exc):
                        raise
                    raise UserError(
                        f"--batch-size {batch}: not enough memory on {device} for "
                        f"{batch} images of {resolution}x{resolution} ({backend})"
                    ) from None
                results.append(
                    LatencyStats(
                        backend=backend,
                        batch_size=batch,
                        device=str(device),
                        threads=used,
                        runs=runs,
                        warmup=warmup,
                        **summarize(times, batch),
                        peak_memory_bytes=memory["bytes"],
                        memory_kind=memory["kind"],
                        top1=top1,
                    )
                )
    return results
