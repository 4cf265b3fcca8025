"""``mnv3 serve``'s decode budget: images near the pixel cap that would cost seconds and gigabytes
(16-bit, alpha) are refused from their header; a JPEG declaring more pixels than its data holds is
refused rather than classified as the grey libjpeg fills it with; 16-bit images within the budget
are converted in integers (the same bytes as before, a fraction of the memory).
"""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest

from helpers import png_chunk

pytest.importorskip("fastapi", reason="mnv3 serve needs the serve extra: pip install '.[serve]'")
from fastapi.testclient import TestClient  # noqa: E402

from mnv3cli.data.images import _integer_to_8bit  # noqa: E402
from mnv3cli.serving import ServeSettings, create_app  # noqa: E402


@pytest.fixture(scope="module")
def runtime(bundled_weights):
    from mnv3cli.inference import open_runtime

    return open_runtime(str(bundled_weights), pipelined=True)


@pytest.fixture(scope="module")
def client(runtime):
    with TestClient(create_app(runtime, ServeSettings(max_wait_ms=2))) as test_client:
        yield test_client


def blank_png(side: int, bit_depth: int, colour_type: int, channels: int) -> bytes:
    """A valid ``side`` x ``side`` PNG of zeros, compressed as it is built (no full-size array)."""
    row = b"\0" * (1 + side * channels * bit_depth // 8)  # filter byte + samples
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "bit_depth, colour_type, channels, mode", [(16, 0, 1, "I;16"), (8, 6, 4, "RGBA")], ids=["16-bit", "rgba"]
)
def test_an_image_over_the_decode_budget_is_refused_from_its_header(client, bit_depth, colour_type, channels, mode):
    png = blank_png(9400, bit_depth, colour_type, channels)  # under Pillow's pixel cap, over the budget
    start = time.perf_counter()
    response = client.post("/v1/predict", content=png, headers={"Content-Type": "image/png"})
    took = time.perf_counter() - start
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error.startswith("request body: image too large to decode here (9400x9400 pixels, ")
    assert mode in error and "limit 128 MB" in error
    assert took < 1.0, f"{took:.1f} s to refuse"


def test_a_jpeg_declaring_more_pixels_than_its_data_holds_is_refused(client):
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    frame = data.find(b"\xff\xc0")  # baseline frame header: height and width follow the precision byte
    data[frame + 5 : frame + 9] = struct.pack(">HH", 9000, 9000)
    response = client.post("/v1/predict", content=bytes(data), headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == (
        f"request body: corrupt or truncated image ({len(data)} bytes cannot hold the 9000x9000 pixels "
        "its header declares)"
    )


def test_a_16bit_image_within_the_budget_is_classified_as_predict_does(client, runtime, cat_photo, tmp_path):
    from PIL import Image

    from mnv3cli.prediction import predict

    grey = np.asarray(Image.open(cat_photo).convert("L"), dtype=np.uint16) * 257  # 8 bits spread to 16
    path = tmp_path / "cat16.png"
    Image.fromarray(grey).save(path)
    assert Image.open(path).mode == "I;16"
    response = client.post("/v1/predict", content=path.read_bytes(), headers={"Content-Type": "image/png"})
    assert response.status_code == 200, response.text
    expected = next(predict([str(path)], runtime.backend, runtime.card.preprocess, runtime.card.class_names, top_k=5))
    assert response.json()["predictions"] == expected.to_dict()["predictions"]


@pytest.mark.parametrize(
    "values",
    [np.arange(65536), np.arange(256), np.array([-5, 0, 300, 70000, 65535])],
    ids=["16-bit", "8-bit stored wide", "out of range"],
)
def test_integer_conversion_to_8_bits_equals_the_float_rounding(values):
    arr = values.reshape(1, -1)
    hi = 65535.0 if arr.max() > 255 else 255.0
    expected = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)  # the float formula it replaces
    assert np.array_equal(_integer_to_8bit(arr.astype(np.int32)), expected)
