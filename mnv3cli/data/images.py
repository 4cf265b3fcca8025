"""Decoding any image file users throw at us into a correct RGB ``PIL.Image``.

Everything that can go wrong with one file (missing, unreadable, truncated, empty, not an image,
a decompression bomb) becomes an :class:`ImageDecodeError` naming the file and the reason, so a
batch job can record it and carry on with the other inputs.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import UserError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})

# Pillow's default bomb guard (~89 M pixels, an error at twice that). We make the warning an error:
# a 20k x 20k "photo" is far more likely an attack or a mistake than something to classify.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
ORIENTATION = 0x0112  # the EXIF tag (PIL.ExifTags.Base.Orientation) that says how a photo was held


class ImageDecodeError(UserError):
    """One input could not be turned into an image; the message names the file and the reason."""


@dataclass(frozen=True)
class EncodedImage:
    """An image file's bytes already in memory (a download), named for results and error messages."""

    name: str
    data: bytes

    def __str__(self) -> str:
        return self.name


def is_image_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def open_rgb(
    path: str | os.PathLike | EncodedImage,
    min_size: int | None = None,
    check: Callable[[Image.Image], None] | None = None,
) -> Image.Image:
    """Decode ``path`` (a file, or an :class:`EncodedImage`) to an upright 8-bit RGB image.

    ``min_size``: the caller will shrink the shorter side to this many pixels, so a JPEG may be
    decoded at a reduced scale (Pillow's draft mode, DCT scaling) as long as both sides stay at
    least ``min_size``: several times faster on camera photos, visually the same after resizing.
    EXIF orientation is applied; greyscale, palette, alpha, CMYK and 16-bit images become RGB.
    ``check(img)`` sees the opened image (header read, draft applied, no pixel decoded) and may
    raise :class:`ImageDecodeError` to refuse it before it costs anything (a server's budget).
    """
    with _opened(path) as img:
        if min_size and img.format == "JPEG":
            # draft() keeps both sides >= the requested size; a rotated photo swaps axes,
            # which a square request makes irrelevant.
            img.draft("RGB", (min_size, min_size))
        if check is not None:
            check(img)
        img.load()
        if img.getexif().get(ORIENTATION, 1) != 1:  # most photos are upright: ImageOps costs ~10 ms to import
            from PIL import ImageOps

            img = ImageOps.exif_transpose(img)
        return to_rgb(img)


def probe_image(path: str | os.PathLike) -> None:
    """Raise :class:`ImageDecodeError` unless ``path`` looks like an image :func:`open_rgb` can
    decode: its header only (about a thousand times faster than decoding), so a file truncated
    after a valid header still shows only when decoded."""
    with _opened(path):
        pass


@contextlib.contextmanager
def _opened(path: str | os.PathLike | EncodedImage) -> Iterator[Image.Image]:
    """The image file opened (header read, pixels not yet), every failure an :class:`ImageDecodeError`."""
    name = str(path)
    try:
        if (len(path.data) if isinstance(path, EncodedImage) else os.path.getsize(path)) == 0:
            raise ImageDecodeError(f"{name}: empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(path.data) if isinstance(path, EncodedImage) else path) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise ImageDecodeError(
                        f"{name}: image too large ({img.width}x{img.height} pixels, "
                        f"limit {MAX_PIXELS}); possible decompression bomb"
                    )
                yield img
    except ImageDecodeError:
        raise
    except FileNotFoundError:
        raise ImageDecodeError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ImageDecodeError(f"{name}: is a directory") from None
    except PermissionError:
        raise ImageDecodeError(f"{name}: permission denied") from None
    except UnidentifiedImageError:
        raise ImageDecodeError(f"{name}: not an image Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError(f"{name}: image too large; possible decompression bomb ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # truncated / corrupt data
        raise ImageDecodeError(f"{name}: corrupt or truncated image ({exc})") from None


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB, correctly.

    Plain ``convert("RGB")`` clips 16-bit and float greyscale to 0/255 and turns transparent pixels
    into whatever colour they happen to store; here high-bit-depth data is rescaled and transparency
    is composited onto white (how viewers show it).
    """
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I"):
        return Image.fromarray(_integer_to_8bit(np.asarray(img)), "L").convert("RGB")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = np.clip((arr - lo) / max(hi - lo, 1e-12) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(scaled, "L").convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode in ("L", "1") and "transparency" in img.info:
        img = img.convert("LA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _integer_to_8bit(arr: np.ndarray, rows: int = 256) -> np.ndarray:
    """16/32-bit greyscale to 8 bits: ``round(v / hi * 255)`` clipped to 0..255, with ``hi`` 65535
    (255 when no value exceeds it: 8-bit data stored wide), in integers and a few rows at a time,
    so a large 16-bit scan costs about its own size in memory rather than 8 bytes per pixel."""
    hi = 255 if arr.size == 0 or int(arr.max()) <= 255 else 65535
    out = np.empty(arr.shape, np.uint8)
    for top in range(0, arr.shape[0], rows):
        block = np.clip(arr[top : top + rows].astype(np.int64), 0, hi)
        out[top : top + rows] = (block * 510 + hi) // (2 * hi)  # round half up, exactly
    return out
