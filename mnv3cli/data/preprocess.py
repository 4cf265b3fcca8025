"""Evaluation preprocessing with Pillow and NumPy only (no torch), shared by every backend.

Resize the shorter side, centre-crop, scale and normalise: the same arithmetic as torchvision's
``Resize(int)`` + ``CenterCrop`` + ``ToTensor`` + ``Normalize`` on PIL images, so the torch and
ONNX Runtime backends see identical input and a process that never imports torch can run it.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from ..registry.types import Preprocess
from .images import open_rgb

RESAMPLE = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}


def resize_crop(img: Image.Image, cfg: Preprocess) -> Image.Image:
    """Shorter side to ``cfg.resize`` (aspect kept), then the centre ``input_size`` square."""
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = cfg.resize, int(cfg.resize * long / short)
    size = (new_short, new_long) if w <= h else (new_long, new_short)
    if size != img.size:
        img = img.resize(size, RESAMPLE[cfg.interpolation])
    w, h = img.size
    crop = cfg.input_size
    left, top = int(round((w - crop) / 2.0)), int(round((h - crop) / 2.0))
    return img.crop((left, top, left + crop, top + crop))


class Normalizer:
    """``(pixel / 255 - mean) / std`` as one multiply-add, channels first, float32."""

    def __init__(self, cfg: Preprocess) -> None:
        std = np.asarray(cfg.std, dtype=np.float32)
        self.scale = (1.0 / (255.0 * std)).reshape(3, 1, 1)
        self.shift = (-np.asarray(cfg.mean, dtype=np.float32) / std).reshape(3, 1, 1)

    def __call__(self, img: Image.Image, out: np.ndarray | None = None) -> np.ndarray:
        chw = np.asarray(img, dtype=np.float32).transpose(2, 0, 1)
        if out is None:
            out = np.empty(chw.shape, dtype=np.float32)
        np.multiply(chw, self.scale, out=out)
        out += self.shift
        return out


def load_and_preprocess(
    path: str | os.PathLike, cfg: Preprocess, fast_decode: bool = True, normalizer: Normalizer | None = None
) -> np.ndarray:
    """Decode ``path`` and return the model input ``[3, input_size, input_size]`` float32."""
    img = open_rgb(path, min_size=cfg.resize if fast_decode else None)
    return (normalizer or Normalizer(cfg))(resize_crop(img, cfg))
