"""Check an exported model against the PyTorch model it came from, on a real input.

An export can go wrong quietly (a traced shape baked in, an operator with other numerics), so every
export is run once on a preprocessed image through both the exported file and PyTorch, and the
largest absolute difference between their logits is reported. The batch holds the image and its
mirror image: two samples, while the graph was traced at batch 1, so the dynamic batch axis is
exercised too.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..data import Normalizer, open_rgb, resize_crop
from ..registry.types import Preprocess

TOLERANCE = 1e-4  # largest |logit difference| an export may show


def synthetic_photo(width: int = 320, height: int = 240) -> Image.Image:
    """A deterministic, photo-like RGB image (smooth colour gradients plus texture) for checks
    when the user gives no image: it exercises every channel and spatial frequency band."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    red = 255 * x / width
    green = 255 * y / height
    blue = 127.5 + 127.5 * np.sin(x / 11.0) * np.cos(y / 7.0)
    rgb = np.stack([red, green, blue], axis=-1)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")


def sample_batch(preprocess: Preprocess, image: str | os.PathLike | None = None) -> np.ndarray:
    """``[2, 3, H, W]`` float32: the image (or :func:`synthetic_photo`) and its mirror, preprocessed."""
    img = open_rgb(image) if image is not None else synthetic_photo()
    img = resize_crop(img, preprocess)
    normalize = Normalizer(preprocess)
    return np.stack([normalize(img), normalize(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT))])


def _torch_logits(model, batch: np.ndarray) -> np.ndarray:
    import torch

    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    with torch.inference_mode():
        return model.eval()(torch.from_numpy(batch).to(device)).float().cpu().numpy()


def export_difference(model, entry, export, path: str | os.PathLike, batch: np.ndarray) -> float:
    """Largest |logit difference| between ``model`` and the file ``path`` in the registered format
    ``export``, run by the backend ``entry`` that owns it (f32, CPU)."""
    from .backend_registry import OpenOptions

    target = export.load(Path(path)) if export.load is not None else path
    runner = entry.open(target, OpenOptions(device="cpu"))
    return float(np.abs(np.asarray(runner(batch), dtype=np.float32) - _torch_logits(model, batch)).max())


def onnx_difference(model, path: str | os.PathLike, batch: np.ndarray) -> float:
    """Largest |logit difference| between ``model`` and the ONNX file ``path`` on its backend."""
    from .backend_registry import get_export_format

    return export_difference(model, *get_export_format("onnx"), path, batch)
