"""``predict --sort-into DIR -o FILE`` interrupted (Ctrl-C or kill -9) and resumed: every input is
placed exactly once and ``DIR/sorted.csv`` lists every input, in order (issue 24, item 8). A
hand-made graph (tests/hostile_graphs.py: a mean over the pixels) keeps the run free of torch;
large solid images, one per batch, keep it slow enough to interrupt part-way."""

from __future__ import annotations

import csv
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import cli_env
from hostile_graphs import card, graph

IMAGES = 300


@pytest.fixture(scope="module")
def inbox(tmp_path_factory) -> Path:
    """300 images of three colours (1200x1200: each takes a while to decode), and the graph."""
    from PIL import Image

    root = tmp_path_factory.mktemp("inbox")
    colours = [(250, 10, 10), (10, 250, 10), (10, 10, 250)]
    models = []
    for i, colour in enumerate(colours):
        models.append(root / f"model-{i}.png")
        Image.new("RGB", (1200, 1200), colour).save(models[-1])
    images = root / "images"
    images.mkdir()
    for n in range(IMAGES):
        shutil.copyfile(models[n % 3], images / f"{n:04d}.png")
    graph(root / "colours.onnx", card(4))
    return root


def _start(args: list, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mnv3cli", *map(str, args)],
        cwd=cwd,
        env=cli_env({"OMP_NUM_THREADS": "1"}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # even under a parent that ignores it
    )


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))[1:]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_an_interrupted_sort_resumes_to_every_input_placed_once_and_listed(run_cli, inbox, tmp_path, sig):
    args = ["predict", "images", "-w", "colours.onnx", "-b", "1", "-j", "1", "-o", tmp_path / "r.csv"]
    args += ["--sort-into", tmp_path / "sorted"]
    part = tmp_path / "r.csv.part"
    proc = _start(args, inbox)
    try:
        deadline = time.monotonic() + 300
        while proc.poll() is None and not (part.exists() and part.read_bytes().count(b"\n") > 45):
            assert time.monotonic() < deadline, "the run never got to 45 results"
            time.sleep(0.01)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode in (-sig, 130, 1), stderr  # stopped part-way (SIGINT: exit 130 or "interrupted")
    assert not (tmp_path / "r.csv").exists(), "the run ended before it was interrupted"
    assert (tmp_path / "sorted" / "sorted.csv.part").exists()

    again = run_cli(*args, "--resume", cwd=inbox)
    assert again.returncode == 0, again.stderr
    results = _rows(tmp_path / "r.csv")
    listed = _rows(tmp_path / "sorted" / "sorted.csv")
    inputs = [f"images/{n:04d}.png" for n in range(IMAGES)]
    assert [r[0] for r in results] == inputs
    assert [r[0] for r in listed] == inputs  # every input once, in input order
    placed = sorted(str(p) for p in (tmp_path / "sorted").glob("*/*.png"))
    assert sorted(r[1] for r in listed) == placed and len(placed) == IMAGES  # each placed exactly once
    assert all(Path(r[1]).parent.name == r[2] for r in listed)  # under its answer
    assert not list((tmp_path / "sorted").glob("*.part"))
    done = run_cli(*args, "--resume", cwd=inbox)  # a finished run resumed: nothing placed or listed again
    assert done.returncode == 0 and "already holds the results" in done.stderr, done.stderr
    assert sorted(str(p) for p in (tmp_path / "sorted").glob("*/*.png")) == placed
    assert sorted(p.name for p in (tmp_path / "sorted").glob("*.csv")) == ["sorted.csv"]
