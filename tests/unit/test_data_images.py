"""Decoding: every common format and pixel mode becomes correct upright RGB; bad files fail cleanly."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from helpers import png_bomb_bytes
from mnv3cli.data.images import EncodedImage, ImageDecodeError, open_rgb


def _palette_with_transparency(path):
    img = Image.new("P", (8, 8), 0)
    img.putpalette([0, 255, 0] + [255, 0, 0] * 255)  # index 0 = green, marked transparent
    img.save(path, transparency=0)


def _gif_two_frames(path):
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(path, save_all=True, append_images=frames[1:])


# name -> (writer, expected RGB of every pixel)
MODES = {
    "grey.png": (lambda p: Image.new("L", (8, 8), 77).save(p), (77, 77, 77)),
    "palette-transparent.png": (_palette_with_transparency, (255, 255, 255)),
    "rgba-transparent.png": (lambda p: Image.new("RGBA", (8, 8), (255, 0, 0, 0)).save(p), (255, 255, 255)),
    "rgba-half.png": (lambda p: Image.new("RGBA", (8, 8), (0, 0, 0, 128)).save(p), (127, 127, 127)),
    "cmyk.jpg": (lambda p: Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(p, quality=100), (255, 0, 0)),
    "grey16.png": (lambda p: Image.fromarray(np.full((8, 8), 32768, np.uint16)).save(p), (128, 128, 128)),
    "bilevel.png": (lambda p: Image.new("1", (8, 8), 1).save(p), (255, 255, 255)),
    "first-frame.gif": (_gif_two_frames, (255, 0, 0)),
    "lossless.webp": (lambda p: Image.new("RGB", (8, 8), (10, 200, 30)).save(p, lossless=True), (10, 200, 30)),
    "plain.bmp": (lambda p: Image.new("RGB", (8, 8), (10, 200, 30)).save(p), (10, 200, 30)),
    "plain.tiff": (lambda p: Image.new("RGB", (8, 8), (10, 200, 30)).save(p), (10, 200, 30)),
}


@pytest.mark.parametrize("name", sorted(MODES))
def test_modes_decode_to_correct_rgb(tmp_path, name):
    write, expected = MODES[name]
    path = tmp_path / name
    write(path)
    img = open_rgb(path)
    assert img.mode == "RGB" and img.size == (8, 8)
    pixels = np.asarray(img).reshape(-1, 3).astype(int)
    assert np.abs(pixels - expected).max() <= 2, (name, pixels[0])


def _asymmetric(w=96, h=64) -> Image.Image:
    """Red left half, blue bottom-right quarter: any wrong rotation or flip changes it."""
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:, : w // 2] = (255, 0, 0)
    arr[h // 2 :, w // 2 :] = (0, 0, 255)
    return Image.fromarray(arr)


@pytest.mark.parametrize(
    "orientation, stored_as",
    [
        (3, Image.Transpose.ROTATE_180),
        (6, Image.Transpose.ROTATE_90),
        (8, Image.Transpose.ROTATE_270),
        (2, Image.Transpose.FLIP_LEFT_RIGHT),
    ],
)
@pytest.mark.parametrize("min_size", [None, 32])
def test_exif_orientation_is_applied(tmp_path, orientation, stored_as, min_size):
    upright = _asymmetric()
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "rotated.jpg"
    upright.transpose(stored_as).save(path, exif=exif, quality=95)
    img = open_rgb(path, min_size=min_size)
    if img.size != upright.size:  # draft mode decoded it smaller; compare like with like
        upright = upright.resize(img.size, Image.Resampling.BILINEAR)
    assert img.size == upright.size
    diff = np.abs(np.asarray(img, dtype=int) - np.asarray(upright, dtype=int))
    assert diff.mean() < 8


def test_draft_mode_decodes_large_jpeg_smaller_but_not_below_min_size(tmp_path):
    path = tmp_path / "big.jpg"
    Image.new("RGB", (2000, 1200), (90, 120, 150)).save(path)
    assert open_rgb(path).size == (2000, 1200)
    small = open_rgb(path, min_size=256)
    assert small.size[0] < 2000 and min(small.size) >= 256


def test_encoded_image_decodes_like_the_file(tmp_path, cat_photo):
    from_bytes = open_rgb(EncodedImage("https://example.org/cat.jpg", cat_photo.read_bytes()), min_size=256)
    assert np.array_equal(np.asarray(from_bytes), np.asarray(open_rgb(cat_photo, min_size=256)))
    with pytest.raises(ImageDecodeError, match=r"^https://x/empty\.jpg: empty file"):
        open_rgb(EncodedImage("https://x/empty.jpg", b""))
    with pytest.raises(ImageDecodeError, match=r"^https://x/t\.jpg: not an image"):
        open_rgb(EncodedImage("https://x/t.jpg", b"<html>not found</html>"))


def _truncated_jpeg(path, cat_photo):
    data = cat_photo.read_bytes()
    path.write_bytes(data[: len(data) // 3])


BAD_FILES = {
    "empty.jpg": (lambda p, _: p.write_bytes(b""), "empty file"),
    "truncated.jpg": (_truncated_jpeg, "corrupt or truncated"),
    "noise.jpg": (lambda p, _: p.write_bytes(np.random.default_rng(0).bytes(4096)), "not an image"),
    "notes.txt": (lambda p, _: p.write_text("hello\n"), "not an image"),
    "bomb.png": (lambda p, _: p.write_bytes(png_bomb_bytes()), "decompression bomb"),
    "folder.jpg": (lambda p, _: p.mkdir(), "is a directory"),
    "missing.jpg": (lambda p, _: None, "no such file"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files_raise_decode_error_naming_file_and_reason(tmp_path, cat_photo, name):
    make, reason = BAD_FILES[name]
    path = tmp_path / name
    make(path, cat_photo)
    with pytest.raises(ImageDecodeError) as info:
        open_rgb(path, min_size=256)
    assert str(info.value).startswith(f"{path}: ") and reason in str(info.value)
