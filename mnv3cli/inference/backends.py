"""Inference backends: a callable from a float32 NCHW NumPy batch to NumPy logits.

``predict`` and ``evaluate`` only see this interface, so the data path (Pillow + NumPy) is shared and
any backend (eager PyTorch here; ONNX Runtime beside it) slots in without touching them.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


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
