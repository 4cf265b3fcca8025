"""Layer 5: from weights to something that classifies, fast.

Backends (eager PyTorch, ONNX Runtime) behind one call, the per-user ONNX cache that lets a warm
``predict`` skip torch, ONNX/TorchScript export with verification, and ``--device`` resolution.
The CLI imports from here only; names resolve lazily, so this package costs nothing to import.
"""

from .._lazy import lazy_exports

# The one list of --backend choices: a plain constant, so that reading it (``mnv3 CMD --help``)
# imports nothing. ``auto``: onnxruntime when installed and able to serve the device, else torch;
# ``openvino`` needs the optional extra ``mnv3cli[openvino]``.
BACKENDS = ("auto", "torch", "onnxruntime", "openvino")
PRECISIONS = ("f32", "bf16", "f16")  # --precision (OpenVINO only)
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")  # --device (plus cuda:N); resolved by .device
TTA_MODES = ("none", "flip")  # --tta choices (test-time augmentation, backends.with_tta)

__getattr__, _names = lazy_exports(
    __name__,
    {
        "Runtime": ".runtime",
        "choose_backend": ".runtime",
        "open_runtime": ".runtime",
        "Backend": ".backends",
        "TorchBackend": ".backends",
        "FlipTTA": ".backends",
        "with_tta": ".backends",
        "OnnxBackend": ".onnx_backend",
        "OpenVinoBackend": ".openvino_backend",
        "is_exported": ".exported",
        "open_exported": ".exported",
        "export_int8": ".int8",
        "OnnxCache": ".onnx_cache",
        "cache_root": ".onnx_cache",
        "resolve_device": ".device",
        "DEFAULT_OPSET": ".export",
        "export_onnx": ".export",
        "export_torchscript": ".export",
        "export_verified": ".export",
        "to_torchscript": ".export",
        "export_openvino": ".export",
        "TOLERANCE": ".verify",
        "onnx_difference": ".verify",
        "sample_batch": ".verify",
        "torchscript_difference": ".verify",
    },
)
__all__ = ["BACKENDS", "DEVICE_CHOICES", "PRECISIONS", "TTA_MODES", *_names]
