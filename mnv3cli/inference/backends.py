"""Inference backends: a callable from a float32 NCHW NumPy batch to NumPy logits.

``predict`` and ``evaluate`` only see this interface, so the data path (Pillow + NumPy) is shared and
any backend (eager PyTorch here; ONNX Runtime beside it) slots in without touching them.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from . import TTA_MODES


class Backend(Protocol):
    name: str

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Logits ``[N, num_classes]`` float32 for inputs ``[N, 3, H, W]`` float32."""
        ...


class TorchBackend:
    """Eager PyTorch under ``inference_mode`` on any device, optionally channels-last."""

    name = "torch"  # the registry entry's name (backend_entries opens it)

    def __init__(self, model, device=None, channels_last: bool = False) -> None:
        import torch

        self._torch = torch
        self.device = torch.device(device or "cpu")
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.eval().to(self.device, memory_format=self.memory_format)

    def to_input(self, x):
        """A torch batch moved to the device in the model's memory format (profile converts once,
        then times :meth:`forward` alone on a device-resident input)."""
        return x.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)

    def forward(self, x):
        with self._torch.inference_mode():
            return self.model(x)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = self.to_input(self._torch.from_numpy(np.ascontiguousarray(batch)))
        return self.forward(x).float().cpu().numpy()


class FlipTTA:
    """Test-time augmentation: the mean of the logits of each image and of its mirror image.

    Wraps any backend (one call on the batch and its mirror together, so the engine sees one batch
    of 2N), hence works on every backend alike. Averaging logits rather than probabilities keeps the
    :class:`Backend` contract (logits out), so softmax, temperature and metrics apply unchanged."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.name = backend.name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        both = np.asarray(self.backend(np.concatenate([batch, batch[..., ::-1]])), dtype=np.float32)
        return (both[: len(batch)] + both[len(batch) :]) / 2


def with_tta(backend: Backend, tta: str = "none") -> Backend:
    """``backend`` itself for ``none``, wrapped for ``flip``."""
    if tta not in TTA_MODES:
        raise ValueError(f"tta must be one of {TTA_MODES}, got {tta!r}")
    return FlipTTA(backend) if tta == "flip" else backend
