"""From ``(model, weights, backend, device)`` to something that classifies: the backend choice.

``predict`` and ``evaluate`` call :func:`open_runtime` and get a :class:`Runtime`: a backend plus
the class names, WordNet ids and preprocessing of the weights. With ONNX Runtime (``auto`` picks it
when installed) or OpenVINO the graph comes from the :mod:`~mnv3cli.inference.onnx_cache`; on a hit
nothing here imports torch, so a warm ``mnv3 predict`` starts in a fraction of a second. On a miss
the weights are loaded with PyTorch once, exported, checked against PyTorch, and cached. An
exported file (``.onnx``, ``.xml``) is run as it is, with the card it carries (:mod:`.exported`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..registry import ModelCard, default_weights, get_entry
from ..weights.download import (
    sha256_file,  # the loader's hash (ModelCard.sha256): the cache key
)
from . import BACKENDS, onnx_backend, openvino_backend
from .backends import Backend
from .export import DEFAULT_OPSET
from .exported import is_exported
from .onnx_cache import Entry, OnnxCache, cache_key, weights_file


@dataclass(frozen=True)
class Runtime:
    """A ready backend and the card that says what its outputs mean (``runtime.card.class_names``)."""

    backend: Backend
    card: ModelCard


def choose_backend(backend: str = "auto", device: str = "auto") -> str:
    """``torch``, ``onnxruntime`` or ``openvino`` for a ``--backend``/``--device`` pair.

    ``auto`` is ONNX Runtime when it is installed and can serve the device (CPU, or CUDA with
    onnxruntime-gpu), else PyTorch: ``--device mps`` or ``--device cuda`` without onnxruntime-gpu
    go to torch. On the CPU, ONNX Runtime on the static graph took 0.8-0.9x the time of OpenVINO f32
    on the same graph at batch 1 and 32 on a quiet machine (``benchmarks/static_export.py``), and it
    has no compilation step, so ``auto`` never picks OpenVINO; ``--backend openvino`` asks for it.
    """
    if backend not in BACKENDS:
        raise UserError(f"--backend {backend}: unknown backend; choose one of: {', '.join(BACKENDS)}")
    if backend == "torch":
        return "torch"
    if backend == openvino_backend.NAME:
        openvino_backend.require()
        openvino_backend.check_device(device)
        return openvino_backend.NAME
    if not onnx_backend.available():
        if backend == onnx_backend.NAME:
            raise UserError("--backend onnxruntime: onnxruntime is not installed (pip install onnxruntime)")
        return "torch"
    if backend == "auto" and (device or "auto").split(":", 1)[0] not in ("auto", "cpu"):
        try:
            onnx_backend.providers_for(device)
        except UserError:
            return "torch"
    return onnx_backend.NAME


@dataclass(frozen=True)
class _Serving:
    """How to run a graph: which engine, where, with how many threads, at which precision."""

    backend: str
    device: str
    threads: int | None
    pipelined: bool
    precision: str
    cache: OnnxCache

    def open(self, entry: Entry) -> Runtime:
        if self.backend == openvino_backend.NAME:
            runner = openvino_backend.OpenVinoBackend(
                entry.model_path, threads=self.threads, precision=self.precision, cache_dir=self.cache.root / "openvino"
            )
        else:
            runner = onnx_backend.OnnxBackend(
                entry.model_path, threads=self.threads, device=self.device, spinning=not self.pipelined
            )
        return Runtime(runner, entry.card)


def open_runtime(
    weights: str | None,
    model_name: str | None = None,
    backend: str = "auto",
    device: str = "auto",
    *,
    threads: int | None = None,
    cache: OnnxCache | None = None,
    notify: Callable[[str], None] | None = None,
    overrides: dict[str, Any] | None = None,
    pipelined: bool = False,
    resolution: int | None = None,
    precision: str = "f32",
) -> Runtime:
    """Load ``weights`` (anything the checkpoint loader accepts) behind the chosen backend.

    ``resolution``: the input height and width to run at (default: the weights' own). ONNX graphs
    are static for one resolution, so each resolution is its own cache entry.
    ``notify`` receives one-line status messages meant for a person (building the cache).
    ``pipelined``: many batches will run while threads decode the next ones, so ONNX Runtime's
    threads must not busy-wait on the cores the decoders need (see ``session_options``).
    ``precision``: OpenVINO's inference precision (``f32``, ``bf16``, ``f16``); other backends
    run in f32 and refuse anything else.
    """
    model_name = get_entry(model_name).name if model_name else None  # aliases share a cache entry
    weights = weights or default_weights(model_name)
    notify = notify or (lambda message: None)
    overrides = dict(overrides or {})
    cache = cache or OnnxCache()
    if is_exported(weights):
        from .exported import choose_exported_backend, open_exported

        chosen = choose_exported_backend(Path(weights), backend)
        _check_precision(chosen, precision)
        runner, card = open_exported(
            weights,
            model_name,
            chosen,
            device,
            threads=threads,
            pipelined=pipelined,
            resolution=resolution,
            precision=precision,
            cache_dir=cache.root / "openvino",
        )
        return Runtime(runner, card)
    chosen = choose_backend(backend, device)
    _check_precision(chosen, precision)
    if chosen == "torch":
        return _torch_runtime(weights, model_name, device, overrides, resolution)
    if chosen == onnx_backend.NAME:
        onnx_backend.providers_for(device)  # a device ONNX Runtime cannot serve: say so before any work
    serving = _Serving(chosen, device, threads, pipelined, precision, cache)
    path = weights_file(weights, model_name)  # None: a tag not downloaded yet (the loader fetches it)
    key = cache_key(sha256_file(path), model_name, DEFAULT_OPSET, overrides, resolution) if path else None
    entry = cache.lookup(key) if key else None
    if entry is not None:
        try:
            return serving.open(entry)
        except UserError as exc:  # e.g. model.onnx damaged on disk: rebuild it
            notify(f"ONNX cache entry {entry.directory} is unusable ({exc}); rebuilding it")
            cache.remove(key)
    return _build(weights, model_name, serving, notify, overrides, resolution)


def _check_precision(backend: str, precision: str) -> None:
    if precision not in openvino_backend.PRECISIONS:
        raise UserError(f"--precision {precision}: choose one of {', '.join(openvino_backend.PRECISIONS)}")
    if precision != "f32" and backend != openvino_backend.NAME:
        raise UserError(
            f"--precision {precision}: only the openvino backend runs in {precision} "
            f"(this run uses {backend}); add --backend openvino"
        )


def _load(weights: str, model_name: str | None, overrides: dict[str, Any], resolution: int | None):
    """The loaded model (with its card's temperature: a calibrated checkpoint's temperature is part
    of every backend's graph, and of the file the cache key hashes) and its card, the card's
    preprocessing set to ``resolution``."""
    from ..model import with_temperature
    from ..weights.loader import load_model

    loaded = load_model(weights, model_name=model_name, **overrides)
    card = loaded.card
    model = with_temperature(loaded.model, card.temperature)
    return model, replace(card, preprocess=card.preprocess.at_resolution(resolution))


def _torch_runtime(
    weights: str, model_name: str | None, device: str, overrides: dict[str, Any], resolution: int | None
) -> Runtime:
    from .backends import TorchBackend
    from .device import resolve_device

    model, card = _load(weights, model_name, overrides, resolution)
    return Runtime(TorchBackend(model, resolve_device(device)), card)


def _build(
    weights: str,
    model_name: str | None,
    serving: _Serving,
    notify: Callable[[str], None],
    overrides: dict[str, Any],
    resolution: int | None,
) -> Runtime:
    """Load with torch, export, verify; cache the graph under the content hash the loader computed
    (of the file it read, or just downloaded for a tag: the file :func:`weights_file` finds next time)."""
    from .export import export_verified
    from .verify import TOLERANCE

    model, card = _load(weights, model_name, overrides, resolution)

    def export(target: Path) -> None:
        difference = export_verified(model, target, card.preprocess, opset=DEFAULT_OPSET, card=card)
        if difference > TOLERANCE:
            raise UserError(
                f"{weights}: the exported ONNX graph differs from PyTorch by {difference:.3g} "
                f"(> {TOLERANCE:g}); use --backend torch"
            )

    cache = serving.cache
    if card.sha256 is not None:
        notify(f"building ONNX cache for {card.model_name} ({weights}) (one time)")
        key = cache_key(card.sha256, model_name, DEFAULT_OPSET, overrides, resolution)
        try:
            return serving.open(cache.store(key, export, card))
        except OSError as exc:  # read-only or full disk: still serve this run
            notify(f"cannot write the ONNX cache under {cache.root} ({exc}); exporting for this run only")
    else:
        notify(f"exporting {card.model_name} to ONNX for this run only ({weights} is not a file that can be cached)")
    with tempfile.TemporaryDirectory(prefix="mnv3-onnx-") as tmp:
        entry = OnnxCache(tmp).store({"weights": weights}, export, card)
        return serving.open(entry)  # the session holds the graph in memory
