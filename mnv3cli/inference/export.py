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


def export_onnx(model: nn.Module, path: str | os.PathLike, *, input_size: int | tuple[int, int] = 224,
                in_channels: int = 3, opset: int = DEFAULT_OPSET, dynamic_batch: bool = True,
                static: bool = True) -> Path:
    """Write ``model`` (in eval mode) as an ONNX graph with input ``input`` and output ``logits``.

    The graph is static for ``input_size``: every TF "same" padding is a constant computed at export
    (:func:`~mnv3cli.model.static_padding`), so the graph holds no shape arithmetic and runs ~1.5x
    faster than one that recomputes paddings per run (``static=False`` writes that older graph, for
    comparisons). Only the batch axis stays dynamic (unless ``dynamic_batch`` is false). The file is
    written atomically.
    """
    import torch

    from ..model import static_padding

    path = Path(path)
    example = _example(model, input_size, in_channels)
    axes = {ONNX_INPUT: {0: "batch"}, ONNX_OUTPUT: {0: "batch"}} if dynamic_batch else None
    with _quiet_deprecations(), torch.inference_mode(False), torch.no_grad():
        model = static_padding(model.eval(), example) if static else model.eval()
        with atomic_write(path, "wb") as fh:
            torch.onnx.export(model, (example,), fh, dynamo=False, opset_version=opset,
                              input_names=[ONNX_INPUT], output_names=[ONNX_OUTPUT],
                              dynamic_axes=axes, do_constant_folding=True)
    return path


def to_torchscript(model: nn.Module) -> torch.jit.ScriptModule:
    """The model scripted (any input size and batch) and frozen: weights inlined, BN folded."""
    import torch

    with _quiet_deprecations():
        return torch.jit.freeze(torch.jit.script(model.eval()))


def export_torchscript(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write the frozen TorchScript module (loadable with ``torch.jit.load``) atomically."""
    import torch

    path = Path(path)
    scripted = to_torchscript(model)
    with _quiet_deprecations(), atomic_write(path, "wb") as fh:
        torch.jit.save(scripted, fh)
    return path


def export_verified(model: nn.Module, path: str | os.PathLike, preprocess: Preprocess, fmt: str = "onnx",
                    opset: int = DEFAULT_OPSET, image: str | os.PathLike | None = None) -> float:
    """Write ``model`` as ``fmt`` (``onnx`` or ``torchscript``) to ``path``, then run the file and
    PyTorch on ``image`` (default: a generated photo), preprocessed with ``preprocess``; returns
    the largest logit difference. The ONNX graph's spatial size is ``preprocess.input_size``.

    The file is kept whatever the difference: the caller decides (``mnv3 export`` keeps it for
    inspection and exits 1, the cache refuses the entry). ``OSError`` means the file was not written.
    """
    from .verify import onnx_difference, sample_batch, torchscript_difference

    if fmt == "onnx":
        export_onnx(model, path, input_size=preprocess.input_size, opset=opset)
        measure = onnx_difference
    elif fmt == "torchscript":
        export_torchscript(model, path)
        measure = torchscript_difference
    else:
        raise ValueError(f"unknown export format {fmt!r}")
    return measure(model, path, sample_batch(preprocess, image))
