"""Every console example of README.md and docs/ runs (in a subprocess) and prints what its page shows.

How pages are run and compared: see the docstring of tests/unit/test_docs.py and ``doc_examples``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import doc_examples as dx
from helpers import ROOT, cli_env, invoke, require_shared

# Pages with at least one executed example: a page without any is no test (it was 5 skips each run).
PAGES = sorted(p for p in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")] if any(not b.skip for b in dx.parse(p)))


COLUMNS = "80"  # the width the conventions promise: every shown output is checked at it


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    from PIL import Image
    from skimage import data

    folder = tmp_path_factory.mktemp("doc-photos")
    Image.fromarray(data.chelsea()).save(folder / "cat.jpg", quality=95)
    Image.fromarray(data.coffee()).save(folder / "coffee.jpg", quality=95)
    return folder


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory, photos) -> Path | None:
    """An ONNX cache holding the int8 TFLite model's graph (None without ../shared).

    Built from ``weights/...`` relative to a page-like folder: a cache entry remembers the path it
    was built from, and the pages show that path."""
    try:
        require_shared("weights", "mobilenet_v3_small_1.0_224_int8.tflite")
    except pytest.skip.Exception:
        return None
    cache, workdir = tmp_path_factory.mktemp("doc-cache"), tmp_path_factory.mktemp("doc-warm")
    _prepare(workdir, photos, need_shared=True)
    done = invoke(
        *("-q", "predict", "photos/cat.jpg", "--weights", "weights/mobilenet_v3_small_1.0_224_int8.tflite", "--json"),
        env={"MNV3_CACHE": str(cache)},
        cwd=workdir,
    )  # in-process: the pages' own runs are the subprocesses
    assert done.returncode == 0, done.stderr
    return cache


def _prepare(workdir: Path, photos: Path, need_shared: bool) -> None:
    if need_shared:
        for name in ("weights", "data"):
            (workdir / name).symlink_to(require_shared(name), target_is_directory=True)
    (workdir / "examples").symlink_to(ROOT / "examples", target_is_directory=True)  # README's Quick start
    (workdir / "photos").mkdir()
    bad = workdir / "bad"
    bad.mkdir()
    for name in ("cat.jpg", "coffee.jpg"):
        (workdir / "photos" / name).write_bytes((photos / name).read_bytes())
    cat = (photos / "cat.jpg").read_bytes()
    (bad / "cat.jpg").write_bytes(cat)
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "notes.png").write_text("not a picture\n")
    (bad / "truncated.jpg").write_bytes(cat[:2000])


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_console_examples(page: Path, photos: Path, warm_cache: Path | None, tmp_path: Path) -> None:
    blocks = [b for b in dx.parse(page) if not b.skip]
    if not blocks:
        pytest.skip("no executed examples")
    commands = [c.text for b in blocks for c in b.commands]
    need_shared = any(re.search(r"\b(weights|data)/", c) for c in commands)
    workdir = tmp_path / "work"
    workdir.mkdir()
    _prepare(workdir, photos, need_shared)
    if warm_cache is not None:
        shutil.copytree(warm_cache, tmp_path / "cache")
    env = cli_env(
        {
            "COLUMNS": COLUMNS,
            "PYTHONUNBUFFERED": "1",
            "MNV3_PYTHON": sys.executable,
            "MNV3_CACHE": str(tmp_path / "cache"),
            "TORCH_HOME": str(tmp_path / "torch"),
        }
    )
    env.pop("MNV3_DEVICE", None)
    failures = []
    for block in blocks:
        done = subprocess.run(
            ["bash", "-c", dx.script(block)], cwd=workdir, env=env, capture_output=True, text=True, timeout=600
        )
        for command, actual in zip(block.commands, dx.split_output(done.stdout, block), strict=False):
            if not dx.matches(command.expected, actual):
                failures.append(dx.mismatch(command, actual, _page_id(page)))
    assert not failures, "documentation examples differ from what the commands print:\n\n" + "\n\n".join(failures)
