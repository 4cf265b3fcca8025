"""The built-in backends, one :class:`~.backend_registry.BackendEntry` each: the only place that
names them. Openers import their engine when called, never at import (``mnv3 --help`` imports this).

To add a backend: a module with its ``Backend`` class (as :mod:`.onnx_backend`), one entry here, and
nothing else; ``tests/unit/test_backends.py`` then runs it against PyTorch (docs/backends.md).
"""

from __future__ import annotations

from pathlib import Path

from . import PRECISIONS
from .backend_registry import BackendEntry, ExportFormat, OpenOptions, register_backend

# --------------------------------------------------------------------------------------------- torch


def _open_torch(model, options: OpenOptions):
    """Eager PyTorch; profile's variants: ``channels_last`` memory format, frozen ``torchscript``."""
    from .backends import TorchBackend
    from .device import resolve_device

    device = resolve_device(options.device)
    if options.variant == "torchscript":
        from .export import to_torchscript

        model = to_torchscript(model.eval().to(device))
    return TorchBackend(model, device, channels_last=options.variant == "channels_last")


def _write_torchscript(model, path: Path, card=None, **_) -> None:
    from .export import export_torchscript

    export_torchscript(model, path, card)


def _load_torchscript(path: Path):
    import warnings

    import torch

    with warnings.catch_warnings():  # torch 2.14 marks TorchScript deprecated; it still works
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu")


register_backend(
    BackendEntry(
        name="torch",
        title="PyTorch",
        open=_open_torch,
        kind="model",
        module="torch",
        install="pip install torch",
        devices=("cpu", "cuda", "mps"),
        auto=1,  # when no graph engine is installed or serves the device (mps; cuda without onnxruntime-gpu)
        timings=("eager", "channels_last", "torchscript"),
        export=ExportFormat(
            "torchscript",
            ".pt",
            "TorchScript (frozen)",
            _write_torchscript,
            load=_load_torchscript,
            opset=False,
            title="TorchScript",
        ),
    )
)

# -------------------------------------------------------------------------------------- ONNX Runtime


def _open_onnx(path, options: OpenOptions):
    from .onnx_backend import OnnxBackend

    backend = OnnxBackend(path, threads=options.threads, device=options.device, spinning=not options.pipelined)
    backend.name = "onnxruntime"
    return backend


def _open_onnx_exported(path: Path, options: OpenOptions):
    from . import graph_checks
    from .exported import onnx_card

    backend = _open_onnx(path, options)
    card = onnx_card(backend.session.get_modelmeta().custom_metadata_map, path)
    graph_checks.check_onnx(path, backend.session, card)
    return backend, card


def _onnx_devices(device: str) -> None:
    """CUDA needs the onnxruntime-gpu build (asking imports onnxruntime: done for CUDA only)."""
    if device.split(":", 1)[0] == "cuda":
        from .onnx_backend import providers_for

        providers_for(device)


def _read_onnx_card(path: Path):
    from .exported import read_onnx_card

    return read_onnx_card(path)


def _write_onnx(model, path: Path, *, input_size: int, opset: int, card) -> None:
    from .export import export_onnx

    export_onnx(model, path, input_size=input_size, opset=opset, card=card)


def _onnx_from_onnx(graph, path: Path, card) -> None:
    from ..fileio import atomic_write

    with atomic_write(path, "wb") as fh:
        fh.write(graph.SerializeToString())


register_backend(
    BackendEntry(
        name="onnxruntime",
        title="ONNX Runtime",
        open=_open_onnx,
        module="onnxruntime",
        install="pip install onnxruntime",
        files={".onnx": "an ONNX graph"},
        open_exported=_open_onnx_exported,
        read_card=_read_onnx_card,
        devices=("cpu", "cuda"),
        check_device=_onnx_devices,
        # auto's first choice: several times faster than eager PyTorch on the CPU at batch 1, imported in
        # ~0.1 s, and no compilation step; on the static graph it took 0.8-0.9x the time of OpenVINO f32
        # at batch 1 and 32 on a quiet machine (benchmarks/static_export.py), so OpenVINO is never auto.
        auto=0,
        export=ExportFormat(
            "onnx", ".onnx", "ONNX opset {opset}", _write_onnx, from_onnx=_onnx_from_onnx, title="ONNX"
        ),
        quantizes=True,
    )
)

# ------------------------------------------------------------------------------------------ OpenVINO


def _open_openvino(path, options: OpenOptions, model=None):
    from .openvino_backend import OpenVinoBackend

    return OpenVinoBackend(
        path,
        threads=options.threads,
        precision=options.precision,
        cache_dir=options.cache_dir,
        model=model,
        name="openvino",
    )


def _open_openvino_exported(path: Path, options: OpenOptions):
    from . import graph_checks
    from .exported import openvino_card
    from .openvino_backend import read_model

    model = read_model(path)
    card = openvino_card(model, path)
    graph_checks.check_openvino(path, model, card)
    return _open_openvino(path, options, model=model), card


def _read_openvino_card(path: Path):
    from .exported import openvino_card
    from .openvino_backend import read_model

    return openvino_card(read_model(path), path)


def _write_openvino(model, path: Path, *, input_size: int, opset: int, card) -> None:
    from .export import export_openvino

    export_openvino(model, path, input_size=input_size, card=card, opset=opset)


def _openvino_from_onnx(graph, path: Path, card) -> None:
    from .openvino_backend import write_ir

    write_ir(graph, path, card)


register_backend(
    BackendEntry(
        name="openvino",
        title="OpenVINO",
        open=_open_openvino,
        module="openvino",
        install="pip install 'mnv3cli[openvino]'",
        files={".xml": "OpenVINO IR"},
        reads=(".onnx",),
        open_exported=_open_openvino_exported,
        read_card=_read_openvino_card,
        precisions=PRECISIONS,
        export=ExportFormat(
            "openvino",
            ".xml",
            "OpenVINO IR, f32",
            _write_openvino,
            from_onnx=_openvino_from_onnx,
            companions=(".bin",),
            title="OpenVINO IR",
        ),
        quantizes=True,
    )
)
