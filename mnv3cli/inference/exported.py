"""Exported files as weights: ``--weights model.onnx`` or ``--weights model.xml`` (OpenVINO IR).

What a graph alone cannot say (the class names, the preprocessing, which model it is) travels inside
the file: ``mnv3 export`` (and the ONNX cache) store the weights' :class:`~mnv3cli.registry.ModelCard`
as JSON under :data:`CARD_KEY`, in the ONNX file's ``metadata_props`` or the IR's runtime info
(``<rt_info><mnv3><card>``). Opening such a file needs no torch and no cache: the graph runs as it
is, on ONNX Runtime (``.onnx``) or OpenVINO (``.xml``, or ``.onnx`` with ``--backend openvino``).
A graph without that card is refused rather than guessed at: preprocessing a model with the wrong
mean, crop or class order gives confident, wrong answers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..registry import ModelCard, get_entry

CARD_KEY = "mnv3.card"  # ONNX metadata key; the IR's runtime-info path is CARD_KEY.split(".")
SUFFIXES = {".onnx": "onnxruntime", ".xml": "openvino"}


def is_exported(weights: str | os.PathLike | None) -> bool:
    """Whether ``weights`` names an exported graph (by suffix; the file need not exist yet)."""
    return weights is not None and Path(weights).suffix.lower() in SUFFIXES


def card_json(card: ModelCard) -> str:
    return json.dumps(card.to_dict(), separators=(",", ":"))


def _card(text: str | None, path: Path) -> ModelCard:
    if not text:
        raise UserError(
            f"{path}: carries no mnv3 model card (class names and preprocessing); "
            "export it with `mnv3 export` to use it as --weights"
        )
    try:
        return ModelCard.from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: its mnv3 model card is damaged ({exc})") from None


def onnx_card(metadata: dict[str, str], path: Path) -> ModelCard:
    """The card in an ONNX file's metadata (``session.get_modelmeta().custom_metadata_map``)."""
    return _card(metadata.get(CARD_KEY), path)


def openvino_card(model, path: Path) -> ModelCard:
    """The card in an ``openvino.Model``'s runtime info: where ``mnv3 export`` puts it in IR, or
    where OpenVINO's ONNX reader puts ONNX metadata (``framework``)."""
    for where in (CARD_KEY.split("."), ["framework", CARD_KEY]):
        if model.has_rt_info(where):
            return _card(model.get_rt_info(where).astype(str), path)
    return _card(None, path)


def read_card(path: str | os.PathLike) -> ModelCard:
    """The card inside an exported file, without preparing it to run (``mnv3 profile``)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"--weights {path}: no such file")
    if path.suffix.lower() == ".xml":
        from .openvino_backend import read_model

        return openvino_card(read_model(path), path)
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, ValueError ... for a file that is no graph
        raise UserError(f"{path}: not a usable ONNX model ({type(exc).__name__})") from None
    return onnx_card({p.key: p.value for p in graph.metadata_props}, path)


def choose_exported_backend(path: Path, backend: str) -> str:
    """``onnxruntime`` or ``openvino`` for an exported file and a ``--backend``."""
    native = SUFFIXES[path.suffix.lower()]
    if backend == "auto":
        return native
    if backend == "torch":
        raise UserError(
            f"--weights {path}: an exported graph runs on onnxruntime or openvino, "
            "not --backend torch (give the original weights for torch)"
        )
    if backend == "onnxruntime" and native == "openvino":
        raise UserError(
            f"--weights {path}: ONNX Runtime cannot read OpenVINO IR; use --backend "
            "openvino (or export with --format onnx)"
        )
    return backend


def open_exported(
    path: str | os.PathLike,
    model_name: str | None,
    backend: str,
    device: str,
    *,
    threads: int | None,
    pipelined: bool,
    resolution: int | None,
    precision: str = "f32",
    cache_dir: Path | None = None,
) -> tuple[Any, ModelCard]:
    """A ready backend for the exported file ``path`` and the card it carries.

    ``model_name`` and ``resolution`` are checks: the file fixes both, so asking for others is an
    error that says how to get them (export again).
    """
    from . import graph_checks, onnx_backend, openvino_backend

    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"--weights {path}: no such file")
    chosen = choose_exported_backend(path, backend)
    if chosen == onnx_backend.NAME:
        runner = onnx_backend.OnnxBackend(path, threads=threads, device=device, spinning=not pipelined)
        card = onnx_card(runner.session.get_modelmeta().custom_metadata_map, path)
        graph_checks.check_onnx(path, runner.session, card)
    else:
        openvino_backend.check_device(device)
        model = openvino_backend.read_model(path)
        card = openvino_card(model, path)
        graph_checks.check_openvino(path, model, card)
        runner = openvino_backend.OpenVinoBackend(
            path, threads=threads, precision=precision, cache_dir=cache_dir, model=model
        )
    if model_name and get_entry(model_name).name != card.model_name:
        raise UserError(f"--model {model_name}: {path} holds {card.model_name}")
    size = runner.input_shape[-1]
    if size != card.preprocess.input_size:
        raise UserError(
            f"{path}: its graph takes {size}x{size} images but its card says "
            f"{card.preprocess.input_size}; export it again"
        )
    if resolution and resolution != size:
        raise UserError(
            f"--resolution {resolution}: {path} is fixed to {size}x{size}; export it "
            f"again with `mnv3 export --resolution {resolution}`"
        )
    return runner, card
