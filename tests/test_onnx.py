"""Fast inference: the ONNX cache (keys, locations, damaged entries), the backend choice, the
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
from helpers import cli_env as _cli_env

from mnv3cli.errors import UserError
from mnv3cli.inference import onnx_backend
from mnv3cli.inference.export import DEFAULT_OPSET as CACHE_OPSET
from mnv3cli.inference.onnx_backend import OnnxBackend
from mnv3cli.inference.onnx_cache import (
    META_FILE,
    OnnxCache,
    cache_key,
    cache_root,
    weights_file,
)
from mnv3cli.inference.runtime import choose_backend, open_runtime
from mnv3cli.registry import ModelCard, Preprocess
from mnv3cli.weights.download import cache_dir, sha256_file

CAT_CLASSES = set(range(281, 286))

# Runs the CLI and prints, as its last stdout line, every torch/torchvision/timm module it imported.
IMPORT_GUARD = ("import sys\nfrom mnv3cli.cli.app import main\ntry:\n    main()\nfinally:\n"
                "    print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'timm')))")


def cli(args, cache, guard=False):
    """``mnv3 ARGS`` in a subprocess with ``MNV3_CACHE=cache`` (optionally under the import guard)."""
    prefix = ["-c", IMPORT_GUARD] if guard else ["-m", "mnv3cli"]
    return subprocess.run([sys.executable, *prefix, *map(str, args)], capture_output=True, text=True,
                          env=_cli_env({"MNV3_CACHE": str(cache)}), timeout=600)


# --- locations and keys (no model needed) ---------------------------------------------------------

def test_cache_root_follows_mnv3_cache_then_xdg_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv("MNV3_CACHE", str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine"
    monkeypatch.delenv("MNV3_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "mnv3"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "mnv3"


@pytest.mark.parametrize("env", [{"TORCH_HOME": "th"}, {"XDG_CACHE_HOME": "xdg"}, {}])
def test_hub_folder_is_where_torch_puts_downloads(monkeypatch, tmp_path, env):
    import torch.hub

    for name in ("TORCH_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, str(tmp_path / value))
    assert cache_dir() == Path(torch.hub.get_dir()) / "checkpoints"


def test_tags_resolve_to_the_file_the_loader_fetches_without_torch(monkeypatch, tmp_path, uint8_tflite):
    """A published TFLite file placed in the hub cache: our path and the loader's are the same."""
    from mnv3cli.registry import get_entry, get_weight_source
    from mnv3cli.weights.download import fetch

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    tag = "tflite:v3-small_224_1.0_uint8"
    assert weights_file(tag, "small") is None  # not downloaded yet: a miss, nothing fetched
    source = get_weight_source(get_entry("small"), tag)
    target = tmp_path / "hub" / "checkpoints" / "v3-small_224_1.0_uint8.tflite"
    target.parent.mkdir(parents=True)
    target.symlink_to(uint8_tflite)
    assert weights_file(tag, "small") == target == fetch(source, progress=False)[0]
    assert weights_file("no-such-tag", "small") is None


def test_key_follows_content_not_name(int8_tflite, tmp_path):
    renamed = tmp_path / "renamed.tflite"
    shutil.copy(int8_tflite, renamed)
    assert sha256_file(weights_file(str(renamed))) == sha256_file(int8_tflite)
    with open(renamed, "r+b") as fh:  # one changed byte is other weights
        fh.seek(1000)
        byte = fh.read(1)
        fh.seek(1000)
        fh.write(bytes([byte[0] ^ 1]))
    assert sha256_file(renamed) != sha256_file(int8_tflite)
    keys = [cache_key("abc", None, 17), cache_key("abd", None, 17), cache_key("abc", "small", 17),
            cache_key("abc", None, 18), cache_key("abc", None, 17, {"width": 0.75})]
    assert len({OnnxCache(tmp_path).directory(k) for k in keys}) == len(keys)
    assert OnnxCache(tmp_path).directory(cache_key("abc", None, 17)) == OnnxCache(tmp_path).directory(keys[0])


# --- backend choice ---------------------------------------------------------------------------------

def test_auto_picks_onnxruntime_on_cpu_and_torch_where_ort_cannot_run():
    assert onnx_backend.available()
    assert choose_backend("auto", "auto") == choose_backend("auto", "cpu") == "onnxruntime"
    assert choose_backend("torch", "cpu") == "torch"
    assert choose_backend("auto", "mps") == "torch"
    with pytest.raises(UserError, match="MPS"):
        onnx_backend.providers_for("mps")
    with pytest.raises(UserError, match="unknown backend"):
        choose_backend("tensorrt")


@pytest.mark.parametrize("content", [b"", b"not a protobuf at all" * 50])
def test_backend_on_a_broken_graph_is_a_user_error(tmp_path, content):
    path = tmp_path / "model.onnx"
    path.write_bytes(content)
    with pytest.raises(UserError, match="model.onnx: not a usable ONNX model"):
        OnnxBackend(path)
    with pytest.raises(UserError, match="not a usable ONNX model"):
        OnnxBackend(tmp_path / "missing.onnx")


# --- the warm cache ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def warm(int8_tflite, cat_photo, tmp_path_factory):
    """A cache warmed by a first ``mnv3 predict``; returns (cache dir, that first run)."""
    cache = tmp_path_factory.mktemp("onnx-cache")
    first = cli(["predict", cat_photo, "--weights", int8_tflite, "--json"], cache)
    return cache, first


def test_first_run_builds_the_cache_and_says_so(warm):
    cache, first = warm
    assert first.returncode == 0, first.stderr
    assert "building ONNX cache for mobilenetv3_small_100" in first.stderr
    assert "(one time)" in first.stderr
    (entry,) = (cache / "onnx").iterdir()
    meta = json.loads((entry / "meta.json").read_text())["card"]
    assert meta["model_name"] == "mobilenetv3_small_100" and len(meta["class_names"]) == 1000
    assert meta["wordnet_ids"][0] == "n01440764" and meta["preprocess"]["mean"] == [0.5, 0.5, 0.5]
    assert (entry / "model.onnx").stat().st_size > 1_000_000


def test_warm_predict_never_imports_torch_and_matches_torch(warm, int8_tflite, cat_photo):
    cache, first = warm
    fast = cli(["predict", cat_photo, "--weights", int8_tflite, "--json"], cache, guard=True)
    assert fast.returncode == 0, fast.stderr
    *lines, imported = fast.stdout.strip().splitlines()
    assert imported == "[]", f"a warm predict imported {imported[:200]}"
    assert "building" not in fast.stderr
    (record,) = map(json.loads, lines)
    assert record == json.loads(first.stdout)
    assert record["predictions"][0]["index"] in CAT_CLASSES

    slow = cli(["predict", cat_photo, "--weights", int8_tflite, "--json", "--backend", "torch"], cache)
    assert slow.returncode == 0, slow.stderr
    torch_record = json.loads(slow.stdout)
    assert [p["index"] for p in torch_record["predictions"]] == [p["index"] for p in record["predictions"]]
    assert np.allclose([p["probability"] for p in torch_record["predictions"]],
                       [p["probability"] for p in record["predictions"]], atol=1e-5)


def test_damaged_or_half_written_entries_are_rebuilt(warm, int8_tflite, tmp_path):
    cache, _ = warm
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    (entry,) = (copy / "onnx").iterdir()
    key = json.loads((entry / "meta.json").read_text())["key"]
    store = OnnxCache(copy)
    assert store.lookup(key) is not None
    assert key == cache_key(sha256_file(int8_tflite), None, CACHE_OPSET)

    (entry / "meta.json").write_text("{ truncated")  # a crash mid-write: not an entry
    assert store.lookup(key) is None
    shutil.copy(cache / "onnx" / entry.name / "meta.json", entry / "meta.json")
    (entry / "model.onnx").write_bytes(b"\x00" * 64)  # the graph damaged on disk

    messages = []
    runtime = open_runtime(str(int8_tflite), cache=store, notify=messages.append)
    assert any("unusable" in m and "rebuilding" in m for m in messages), messages
    assert runtime.backend.name == "onnxruntime" and store.lookup(key) is not None
    batch = np.zeros((3, 3, 224, 224), np.float32)  # the dynamic batch axis
    assert runtime.backend(batch).shape == (3, 1000)


# --- mnv3 export ---------------------------------------------------------------------------------

def test_export_onnx_verifies_on_a_photo_and_has_a_dynamic_batch(run_cli, int8_tflite, cat_photo, tmp_path):
    out = tmp_path / "small.onnx"
    result = run_cli("export", "--weights", int8_tflite, "-o", out, "--image", cat_photo, "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["ok"] and 0 <= record["max_abs_diff"] <= 1e-4 and record["opset"] == 17
    assert record["model"] == "mobilenetv3_small_100" and record["verified_on"] == str(cat_photo)
    backend = OnnxBackend(out)
    assert backend.input_shape[0] == "batch"
    assert backend(np.zeros((5, 3, 224, 224), np.float32)).shape == (5, 1000)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_export_torchscript_and_resolution(run_cli, int8_tflite, tmp_path):
    out = tmp_path / "small.pt"
    result = run_cli("export", "-f", "torchscript", "--weights", int8_tflite, "-o", out, "-r", "160")
    assert result.returncode == 0, result.stderr
    assert "largest logit difference from PyTorch on generated image" in result.stdout
    import torch

    scripted = torch.jit.load(str(out))
    assert scripted(torch.zeros(2, 3, 160, 160)).shape == (2, 1000)


def test_export_bad_image_is_a_user_error(run_cli, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    result = run_cli("export", "--image", bad, "-o", tmp_path / "x.onnx")
    assert result.returncode == 2 and "bad.jpg" in result.stderr
    assert not (tmp_path / "x.onnx").exists()


def test_verification_catches_a_graph_from_other_weights(tmp_path):
    import torch

    from mnv3cli.factory import create_model
    from mnv3cli.inference.export import export_onnx
    from mnv3cli.inference.verify import TOLERANCE, onnx_difference, sample_batch
    from mnv3cli.registry import Preprocess

    torch.manual_seed(0)
    model = create_model("small", tf_padding=True).eval()
    for layer in (model.pre_logits[0], model.classifier):  # logits of a useful size, not ~1e-9
        torch.nn.init.normal_(layer.weight, 0, 0.2)
    path = export_onnx(model, tmp_path / "m.onnx", input_size=96)
    batch = sample_batch(Preprocess(input_size=96, resize=110))
    assert onnx_difference(model, path, batch) <= TOLERANCE
    with torch.no_grad():
        model.classifier.bias += 1e-3  # the weights moved on after the export
    assert onnx_difference(model, path, batch) > TOLERANCE


# --- several processes on one entry ----------------------------------------------------------------

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


def _racer(root: Path, name: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", RACER, str(root), name], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_cli_env())
    for _ in range(1500):  # up to 30 s for the interpreter to start and reach the export
        if (root / f"started-{name}").exists() or proc.poll() is not None:
            break
        time.sleep(0.02)
    assert (root / f"started-{name}").exists(), proc.communicate()
    return proc


def _entries(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "onnx").iterdir())


@pytest.mark.parametrize("kill", [signal.SIGINT, signal.SIGKILL])
@pytest.mark.parametrize("survivor_first", [True, False])
def test_a_build_killed_midway_never_harms_another_process_building_the_same_entry(
        tmp_path, kill, survivor_first):
    """Two processes build the same entry; one is interrupted (Ctrl-C) or killed mid-export, before
    or after the other publishes. The other returns the complete entry; Ctrl-C leaves nothing behind,
    and what a killed build leaves is removed by a later build once stale, not before."""
    from mnv3cli.inference import onnx_cache

    victim, survivor = _racer(tmp_path, "v"), _racer(tmp_path, "s")
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


def test_a_published_entry_is_used_and_an_unusable_one_replaced(tmp_path):
    cache, card = OnnxCache(tmp_path), ModelCard("m", ["a"], Preprocess())

    def export(content):
        return lambda path: path.write_bytes(content)

    first = cache.store({"k": 1}, export(b"first"), card)
    again = cache.store({"k": 1}, export(b"second"), card)  # as if another process had won the race
    assert again.directory == first.directory and again.model_path.read_bytes() == b"first"
    (first.directory / META_FILE).write_text("{ truncated")  # unusable: replaced by the next build
    assert cache.lookup({"k": 1}) is None
    assert cache.store({"k": 1}, export(b"third"), card).model_path.read_bytes() == b"third"
    cache.remove({"k": 1})
    cache.remove({"k": 1})  # removing what is gone already is fine
    assert _entries(tmp_path) == []
