"""Exporting a model to ONNX and TorchScript files (and the frozen TorchScript module in memory).

Both exporters are deprecated-but-working paths in torch 2.14: ``torch.onnx.export`` now defaults to
the ``torch.export``-based exporter, which needs the ``onnxscript`` package and takes ~6 s for
MobileNetV3-Small; the TorchScript-based exporter (``dynamo=False``) needs nothing beyond torch and
``onnx``, takes ~0.3 s and gives a graph ONNX Runtime runs as fast. Their deprecation warnings are
silenced here, where the choice is made, so that users do not see them on every run.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from ..fileio import atomic_write

ONNX_INPUT, ONNX_OUTPUT = "input", "logits"
DEFAULT_OPSET = 17


@contextlib.contextmanager
def _quiet_deprecations() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.")
        warnings.filterwarnings("ignore", message=r".*(legacy TorchScript-based ONNX|will be removed)")
        # TF "same" padding reads the input size while tracing: the spatial size is fixed on purpose
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield


def _example(model: nn.Module, input_size: int | tuple[int, int], in_channels: int = 3) -> torch.Tensor:
    h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    return torch.randn(1, in_channels, h, w, device=device)


def export_onnx(model: nn.Module, path: str | os.PathLike, *, input_size: int | tuple[int, int] = 224,
                in_channels: int = 3, opset: int = DEFAULT_OPSET, dynamic_batch: bool = True) -> Path:
    """Write ``model`` (in eval mode) as an ONNX graph with input ``input`` and output ``logits``.

    The spatial size is fixed at ``input_size`` (TF "same" padding is computed from it); the batch
    axis is dynamic unless ``dynamic_batch`` is false. The file is written atomically.
    """
    path = Path(path)
    model = model.eval()
    axes = {ONNX_INPUT: {0: "batch"}, ONNX_OUTPUT: {0: "batch"}} if dynamic_batch else None
    with _quiet_deprecations(), torch.inference_mode(False), torch.no_grad(), \
            atomic_write(path, "wb") as fh:
        torch.onnx.export(model, (_example(model, input_size, in_channels),), fh, dynamo=False,
                          opset_version=opset, input_names=[ONNX_INPUT], output_names=[ONNX_OUTPUT],
                          dynamic_axes=axes, do_constant_folding=True)
    return path


def to_torchscript(model: nn.Module) -> torch.jit.ScriptModule:
    """The model scripted (any input size and batch) and frozen: weights inlined, BN folded."""
    with _quiet_deprecations():
        return torch.jit.freeze(torch.jit.script(model.eval()))


def export_torchscript(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write the frozen TorchScript module (loadable with ``torch.jit.load``) atomically."""
    path = Path(path)
    scripted = to_torchscript(model)
    with _quiet_deprecations(), atomic_write(path, "wb") as fh:
        torch.jit.save(scripted, fh)
    return path
