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
from .images import EncodedImage, ImageDecodeError, open_rgb

RESAMPLE = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}


# Most pixels a whole-image resize may make (12 MB of RGB): every photo of aspect up to 64:1 at
# resize 256. Beyond it only the crop is resampled: the cost is then bounded by the output size.
MAX_RESIZED_PIXELS = 1 << 22


def resize_crop(img: Image.Image, cfg: Preprocess) -> Image.Image:
    """Shorter side to ``cfg.resize`` (aspect kept), then the centre ``input_size`` square.

    An extreme shape would make the whole resized image huge (a 118-byte 1x20000 PNG became
    256x5120000 pixels: 47 s, 5.4 GB), so past :data:`MAX_RESIZED_PIXELS` only the crop's place in
    source coordinates is resampled (Pillow's ``resize(box=...)``: the same sample centres and
    filter support, values within a few levels; Pillow's box is float32). Below it, the whole
    image is resized then cropped, bit for bit as before, which the accuracy figures pin."""
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = cfg.resize, int(cfg.resize * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    crop = cfg.input_size
    left, top = int(round((new_w - crop) / 2.0)), int(round((new_h - crop) / 2.0))
    if (new_w, new_h) == (w, h) or new_w * new_h <= MAX_RESIZED_PIXELS:
        if (new_w, new_h) != (w, h):
            img = img.resize((new_w, new_h), RESAMPLE[cfg.interpolation])
        return img.crop((left, top, left + crop, top + crop))
    # the part of the crop inside the resized image: all of it unless input_size > resize
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(left + crop, new_w), min(top + crop, new_h)
    sx, sy = w / new_w, h / new_h
    box = (x0 * sx, y0 * sy, x1 * sx, y1 * sy)
    region = img.resize((x1 - x0, y1 - y0), RESAMPLE[cfg.interpolation], box=box)
    if region.size == (crop, crop):
        return region
    canvas = Image.new(region.mode, (crop, crop))  # black beyond the image, as crop() pads
    canvas.paste(region, (x0 - left, y0 - top))
    return canvas


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


def load_crop(path: str | os.PathLike | EncodedImage, cfg: Preprocess, fast_decode: bool = True) -> Image.Image:
    """Decode ``path`` and return its resized, centre-cropped RGB image.

    Running out of memory on one image is that image's :class:`ImageDecodeError`, so a batch (or a
    server) carries on with the others instead of losing every result to one file."""
    try:
        return resize_crop(open_rgb(path, min_size=cfg.resize if fast_decode else None), cfg)
    except MemoryError:
        raise ImageDecodeError(f"{path}: not enough memory to decode and preprocess this image") from None


def load_and_preprocess(
    path: str | os.PathLike | EncodedImage,
    cfg: Preprocess,
    fast_decode: bool = True,
    normalizer: Normalizer | None = None,
) -> np.ndarray:
    """Decode ``path`` and return the model input ``[3, input_size, input_size]`` float32."""
    return (normalizer or Normalizer(cfg))(load_crop(path, cfg, fast_decode))
