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

# The lines of an OpenVINO error that say where in OpenVINO's sources it was raised, not why.
_WHERE = re.compile(r"^(Exception from \S+:\d+:?|Check '.*' failed at \S+:\d+:?)$")


def reason(exc: BaseException) -> str:
    """An OpenVINO error as one line: its reason lines, without the source locations it opens with
    ("Exception from src/inference/src/cpp/core.cpp:84:")."""
    lines = (line.strip() for line in str(exc).splitlines())
    return " ".join(line for line in lines if line and not _WHERE.match(line)) or type(exc).__name__


def read_model(path: str | os.PathLike):
    """``openvino.Model`` from an ONNX or IR file; a file it cannot read is a user error."""
    import openvino as ov

    path = Path(path)
    try:
        return ov.Core().read_model(str(path))
    except RuntimeError as exc:
        raise UserError(f"{path}: not a usable OpenVINO/ONNX model ({reason(exc)})") from None


def write_ir(graph, path: str | os.PathLike, card=None) -> Path:
    """Write the ``onnx.ModelProto`` or ONNX file ``graph`` as IR (``NAME.xml`` + ``NAME.bin``, f32),
    with ``card`` in its runtime info. Both files are written in a private folder and renamed into
    place, the ``.bin`` first, so a reader never finds an ``.xml`` whose weights are not there yet."""
    import tempfile

    import openvino as ov

    from ..fileio import output_target
    from .exported import CARD_KEY, card_json

    path = Path(path)
    xml, weights = output_target(path), output_target(path.with_suffix(".bin"))  # never a device or read-only file
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".mnv3-ir-", dir=path.parent) as tmp:
        if not isinstance(graph, (str, os.PathLike)):
            source = Path(tmp) / "source.onnx"
            source.write_bytes(graph.SerializeToString())
            graph = source
        ir = ov.convert_model(str(graph))
        if card is not None:
            ir.set_rt_info(card_json(card), CARD_KEY.split("."))
        staged = Path(tmp) / path.name
        ov.save_model(ir, str(staged), compress_to_fp16=False)
        os.replace(staged.with_suffix(".bin"), weights)
        os.replace(staged, xml)
    return path


class OpenVinoBackend:
    """A compiled OpenVINO model behind the :class:`~mnv3cli.inference.backends.Backend` call.

    ``name``: its registry entry's (:mod:`..backend_entries`), suffixed with a precision other than f32."""

    def __init__(
        self,
        model_path: str | os.PathLike,
        *,
        threads: int | None = None,
        precision: str = "f32",
        cache_dir: str | os.PathLike | None = None,
        model=None,
        name: str = "unnamed",
    ) -> None:
        """``model``: an already read ``openvino.Model`` of ``model_path`` (saves reading it twice)."""
        import openvino as ov

        from .onnx_backend import usable_cores

        if precision not in PRECISIONS:
            raise UserError(f"--precision {precision}: choose one of {', '.join(PRECISIONS)}")
        self.path, self.precision = Path(model_path), precision
        self.name = name if precision == "f32" else f"{name}-{precision}"
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
