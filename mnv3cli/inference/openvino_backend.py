"""The OpenVINO backend (optional extra ``mnv3cli[openvino]``): an ONNX graph or an IR file, compiled.

OpenVINO reads the ONNX cache's graphs as they are, and its own IR (``.xml`` + ``.bin``) that
``mnv3 export --format openvino`` writes. Its CPU plugin picks bf16 by itself on CPUs with AMX or
AVX-512 BF16, which cost MobileNetV3-Small 1.4 points of top-1 on the dev images without a word,
so the precision hint is always set: ``f32`` unless ``bf16`` or ``f16`` is asked for, and then
the backend's name says so (``openvino-bf16``), which every result that names the backend shows.
Compiled models are cached (``CACHE_DIR``) beside the ONNX cache, so a warm run skips compilation.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ..errors import UserError
from . import PRECISIONS, signal_stack  # PRECISIONS: the one list of --precision choices

NAME = "openvino"
INSTALL = "pip install 'mnv3cli[openvino]'"
# The lines of an OpenVINO error that say where in OpenVINO's sources it was raised, not why.
_WHERE = re.compile(r"^(Exception from \S+:\d+:?|Check '.*' failed at \S+:\d+:?)$")


def reason(exc: BaseException) -> str:
    """An OpenVINO error as one line: its reason lines, without the source locations it opens with
    ("Exception from src/inference/src/cpp/core.cpp:84:")."""
    lines = (line.strip() for line in str(exc).splitlines())
    return " ".join(line for line in lines if line and not _WHERE.match(line)) or type(exc).__name__


def available() -> bool:
    """Whether OpenVINO can be imported, without importing it."""
    from importlib.util import find_spec

    return find_spec("openvino") is not None


def require() -> None:
    if not available():
        raise UserError(f"--backend openvino: OpenVINO is not installed ({INSTALL})")


def check_device(device: str = "auto") -> None:
    """OpenVINO runs here on the CPU only (its GPU plugin is for Intel GPUs)."""
    kind = (device or "auto").split(":", 1)[0]
    if kind not in ("auto", "cpu"):
        raise UserError(f"--device {device}: the openvino backend runs on the CPU; use --backend torch or onnxruntime")


def read_model(path: str | os.PathLike):
    """``openvino.Model`` from an ONNX or IR file; a file it cannot read is a user error."""
    require()
    import openvino as ov

    path = Path(path)
    try:
        return ov.Core().read_model(str(path))
    except RuntimeError as exc:
        raise UserError(f"{path}: not a usable OpenVINO/ONNX model ({reason(exc)})") from None


def backend_name(precision: str) -> str:
    return NAME if precision == "f32" else f"{NAME}-{precision}"


class OpenVinoBackend:
    """A compiled OpenVINO model behind the :class:`~mnv3cli.inference.backends.Backend` call."""

    def __init__(
        self,
        model_path: str | os.PathLike,
        *,
        threads: int | None = None,
        precision: str = "f32",
        cache_dir: str | os.PathLike | None = None,
        model=None,
    ) -> None:
        """``model``: an already read ``openvino.Model`` of ``model_path`` (saves reading it twice)."""
        import openvino as ov

        from .onnx_backend import usable_cores

        if precision not in PRECISIONS:
            raise UserError(f"--precision {precision}: choose one of {', '.join(PRECISIONS)}")
        self.path, self.precision = Path(model_path), precision
        self.name = backend_name(precision)
        model = model if model is not None else read_model(self.path)
        inputs = model.inputs
        if len(inputs) != 1 or inputs[0].get_partial_shape().rank.get_length() != 4:
            raise UserError(f"{self.path}: not an image classifier (expects one [N, C, H, W] input)")
        shape = inputs[0].get_partial_shape()
        self.input_shape = tuple(d.get_length() if d.is_static else "batch" for d in shape)
        core = ov.Core()
        if cache_dir is not None:
            core.set_property({"CACHE_DIR": str(cache_dir)})
        config = {
            "INFERENCE_PRECISION_HINT": precision,
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": threads or usable_cores(),
        }
        try:
            with signal_stack.kept():  # see signal_stack: else Ctrl-C may end in SIGSEGV
                compiled = core.compile_model(model, "CPU", config)
        except RuntimeError as exc:
            raise UserError(f"{self.path}: OpenVINO cannot compile it at {precision} ({reason(exc)})") from None
        self._request = compiled.create_infer_request()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        return np.array(self._request.infer({0: batch})[0], dtype=np.float32, copy=True)
