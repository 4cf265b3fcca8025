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
from . import PRECISIONS
from .backend_registry import OpenOptions, choose_backend, get_backend, list_backends
from .backends import Backend
from .export import DEFAULT_OPSET
from .exported import is_exported
from .onnx_cache import Entry, OnnxCache, cache_key, weights_file


@dataclass(frozen=True)
class Runtime:
    """A ready backend and the card that says what its outputs mean (``runtime.card.class_names``)."""

    backend: Backend
    card: ModelCard


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
        options = OpenOptions(
            device=self.device,
            threads=self.threads,
            pipelined=self.pipelined,
            precision=self.precision,
            cache_dir=self.cache.root / self.backend,  # compiled graphs, beside the ONNX cache
        )
        return Runtime(get_backend(self.backend).open(entry.model_path, options), entry.card)


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
        options = OpenOptions(
            device=device, threads=threads, pipelined=pipelined, precision=precision, cache_dir=cache.root / chosen
        )
        return Runtime(*open_exported(weights, model_name, chosen, options, resolution=resolution))
    chosen = choose_backend(backend, device)  # a graph engine that cannot serve the device: said before any work
    _check_precision(chosen, precision)
    if get_backend(chosen).kind == "model":
        return _model_runtime(chosen, weights, model_name, device, overrides, resolution)
    serving = _Serving(chosen, device, threads, pipelined, precision, cache)
    path = weights_file(weights, model_name)  # None: a tag not downloaded yet (the loader fetches it)
    key = cache_key(sha256_file(path), model_name, DEFAULT_OPSET, overrides, resolution) if path else None
    entry = cache.lookup(key) if key else None
    if entry is not None and key is not None:
        try:
            cache.verify(entry)  # its files as they were built (sha256 in meta.json)
            return serving.open(entry)
        except UserError as exc:  # e.g. model.onnx damaged on disk: rebuild it
            notify(f"ONNX cache entry {entry.directory} is unusable ({exc}); rebuilding it")
            cache.remove(key)
    return _build(weights, model_name, serving, notify, overrides, resolution)


def _check_precision(backend: str, precision: str) -> None:
    if precision not in PRECISIONS:
        raise UserError(f"--precision {precision}: choose one of {', '.join(PRECISIONS)}")
    if precision not in get_backend(backend).precisions:
        able = [e.name for e in list_backends() if precision in e.precisions]
        raise UserError(
            f"--precision {precision}: only the {' or '.join(able)} backend runs in {precision} "
            f"(this run uses {backend}); add --backend {able[0]}"
        )


def _load(weights: str, model_name: str | None, overrides: dict[str, Any], resolution: int | None):
    """The loaded model (with its card's temperature: a calibrated checkpoint's temperature is part
    of every backend's graph, and of the file the cache key hashes) and its card, the card's
    preprocessing set to ``resolution``."""
    from ..model import with_temperature
    from ..weights.loader import load_model

    loaded = load_model(weights, model_name=model_name, **overrides)
    card = loaded.card
    model = with_temperature(loaded.model, card.temperature, card.class_temperatures)
    return model, replace(card, preprocess=card.preprocess.at_resolution(resolution))


def _model_runtime(
    backend: str,
    weights: str,
    model_name: str | None,
    device: str,
    overrides: dict[str, Any],
    resolution: int | None,
) -> Runtime:
    """A backend that runs the loaded torch model itself (``kind="model"``: PyTorch)."""
    model, card = _load(weights, model_name, overrides, resolution)
    return Runtime(get_backend(backend).open(model, OpenOptions(device=device)), card)


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
        notify(f"building ONNX cache for {card.model_name} (weights: {weights}; first run only)")
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
