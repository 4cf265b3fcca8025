"""The ONNX Runtime backend: a float32 NCHW NumPy batch in, NumPy logits out, no torch anywhere.

On CPU, ONNX Runtime with every graph optimisation (operator fusion and the blocked NCHWc layout)
runs MobileNetV3 several times faster than eager PyTorch at batch 1, and importing it costs ~0.1 s
against seconds for torch. So this module imports only onnxruntime and numpy, and only when a
backend is created: the fast ``predict`` path loads it straight from the ONNX cache.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import UserError


def usable_cores() -> int:
    """CPU cores this process may run on (respects taskset/cgroup affinity where the OS tells)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def session_options(threads: int | None = None, spinning: bool = True):
    """Options tuned for one model run at a time: every optimisation, one thread per core.

    ``intra_op`` threads parallelise each convolution; ``inter_op`` parallelism only helps graphs
    with independent branches, which MobileNetV3 has none of, so it stays sequential.
    ``spinning``: idle ORT threads busy-wait for the next operator. That halves model-only latency,
    but in a pipeline whose decoding threads share the cores it steals their CPU (measured on 2
    cores: evaluate 340 -> 400 images/s without it, batch-1 latency 0.6 -> 1.1 ms).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads or usable_cores()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.log_severity_level = 3  # errors only: no "unused initializer" chatter on stderr
    return options


def providers_for(device: str = "auto") -> list[str]:
    """Execution providers for ``device``: CUDA first when asked for (or ``auto``) and installed."""
    import onnxruntime as ort

    installed = ort.get_available_providers()
    kind = (device or "auto").split(":", 1)[0]
    if kind in ("auto", "cuda") and "CUDAExecutionProvider" in installed:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if kind == "cuda":
        raise UserError(
            f"--device {device}: this onnxruntime has no CUDA support (install onnxruntime-gpu, or use --backend torch)"
        )
    if kind == "mps":
        raise UserError(f"--device {device}: onnxruntime cannot run on Apple MPS; use --backend torch")
    return ["CPUExecutionProvider"]


class OnnxBackend:
    """An ``onnxruntime.InferenceSession`` behind the :class:`~mnv3cli.inference.backends.Backend` call.

    Its registry entry (:mod:`..backend_entries`) opens it and gives it its name."""

    name = "unnamed"

    def __init__(
        self, model_path: str | os.PathLike, *, threads: int | None = None, device: str = "auto", spinning: bool = True
    ) -> None:
        import onnxruntime as ort
        from onnxruntime.capi import onnxruntime_pybind11_state as errors

        self.path = Path(model_path)
        self.providers = providers_for(device)
        try:
            self.session = ort.InferenceSession(
                str(self.path), session_options(threads, spinning), providers=self.providers
            )
        except (
            errors.Fail,
            errors.InvalidArgument,
            errors.InvalidProtobuf,
            errors.InvalidGraph,
            errors.NoSuchFile,
        ) as exc:
            raise UserError(f"{self.path}: not a usable ONNX model ({str(exc).strip()})") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or not outputs or len(inputs[0].shape) != 4:
            raise UserError(
                f"{self.path}: not an image classifier (expects one [N, C, H, W] input, "
                f"has {[(i.name, i.shape) for i in inputs]})"
            )
        inp, out = inputs[0], outputs[0]
        self.input_name, self.output_name = inp.name, out.name
        self.input_shape = tuple(inp.shape)  # e.g. ("batch", 3, 224, 224)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        return self.session.run([self.output_name], {self.input_name: batch})[0]
