"""Exporting a model to ONNX and TorchScript files (and the frozen TorchScript module in memory).

Both exporters are deprecated-but-working paths in torch 2.14: ``torch.onnx.export`` now defaults to
the ``torch.export``-based exporter, which needs the ``onnxscript`` package and takes ~6 s for
MobileNetV3-Small; the TorchScript-based exporter (``dynamo=False``) needs nothing beyond torch and
``onnx``, takes ~0.3 s and gives a graph ONNX Runtime runs as fast. Their deprecation warnings are
silenced here, where the choice is made, so that users do not see them on every run.

:func:`export_verified` is the one export-then-check path: ``mnv3 export`` and the ONNX cache both
use it, so what a user exports and what ``predict`` runs are made and proven the same way. torch is
imported inside the functions: :data:`DEFAULT_OPSET` is read by the warm ``predict`` path (the cache key)
and by the CLI's option defaults, neither of which may pay for torch.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..fileio import atomic_write

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..registry import ModelCard
    from ..registry.types import Preprocess

ONNX_INPUT, ONNX_OUTPUT = "input", "logits"
DEFAULT_OPSET = 17  # the one ONNX opset: `mnv3 export`'s default and the cache's (part of its key)


@contextlib.contextmanager
def _quiet_deprecations() -> Iterator[None]:
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.")
        warnings.filterwarnings("ignore", message=r".*(legacy TorchScript-based ONNX|will be removed)")
        # tracing reads sizes as Python numbers: the spatial size is fixed on purpose
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        # a constant pad's amounts are a Slice with step -1 the folder skips; ONNX Runtime folds it
        warnings.filterwarnings("ignore", message=r"Constant folding - Only steps=1")
        yield


def _example(model: nn.Module, input_size: int | tuple[int, int], in_channels: int = 3) -> torch.Tensor:
    import torch

    h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    return torch.randn(1, in_channels, h, w, device=device)


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    input_size: int | tuple[int, int] = 224,
    in_channels: int = 3,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    static: bool = True,
    card: ModelCard | None = None,
) -> Path:
    """Write ``model`` (in eval mode) as an ONNX graph with input ``input`` and output ``logits``.

    The graph is static for ``input_size``: every TF "same" padding is a constant computed at export
    (:func:`~mnv3cli.model.static_padding`), so the graph holds no shape arithmetic and runs ~1.5x
    faster than one that recomputes paddings per run (``static=False`` writes that older graph, for
    comparisons). Only the batch axis stays dynamic (unless ``dynamic_batch`` is false). ``card``
    (class names, preprocessing) goes into the file's metadata, so that the file alone is usable as
    ``--weights`` (:mod:`.exported`). The file is written atomically.
    """
    import io

    import onnx
    import torch

    from ..model import static_padding
    from .exported import CARD_KEY, card_json

    path = Path(path)
    example = _example(model, input_size, in_channels)
    axes = {ONNX_INPUT: {0: "batch"}, ONNX_OUTPUT: {0: "batch"}} if dynamic_batch else None
    with _quiet_deprecations(), torch.inference_mode(False), torch.no_grad():
        model = static_padding(model.eval(), example) if static else model.eval()
        buffer = io.BytesIO()
        torch.onnx.export(
            model,
            (example,),
            buffer,  # type: ignore[arg-type]  # torch's annotation omits the file objects it documents and takes
            dynamo=False,
            opset_version=opset,
            input_names=[ONNX_INPUT],
            output_names=[ONNX_OUTPUT],
            dynamic_axes=axes,
            do_constant_folding=True,
        )
    graph = onnx.load_from_string(buffer.getvalue())
    if card is not None:
        onnx.helper.set_model_props(graph, {CARD_KEY: card_json(card)})
    graph.producer_name = "mnv3"
    with atomic_write(path, "wb") as fh:
        fh.write(graph.SerializeToString())
    return path


def export_openvino(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    input_size: int = 224,
    card: ModelCard | None = None,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Write OpenVINO IR (``path`` = ``NAME.xml``, weights beside it in ``NAME.bin``, f32), made
    from the static ONNX graph, with the card in the IR's runtime info (:func:`.openvino_backend.write_ir`)."""
    import tempfile

    from .openvino_backend import write_ir

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)  # its staging folder lives beside it
    with tempfile.TemporaryDirectory(prefix=".mnv3-ir-", dir=path.parent) as tmp:
        onnx_path = export_onnx(model, Path(tmp) / "model.onnx", input_size=input_size, opset=opset)
        return write_ir(onnx_path, path, card)


def to_torchscript(model: nn.Module) -> torch.jit.ScriptModule:
    """The model scripted (any input size and batch) and frozen: weights inlined, BN folded."""
    import torch

    with _quiet_deprecations():
        return torch.jit.freeze(torch.jit.script(model.eval()))


def export_torchscript(model: nn.Module, path: str | os.PathLike, card: ModelCard | None = None) -> Path:
    """Write the frozen TorchScript module (loadable with ``torch.jit.load``) atomically, with the
    card (head type, thresholds, classes) as the extra file ``mnv3_card.json`` when given."""
    import torch

    from .exported import card_json

    path = Path(path)
    scripted = to_torchscript(model)
    extra = {"mnv3_card.json": card_json(card)} if card is not None else {}
    with _quiet_deprecations(), atomic_write(path, "wb") as fh:
        torch.jit.save(scripted, fh, _extra_files=extra)
    return path


def export_verified(
    model: nn.Module,
    path: str | os.PathLike,
    preprocess: Preprocess,
    fmt: str = "onnx",
    opset: int = DEFAULT_OPSET,
    image: str | os.PathLike | None = None,
    card: ModelCard | None = None,
) -> float:
    """Write ``model`` as ``fmt`` (a registered export format: ``mnv3 export --format``) to ``path``,
    then run the file (on the backend that owns the format) and PyTorch on ``image`` (default: a
    generated photo), preprocessed with ``preprocess``; returns the largest logit difference. ONNX
    and IR graphs are static at ``preprocess.input_size`` and carry ``card`` (its preprocessing
    replaced by ``preprocess``).

    The file is kept whatever the difference: the caller decides (``mnv3 export`` keeps it for
    inspection and exits 1, the cache refuses the entry). ``OSError`` means the file was not written.
    """
    from dataclasses import replace

    from .backend_registry import get_export_format
    from .verify import export_difference, sample_batch

    card = replace(card, preprocess=preprocess) if card is not None else None
    entry, export = get_export_format(fmt)
    export.write(model, Path(path), input_size=preprocess.input_size, opset=opset, card=card)
    return export_difference(model, entry, export, Path(path), sample_batch(preprocess, image))
