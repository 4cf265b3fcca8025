"""Layer 5: from weights to something that classifies, fast.

Backends behind one call, listed once in the backend registry (:mod:`.backend_registry`: every
``--backend`` choice, exported-file suffix and export format), the per-user ONNX cache that lets a
warm ``predict`` skip torch, export with verification, and ``--device`` resolution.
The CLI imports from here only; names resolve lazily, so this package costs nothing to import.
"""

from .._lazy import lazy_exports

PRECISIONS = ("f32", "bf16", "f16")  # --precision (OpenVINO only)
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")  # --device (plus cuda:N); resolved by .device
TTA_MODES = ("none", "flip")  # --tta choices (test-time augmentation, backends.with_tta)

__getattr__, _names = lazy_exports(
    __name__,
    {
        "Runtime": ".runtime",
        "choose_backend": ".backend_registry",
        "BackendEntry": ".backend_registry",
        "ExportFormat": ".backend_registry",
        "OpenOptions": ".backend_registry",
        "backend_names": ".backend_registry",
        "export_formats": ".backend_registry",
        "get_backend": ".backend_registry",
        "list_backends": ".backend_registry",
        "profile_choices": ".backend_registry",
        "register_backend": ".backend_registry",
        "unregister_backend": ".backend_registry",
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
        "ExportResult": ".results",
        "Int8ExportResult": ".results",
        "export_onnx": ".export",
        "export_torchscript": ".export",
        "export_verified": ".export",
        "to_torchscript": ".export",
        "export_openvino": ".export",
        "TOLERANCE": ".verify",
        "onnx_difference": ".verify",
        "sample_batch": ".verify",
        "export_difference": ".verify",
    },
)
__all__ = ["DEVICE_CHOICES", "PRECISIONS", "TTA_MODES", *_names]
