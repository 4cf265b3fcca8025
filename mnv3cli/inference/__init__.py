"""Layer 5: from weights to something that classifies, fast.

Backends (eager PyTorch, ONNX Runtime) behind one call, the per-user ONNX cache that lets a warm
``predict`` skip torch, ONNX/TorchScript export with verification, and ``--device`` resolution.
The CLI imports from here only; names resolve lazily, so this package costs nothing to import.
"""

from .._lazy import lazy_exports

# The one list of --backend choices: a plain constant, so that reading it (``mnv3 CMD --help``)
# imports nothing. ``auto``: onnxruntime when installed and able to serve the device, else torch.
BACKENDS = ("auto", "torch", "onnxruntime")
TTA_MODES = ("none", "flip")  # --tta choices (test-time augmentation, backends.with_tta)

__getattr__, _names = lazy_exports(__name__, {
    "Runtime": ".runtime", "choose_backend": ".runtime", "open_runtime": ".runtime",
    "Backend": ".backends", "TorchBackend": ".backends", "FlipTTA": ".backends", "with_tta": ".backends",
    "OnnxBackend": ".onnx_backend",
    "OnnxCache": ".onnx_cache", "cache_root": ".onnx_cache",
    "DEVICE_CHOICES": ".device", "resolve_device": ".device",
    "DEFAULT_OPSET": ".export", "export_onnx": ".export", "export_torchscript": ".export",
    "export_verified": ".export", "to_torchscript": ".export",
    "TOLERANCE": ".verify", "onnx_difference": ".verify", "sample_batch": ".verify",
    "torchscript_difference": ".verify",
})
__all__ = ["BACKENDS", "TTA_MODES", *_names]
