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

    name = "torch"

    def __init__(self, model, device=None, channels_last: bool = False) -> None:
        import torch

        self._torch = torch
        self.device = torch.device(device or "cpu")
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.eval().to(self.device, memory_format=self.memory_format)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device, non_blocking=True)
            x = x.contiguous(memory_format=self.memory_format)
            return self.model(x).float().cpu().numpy()


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
