"""Decoding an uploaded image within the server's budget.

``predict`` decodes whatever a user points it at: the user pays for their own big files. A server
decodes what strangers send, on a few threads shared by everyone, so it refuses an image whose
decoded pixels (width x height x bytes per pixel: 16-bit and alpha images cost more) would exceed
``ServeSettings.max_decoded_mb``, from its header alone, before a pixel is decoded. JPEGs count
at the reduced scale Pillow's draft mode decodes them at, so camera photos of any size pass.

A JPEG whose header declares far more pixels than its data can hold (a small image's data under a
9000x9000 header) is refused too: libjpeg fills what is missing with grey and reports no error, so
without this check the server would classify a grey square.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFile, ImageMode

from ..data.images import EncodedImage, ImageDecodeError, open_rgb
from ..data.preprocess import Normalizer, Preprocess, resize_crop

# Any Huffman-coded JPEG scan spends at least one bit per 8x8 block of its first component.
JPEG_MIN_BITS_PER_BLOCK = 1


def decode_budgeted(image: EncodedImage, cfg: Preprocess, normalizer: Normalizer, budget: int) -> np.ndarray:
    """``image`` decoded and preprocessed to the model's input, or :class:`ImageDecodeError` when it
    is not an image, is corrupt or truncated, or would cost more than ``budget`` bytes decoded."""
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # another library may have set it: a cut file is an error

    def check(img: Image.Image) -> None:
        _check_budget(image, img, budget)
        if img.format == "JPEG":
            _check_jpeg_data(image)

    return normalizer(resize_crop(open_rgb(image, min_size=cfg.resize, check=check), cfg))


def decoded_bytes(img: Image.Image) -> int:
    """What decoding ``img`` (header read, draft applied) will allocate: pixels x bytes per pixel,
    as Pillow stores them (every multi-band mode in 4 bytes; I;16 in 2, I and F in 4)."""
    mode = ImageMode.getmode(img.mode)
    per_pixel = 4 if len(mode.bands) > 1 else max(np.dtype(mode.typestr).itemsize, 1)
    return img.width * img.height * per_pixel


def _check_budget(image: EncodedImage, img: Image.Image, budget: int) -> None:
    cost = decoded_bytes(img)
    if cost > budget:
        raise ImageDecodeError(
            f"{image.name}: image too large to decode here ({img.width}x{img.height} pixels, {img.mode}: "
            f"{cost / 1e6:.0f} MB decoded, limit {budget / 1e6:.0f} MB); send it smaller"
        )


def _check_jpeg_data(image: EncodedImage) -> None:
    """Refuse a JPEG whose data is too short for the size its header declares (see the module)."""
    width, height = _declared_size(image)
    blocks = -(-width // 8) * -(-height // 8)
    if len(image.data) * 8 < blocks * JPEG_MIN_BITS_PER_BLOCK:
        raise ImageDecodeError(
            f"{image.name}: corrupt or truncated image ({len(image.data)} bytes cannot hold the "
            f"{width}x{height} pixels its header declares)"
        )


def _declared_size(image: EncodedImage) -> tuple[int, int]:
    """The JPEG's size as its header declares it: Pillow's draft mode replaced ``img.size`` with
    the reduced one, so the header is read again (no pixel is decoded)."""
    with Image.open(io.BytesIO(image.data)) as fresh:
        return fresh.size
