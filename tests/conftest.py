"""Shared fixtures: the ../shared data (skip or fail per MNV3_REQUIRE_SHARED), CLI runner, photos."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT, cli_env, invoke, make_imagenet_examples, make_shapes, require_shared, started, wide_lines

# Torch's OpenMP threads spin while waiting; on a busy 2-core machine that costs seconds per step.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(scope="session", autouse=True)
def onnx_cache_dir(tmp_path_factory) -> Path:
    """Tests never write the user's cache: predict/evaluate's ONNX cache lives in one session tmp
    dir (inherited by CLI subprocesses), so each set of weights is exported once per session."""
    path = tmp_path_factory.mktemp("mnv3-cache")
    patch = pytest.MonkeyPatch()
    patch.setenv("MNV3_CACHE", str(path))
    yield path
    patch.undo()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return require_shared()


@pytest.fixture(scope="session")
def int8_tflite() -> Path:
    return require_shared("weights", "mobilenet_v3_small_1.0_224_int8.tflite")


@pytest.fixture(scope="session")
def bundled_weights() -> Path:
    """The model inside the package (registry tag ``bundled``: the int8 TFLite MobileNetV3-Small
    as fp16 safetensors) as a weights file: for tests that need *some* real model, so that they
    run without ../shared. Tests about the TFLite file itself use :func:`int8_tflite`."""
    return ROOT / "mnv3cli" / "bundled" / "mobilenetv3_small_100-int8-fp16.safetensors"


@pytest.fixture(scope="session")
def other_weights(bundled_weights, tmp_path_factory) -> Path:
    """A second weights file that is not :func:`bundled_weights` (another sha256, another model
    version) yet gives its answers: the bundled model converted to an mnv3 checkpoint. For reload
    tests, without ../shared."""
    from click.testing import CliRunner

    from mnv3cli.cli.app import cli

    path = tmp_path_factory.mktemp("other-weights") / "converted.safetensors"
    result = CliRunner().invoke(cli, ["-q", "convert", str(bundled_weights), "-o", str(path)])
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture(scope="session")
def uint8_tflite() -> Path:
    return require_shared("weights", "mobilenet_v3_small_1.0_224_uint8.tflite")


@pytest.fixture(scope="session")
def imagenet_dev() -> Path:
    return require_shared("data", "imagenet-sample", "dev")


@pytest.fixture(scope="session")
def imagenet_examples(tmp_path_factory) -> Path:
    """24 ImageNet class folders of one image each, made from examples/ (see
    :func:`helpers.make_imagenet_examples`): the dev set's layout without ../shared."""
    return make_imagenet_examples(tmp_path_factory.mktemp("imagenet-examples"))


@pytest.fixture(scope="session")
def hymenoptera() -> Path:
    return require_shared("data", "hymenoptera")


@pytest.fixture
def spawn():
    """``spawn(args, **popen_kwargs)``: a child process started with default signal handling and
    stopped at teardown whatever the test did (:func:`helpers.started`)."""
    with contextlib.ExitStack() as stack:
        yield lambda args, **kwargs: stack.enter_context(started(args, **kwargs))


@pytest.fixture
def run_cli(tmp_path):
    """Run ``python -m mnv3cli ARGS`` in a subprocess; returns CompletedProcess (text mode)."""

    def run(
        *args: str, input: str | None = None, env: dict | None = None, cwd=None, timeout: float = 600
    ) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [sys.executable, "-m", "mnv3cli", *map(str, args)],
            input=input,
            capture_output=True,
            text=True,
            env=cli_env(env),
            cwd=cwd or tmp_path,
            timeout=timeout,
        )
        _check_width(args, env, done, (cwd or tmp_path, tmp_path))
        return done

    return run


def _check_width(args, env: dict | None, done: subprocess.CompletedProcess, folders) -> None:
    """A call made at 80 columns checks every error, warning and note it provoked for free."""
    if cli_env(env)["COLUMNS"] == "80" and not {"-v", "--verbose", "-vv"} & set(map(str, args)):
        too_wide = wide_lines(done.stderr, folders)
        assert not too_wide, f"mnv3 {' '.join(map(str, args))}: stderr wider than 80 columns:\n" + "\n".join(too_wide)


@pytest.fixture(scope="session")
def cat_photo(tmp_path_factory) -> Path:
    """scikit-image's ``chelsea`` (a tabby cat) as a JPEG."""
    from PIL import Image
    from skimage import data

    path = tmp_path_factory.mktemp("photos") / "chelsea.jpg"
    Image.fromarray(data.chelsea()).save(path, quality=95)
    return path


@pytest.fixture(scope="session")
def coffee_photo(tmp_path_factory) -> Path:
    """scikit-image's ``coffee`` (a cup of espresso) as a JPEG."""
    from PIL import Image
    from skimage import data

    path = tmp_path_factory.mktemp("photos") / "coffee.jpg"
    Image.fromarray(data.coffee()).save(path, quality=95)
    return path


@pytest.fixture
def blocked_dir(tmp_path):
    """A path whose parent is a regular file: no directory can be made there, even by root."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    return blocker / "sub"


@pytest.fixture
def bad_corpus(tmp_path, cat_photo, coffee_photo):
    """good/bad files interleaved in one folder (sorted names), plus an empty folder and a missing path."""
    from helpers import png_bomb_bytes

    root = tmp_path / "corpus"
    root.mkdir()
    data = cat_photo.read_bytes()
    (root / "1-cat.jpg").write_bytes(data)
    (root / "2-empty.jpg").write_bytes(b"")
    (root / "3-truncated.jpg").write_bytes(data[: len(data) // 3])
    (root / "4-noise.jpg").write_bytes(bytes(range(256)) * 16)
    (root / "5-text.png").write_text("just text")
    (root / "6-bomb.png").write_bytes(png_bomb_bytes())
    (root / "7-coffee.jpg").write_bytes(coffee_photo.read_bytes())
    (root / "readme.txt").write_text("skipped: not an image file name")
    (tmp_path / "empty-dir").mkdir()
    expected = {
        "1-cat.jpg": None,
        "2-empty.jpg": "empty file",
        "3-truncated.jpg": "truncated",
        "4-noise.jpg": "not an image",
        "5-text.png": "not an image",
        "6-bomb.png": "decompression bomb",
        "7-coffee.jpg": None,
        "empty-dir": "no image files",
        "missing.jpg": "no such file",
    }
    return tmp_path, expected


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    """A small three-class ImageFolder (see :func:`helpers.make_shapes`)."""
    return make_shapes(tmp_path_factory.mktemp("shapes"))


@pytest.fixture
def one_thread():
    """Torch on one thread for the test: small models train faster and reproducibly so."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def mnv3(tmp_path):
    """``run_cli`` in this process (:func:`helpers.invoke`): for tests about what a command
    computes, writes or refuses, not about the process (imports, signals, workers, memory)."""

    def run(*args, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
        done = invoke(*args, env=env, cwd=cwd or tmp_path)
        _check_width(args, env, done, (cwd or tmp_path, tmp_path))
        return done

    return run


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium driven by Playwright (``executable_path``: ``playwright install`` and its
    downloads are never used), one per test module; skips when either is missing."""
    import shutil

    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need playwright (.[test])")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        yield browser
        browser.close()
