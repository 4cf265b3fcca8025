"""Preprocessing cost is bounded by the output, not by the source's shape (issue 24 item 2), and
running out of memory on one image is that image's error, not the run's."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageFilter

from helpers import cli_env
from mnv3cli.data.preprocess import MAX_RESIZED_PIXELS, RESAMPLE, resize_crop
from mnv3cli.registry.types import Preprocess

# A child process measures itself: its peak memory (VmHWM) is its own, whatever the test process holds.
WORST_SHAPES = """
import json, resource, sys, time
from PIL import Image
from mnv3cli.data.preprocess import load_and_preprocess
from mnv3cli.registry.types import Preprocess
seconds = {}
for w, h in json.loads(sys.argv[2]):
    path = f"{sys.argv[1]}/{w}x{h}.png"
    Image.new("RGB", (w, h), (200, 30, 30)).save(path)
    start = time.perf_counter()
    x = load_and_preprocess(path, Preprocess(interpolation="bicubic"))
    assert x.shape == (3, 224, 224)
    seconds[f"{w}x{h}"] = time.perf_counter() - start
# VmHWM: this program's own peak (ru_maxrss would carry over the parent's across fork and exec)
hwm = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")]
peak = int(hwm[0]) / 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak}))
"""


def test_the_worst_shapes_preprocess_in_bounded_time_and_memory(tmp_path):
    """1x20000 took predict 47 s and 5.4 GB; 1x30000 asked for ~6 GB. Now each takes milliseconds
    (bounds here: 2 s each and 400 MB for the whole child, margins for a loaded machine)."""
    shapes = [(1, 20_000), (20_000, 1), (1, 30_000), (30_000, 1), (3, 1_000_000), (1_000_000, 2)]
    proc = subprocess.run(
        [sys.executable, "-c", WORST_SHAPES, str(tmp_path), json.dumps(shapes)],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    measured = json.loads(proc.stdout)
    assert max(measured["seconds"].values()) < 2.0, measured
    assert measured["peak_mb"] < 400, measured


@pytest.mark.parametrize("interpolation", sorted(RESAMPLE))
@pytest.mark.parametrize("size", [(20, 3000), (3000, 20), (640, 480), (480, 640), (256, 256), (100, 80)])
def test_cropping_first_matches_resizing_everything_then_cropping(size, interpolation):
    """The reference is the plain arithmetic (torchvision's Resize + CenterCrop on a PIL image).
    Below MAX_RESIZED_PIXELS it is what runs (bit for bit); above, the crop is resampled alone
    and stays within a few levels of it (a smooth image: nearest may pick a neighbour pixel)."""
    w, h = size
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).filter(ImageFilter.GaussianBlur(3))
    cfg = Preprocess(interpolation=interpolation)
    short, long = min(w, h), max(w, h)
    new = (cfg.resize, int(cfg.resize * long / short))
    new = new if w <= h else new[::-1]
    whole = img.resize(new, RESAMPLE[interpolation]) if new != img.size else img
    left, top = round((new[0] - 224) / 2), round((new[1] - 224) / 2)
    expected = np.asarray(whole.crop((left, top, left + 224, top + 224)), dtype=int)
    got = np.asarray(resize_crop(img, cfg), dtype=int)
    if new[0] * new[1] <= MAX_RESIZED_PIXELS:
        assert np.array_equal(got, expected)
    else:
        assert np.abs(got - expected).max() <= (12 if interpolation == "nearest" else 3)


OUT_OF_MEMORY = """
import json, resource, sys
from PIL import Image
from mnv3cli.data.batches import iter_batches
from mnv3cli.registry.types import Preprocess
small, big = f"{sys.argv[1]}/small.png", f"{sys.argv[1]}/big.png"
Image.new("RGB", (64, 48), (0, 90, 200)).save(small)
Image.new("L", (8000, 8000)).save(big)  # a few kB on disk, 192 MB once decoded to RGB
with open("/proc/self/status") as fh:
    now = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (now + 150 * 2**20, resource.getrlimit(resource.RLIMIT_AS)[1]))
batches = list(iter_batches([small, big, small], Preprocess(), batch_size=3, workers=1))
print(json.dumps({"indices": batches[0].indices, "errors": batches[0].errors}))
"""


def test_running_out_of_memory_on_one_image_is_that_images_error(tmp_path):
    """Under a memory limit, the image that does not fit is a per-image error naming it; the
    others are preprocessed (it used to end the run in "internal error: MemoryError")."""
    proc = subprocess.run(
        [sys.executable, "-c", OUT_OF_MEMORY, str(tmp_path)], capture_output=True, text=True, env=cli_env(), timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["indices"] == [0, 2]
    assert result["errors"] == {"1": f"{tmp_path}/big.png: not enough memory to decode and preprocess this image"}
