"""Command-line tests: each runs ``mnv3`` (or Python) in a subprocess, except where a test is about
numbers and files only (``in_process``: no torch import to pay again).

Fast inference: the ONNX cache (keys, locations, damaged entries), the backend choice, the
torch-free warm ``mnv3 predict``, and ``mnv3 export`` with its verification.

The int8 TFLite model is exported into one module-scoped cache by a real first CLI run; the other
tests reuse that entry, so the export cost is paid once here.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import IMPORT_GUARD, cli_env, invoke
from mnv3cli.inference.export import DEFAULT_OPSET as CACHE_OPSET
from mnv3cli.inference.onnx_backend import OnnxBackend
from mnv3cli.inference.onnx_cache import (
    OnnxCache,
    cache_key,
)
from mnv3cli.inference.runtime import open_runtime
from mnv3cli.registry import ModelCard, Preprocess
from mnv3cli.weights.download import sha256_file

CAT_CLASSES = set(range(281, 286))


def cli(args, cache, guard=False):
    """``mnv3 ARGS`` in a subprocess with ``MNV3_CACHE=cache`` (optionally under the import guard)."""
    prefix = ["-c", IMPORT_GUARD] if guard else ["-m", "mnv3cli"]
    return subprocess.run(
        [sys.executable, *prefix, *map(str, args)],
        capture_output=True,
        text=True,
        env=cli_env({"MNV3_CACHE": str(cache)}),
        timeout=600,
    )


def in_process(args, cache):
    """:func:`cli` without the subprocess (:func:`helpers.invoke`), for tests about numbers and files."""
    return invoke(*args, env={"MNV3_CACHE": str(cache)})


@pytest.fixture(scope="module")
def warm(bundled_weights, cat_photo, tmp_path_factory):
    """A cache warmed by a first ``mnv3 predict``; returns (cache dir, that first run)."""
    cache = tmp_path_factory.mktemp("onnx-cache")
    first = cli(["predict", cat_photo, "--weights", bundled_weights, "--json"], cache)
    return cache, first


def test_first_run_builds_the_cache_and_says_so(warm):
    cache, first = warm
    assert first.returncode == 0, first.stderr
    assert "building ONNX cache for mobilenetv3_small_100" in first.stderr
    assert "(weights: " in first.stderr and "; first run only)" in first.stderr and ") (" not in first.stderr
    (entry,) = (cache / "onnx").iterdir()
    meta = json.loads((entry / "meta.json").read_text())["card"]
    assert meta["model_name"] == "mobilenetv3_small_100" and len(meta["class_names"]) == 1000
    assert meta["wordnet_ids"][0] == "n01440764" and meta["preprocess"]["mean"] == [0.5, 0.5, 0.5]
    assert (entry / "model.onnx").stat().st_size > 1_000_000


def test_warm_predict_never_imports_torch_and_matches_torch(warm, bundled_weights, cat_photo):
    cache, first = warm
    fast = cli(["predict", cat_photo, "--weights", bundled_weights, "--json"], cache, guard=True)
    assert fast.returncode == 0, fast.stderr
    *lines, imported = fast.stdout.strip().splitlines()
    assert imported == "[]", f"a warm predict imported {imported[:200]}"
    assert "building" not in fast.stderr
    (record,) = map(json.loads, lines)
    assert record == json.loads(first.stdout)
    assert record["predictions"][0]["index"] in CAT_CLASSES

    slow = cli(["predict", cat_photo, "--weights", bundled_weights, "--json", "--backend", "torch"], cache)
    assert slow.returncode == 0, slow.stderr
    torch_record = json.loads(slow.stdout)
    assert [p["index"] for p in torch_record["predictions"]] == [p["index"] for p in record["predictions"]]
    assert np.allclose(
        [p["probability"] for p in torch_record["predictions"]],
        [p["probability"] for p in record["predictions"]],
        atol=1e-5,
    )


def test_damaged_or_half_written_entries_are_rebuilt(warm, bundled_weights, tmp_path):
    cache, _ = warm
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    (entry,) = (copy / "onnx").iterdir()
    key = json.loads((entry / "meta.json").read_text())["key"]
    store = OnnxCache(copy)
    assert store.lookup(key) is not None
    assert key == cache_key(sha256_file(bundled_weights), None, CACHE_OPSET)

    (entry / "meta.json").write_text("{ truncated")  # a crash mid-write: not an entry
    assert store.lookup(key) is None
    shutil.copy(cache / "onnx" / entry.name / "meta.json", entry / "meta.json")
    (entry / "model.onnx").write_bytes(b"\x00" * 64)  # the graph damaged on disk

    messages = []
    runtime = open_runtime(str(bundled_weights), cache=store, notify=messages.append)
    assert any("unusable" in m and "rebuilding" in m for m in messages), messages
    assert runtime.backend.name == "onnxruntime" and store.lookup(key) is not None
    batch = np.zeros((3, 3, 224, 224), np.float32)  # the dynamic batch axis
    assert runtime.backend(batch).shape == (3, 1000)


def test_export_onnx_verifies_on_a_photo_and_has_a_dynamic_batch(mnv3, bundled_weights, cat_photo, tmp_path):
    out = tmp_path / "small.onnx"
    result = mnv3("export", "--weights", bundled_weights, "-o", out, "--image", cat_photo, "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["ok"] and 0 <= record["max_abs_diff"] <= 1e-4 and record["opset"] == 17
    assert record["model"] == "mobilenetv3_small_100" and record["verified_on"] == str(cat_photo)
    backend = OnnxBackend(out)
    assert backend.input_shape[0] == "batch"
    assert backend(np.zeros((5, 3, 224, 224), np.float32)).shape == (5, 1000)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_export_torchscript_and_resolution(mnv3, bundled_weights, tmp_path):
    out = tmp_path / "small.pt"
    result = mnv3("export", "-f", "torchscript", "--weights", bundled_weights, "-o", out, "-r", "160")
    assert result.returncode == 0, result.stderr
    assert "largest logit difference from PyTorch on generated image" in result.stdout
    import torch

    scripted = torch.jit.load(str(out))
    assert scripted(torch.zeros(2, 3, 160, 160)).shape == (2, 1000)


def test_export_bad_image_is_a_user_error(mnv3, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    result = mnv3("export", "--image", bad, "-o", tmp_path / "x.onnx")
    assert result.returncode == 2 and "bad.jpg" in result.stderr
    assert not (tmp_path / "x.onnx").exists()


# Stores KEY in the cache at argv[1] with a fake export that writes argv[2]'s bytes, says so in
# <root>/started-<name>, and waits for <root>/go-<name> before returning (killed meanwhile, or let go).
RACER = """
import json, sys, time
from pathlib import Path
from mnv3cli.inference.onnx_cache import OnnxCache
from mnv3cli.registry import ModelCard, Preprocess
root, name = Path(sys.argv[1]), sys.argv[2]
def export(path):
    path.write_bytes(name.encode() * 1000)
    (root / f"started-{name}").touch()
    while not (root / f"go-{name}").exists():
        time.sleep(0.02)
entry = OnnxCache(root).store({"k": 1}, export, ModelCard("m", ["a", "b"], Preprocess()))
print(json.dumps({"directory": str(entry.directory), "source": entry.model_path.read_bytes()[:1].decode()}))
"""


@pytest.fixture
def racer(tmp_path, spawn):
    """Starts racers (``racer(name)``); every one still running at teardown is killed and reaped
    (``spawn``), so a failing test leaves none polling for its go file."""

    def start(name: str) -> subprocess.Popen:
        proc = spawn(
            [sys.executable, "-c", RACER, str(tmp_path), name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(),
        )
        for _ in range(1500):  # up to 30 s for the interpreter to start and reach the export
            if (tmp_path / f"started-{name}").exists() or proc.poll() is not None:
                break
            time.sleep(0.02)
        assert (tmp_path / f"started-{name}").exists(), proc.communicate()
        return proc

    return start


def _entries(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "onnx").iterdir())


@pytest.mark.parametrize("kill", [signal.SIGINT, signal.SIGKILL])
@pytest.mark.parametrize("survivor_first", [True, False])
def test_a_build_killed_midway_never_harms_another_process_building_the_same_entry(
    tmp_path, racer, kill, survivor_first
):
    """Two processes build the same entry; one is interrupted (Ctrl-C) or killed mid-export, before
    or after the other publishes. The other returns the complete entry; Ctrl-C leaves nothing behind,
    and what a killed build leaves is removed by a later build once stale, not before."""
    from mnv3cli.inference import onnx_cache

    victim, survivor = racer("v"), racer("s")
    if survivor_first:
        (tmp_path / "go-s").touch()
        assert survivor.wait(timeout=60) == 0, survivor.stderr.read()
    victim.send_signal(kill)
    assert victim.wait(timeout=60) != 0
    if not survivor_first:
        (tmp_path / "go-s").touch()
        assert survivor.wait(timeout=60) == 0, survivor.stderr.read()

    published = json.loads(survivor.stdout.read())
    cache = OnnxCache(tmp_path)
    entry = cache.lookup({"k": 1})
    assert entry is not None and str(entry.directory) == published["directory"]
    assert entry.model_path.read_bytes() == b"s" * 1000 and entry.card.class_names == ("a", "b")
    litter = [name for name in _entries(tmp_path) if name.startswith(onnx_cache.TMP_PREFIX)]
    assert len(litter) == (kill == signal.SIGKILL), litter  # Ctrl-C cleans up after itself

    def export(path):
        path.write_bytes(b"other")

    card = ModelCard("m", ["a"], Preprocess())
    cache.store({"k": 2}, export, card)  # a young private folder may be a build in progress: kept
    assert len(_entries(tmp_path)) == 2 + len(litter)
    for name in litter:
        os.utime(tmp_path / "onnx" / name, (0, time.time() - onnx_cache.STALE_SECONDS - 60))
    cache.store({"k": 3}, export, card)
    assert _entries(tmp_path) == sorted(cache.directory({"k": i}).name for i in (1, 2, 3))


@pytest.mark.parametrize("fmt, name", [("onnx", "small.onnx"), ("openvino", "small.xml")])
def test_an_exported_file_is_weights_for_predict_without_torch(warm, bundled_weights, cat_photo, tmp_path, fmt, name):
    pytest.importorskip("openvino", reason="the openvino extra is part of the test extra")
    cache, first = warm
    out = tmp_path / name
    export = cli(["export", "-f", fmt, "--weights", bundled_weights, "-o", out, "--json"], cache)
    assert export.returncode == 0, export.stderr
    assert json.loads(export.stdout)["ok"]
    result = cli(["predict", cat_photo, "--weights", out, "--json"], tmp_path / "empty-cache", guard=True)
    assert result.returncode == 0, result.stderr
    *lines, imported = result.stdout.strip().splitlines()
    assert imported == "[]"  # the file alone: no torch, no cache entry built
    assert not (tmp_path / "empty-cache" / "onnx").exists()
    ours, reference = json.loads(lines[0]), json.loads(first.stdout)
    assert [p["label"] for p in ours["predictions"]] == [p["label"] for p in reference["predictions"]]
    assert np.allclose(
        [p["probability"] for p in ours["predictions"]], [p["probability"] for p in reference["predictions"]], atol=1e-4
    )


def test_profile_puts_each_rows_top1_beside_its_speed(warm, int8_tflite, imagenet_dev, tmp_path):
    cache, _ = warm
    out = tmp_path / "small.onnx"
    assert in_process(["export", "--weights", int8_tflite, "-o", out], cache).returncode == 0
    profile = in_process(
        [
            "profile",
            "--weights",
            out,
            "--compare",
            "small",
            "--data",
            imagenet_dev,
            "--limit",
            "20",
            "--runs",
            "1",
            "--warmup",
            "0",
            "--backend",
            "onnxruntime",
            "--json",
        ],
        cache,
    )
    assert profile.returncode == 0, profile.stderr
    exported, registry = json.loads(profile.stdout)
    evaluate = in_process(["evaluate", imagenet_dev, "--weights", out, "--limit", "20", "--json"], cache)
    assert evaluate.returncode == 0, evaluate.stderr
    assert exported["weights"] == str(out) and exported["latency"][0]["backend"] == "onnxruntime"
    assert exported["latency"][0]["top1"] == json.loads(evaluate.stdout)["top1"] == 90.0
    assert registry["latency"][0]["top1"] is None  # random weights: no accuracy to show
    table = subprocess.run(
        [
            sys.executable,
            "-m",
            "mnv3cli",
            "profile",
            "--weights",
            str(out),
            "--data",
            str(imagenet_dev),
            "--limit",
            "20",
            "--runs",
            "1",
            "--warmup",
            "0",
            "--backend",
            "onnxruntime",
        ],
        capture_output=True,
        text=True,
        env=cli_env({"MNV3_CACHE": str(cache), "COLUMNS": "80"}),
        timeout=600,
    )
    assert table.returncode == 0, table.stderr
    rows = [line for line in table.stdout.splitlines() if "onnxruntime" in line]
    assert rows and all("90.0 %" in row for row in rows), table.stdout
    assert max(map(len, table.stdout.splitlines())) <= 80 and "top-1" in table.stdout


def test_int8_export_over_its_budget_writes_nothing_and_exits_1(imagenet_dev, int8_tflite, tmp_path):
    """Calibrated on black images, int8 loses nearly everything on real ones: the budget holds.
    (60 held-out images: a 10-point certificate needs at least 55, even with no disagreement.)"""
    pytest.importorskip("nncf", reason="the int8 extra is part of the test extra")
    from PIL import Image

    classes = sorted(p.name for p in imagenet_dev.iterdir())
    black, val = tmp_path / "black", tmp_path / "val"
    for wnid in classes[:8]:
        (black / wnid).mkdir(parents=True)
        Image.new("RGB", (64, 64)).save(black / wnid / "black.png")
    val.mkdir()
    for wnid in classes[8:68]:
        (val / wnid).symlink_to(imagenet_dev / wnid)
    out = tmp_path / "out" / "small-int8.onnx"
    result = in_process(
        [
            "export",
            "--int8",
            "--weights",
            int8_tflite,
            "--data",
            black,
            "--val",
            val,
            "--max-drop",
            "10",
            "-o",
            out,
        ],
        tmp_path / "cache",
    )
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    last = result.stderr.strip().splitlines()[-1]
    assert "int8 budget --max-drop 10 not met" in last and "nothing written" in last
    assert "on 60 held-out images the lowest 95 % upper bound" in last and "Traceback" not in result.stderr
    assert "step 1, 0 of" in result.stderr  # each measured step is reported
    assert not out.exists() and list(out.parent.iterdir()) == []  # no file, no leftovers


def test_a_cached_graph_changed_on_disk_is_rebuilt_with_a_note(warm, bundled_weights, cat_photo, tmp_path):
    """Half of the classifier's weights zeroed inside a cached model.onnx (same size, still a valid
    graph that loads): the digest in meta.json no longer matches, so the entry is rebuilt and the
    answer is the right one again (issue 24, item 5)."""
    import onnx
    from onnx import numpy_helper

    cache, first = warm
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    (entry,) = (copy / "onnx").iterdir()
    graph = onnx.load(str(entry / "model.onnx"))
    weight = max(
        (t for t in graph.graph.initializer if len(t.dims) == 2), key=lambda t: t.dims[0] * t.dims[1]
    )  # the classifier: [1000, 1024] or its transpose
    values = numpy_helper.to_array(weight).copy()
    values.reshape(-1)[: values.size // 2] = 0
    weight.CopyFrom(numpy_helper.from_array(values, weight.name))
    onnx.save(graph, str(entry / "model.onnx"))
    assert onnx.load(str(entry / "model.onnx")) is not None  # still a graph that loads

    again = cli(["predict", cat_photo, "--weights", bundled_weights, "--json"], copy)
    assert again.returncode == 0, again.stderr
    assert "unusable" in again.stderr and "sha256 mismatch" in again.stderr and "rebuilding" in again.stderr
    assert json.loads(again.stdout) == json.loads(first.stdout)  # the right answer, exactly
    meta = json.loads((entry / "meta.json").read_text())
    assert OnnxCache.verify(OnnxCache(copy).lookup(meta["key"])) is None  # the rebuilt entry is whole
