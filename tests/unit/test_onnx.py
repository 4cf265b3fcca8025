"""Fast inference: the ONNX cache (keys, locations, damaged entries), the backend choice, the
torch-free warm ``mnv3 predict``, and ``mnv3 export`` with its verification.

The int8 TFLite model is exported into one module-scoped cache by a real first CLI run; the other
tests reuse that entry, so the export cost is paid once here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mnv3cli.errors import UserError
from mnv3cli.inference import onnx_backend
from mnv3cli.inference.backend_registry import choose_backend, get_backend
from mnv3cli.inference.onnx_backend import OnnxBackend
from mnv3cli.inference.onnx_cache import (
    META_FILE,
    OnnxCache,
    cache_key,
    cache_root,
    weights_file,
)
from mnv3cli.registry import ModelCard, Preprocess
from mnv3cli.weights.download import cache_dir, sha256_file


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


def test_tags_resolve_to_the_file_the_loader_fetches_without_torch(monkeypatch, tmp_path, bundled_weights):
    """A published TFLite file placed in the hub cache: our path and the loader's are the same."""
    from mnv3cli.registry import get_entry, get_weight_source
    from mnv3cli.weights.download import fetch

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    tag = "tflite:v3-small_224_1.0_uint8"
    assert weights_file(tag, "small") is None  # not downloaded yet: a miss, nothing fetched
    source = get_weight_source(get_entry("small"), tag)
    target = tmp_path / "hub" / "checkpoints" / "v3-small_224_1.0_uint8.tflite"
    target.parent.mkdir(parents=True)
    target.symlink_to(bundled_weights)  # any file: an archive member is not hash-checked
    assert weights_file(tag, "small") == target == fetch(source, progress=False)[0]
    assert weights_file("no-such-tag", "small") is None


def test_key_follows_content_not_name(bundled_weights, tmp_path):
    renamed = tmp_path / "renamed.tflite"
    shutil.copy(bundled_weights, renamed)
    assert sha256_file(weights_file(str(renamed))) == sha256_file(bundled_weights)
    with open(renamed, "r+b") as fh:  # one changed byte is other weights
        fh.seek(1000)
        byte = fh.read(1)
        fh.seek(1000)
        fh.write(bytes([byte[0] ^ 1]))
    assert sha256_file(renamed) != sha256_file(bundled_weights)
    keys = [
        cache_key("abc", None, 17),
        cache_key("abd", None, 17),
        cache_key("abc", "small", 17),
        cache_key("abc", None, 18),
        cache_key("abc", None, 17, {"width": 0.75}),
    ]
    assert len({OnnxCache(tmp_path).directory(k) for k in keys}) == len(keys)
    assert OnnxCache(tmp_path).directory(cache_key("abc", None, 17)) == OnnxCache(tmp_path).directory(keys[0])


def test_auto_picks_onnxruntime_on_cpu_and_torch_where_ort_cannot_run():
    assert get_backend("onnxruntime").unavailable() is None
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


def _entries(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "onnx").iterdir())


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


def test_open_runtime_keys_the_cache_by_content_through_renames_and_overwrites(tmp_path):
    """The key is the file's content: a renamed copy hits the entry, an overwritten file (same
    name, other weights) builds a new one and answers with the new weights."""
    import numpy as np
    import torch

    from mnv3cli.inference.runtime import open_runtime
    from mnv3cli.model import MobileNetV3
    from mnv3cli.weights.checkpoint import save_checkpoint

    def write(path, seed):
        torch.manual_seed(seed)
        model = MobileNetV3("small", width=0.35, classes=3).eval()
        save_checkpoint(
            path,
            model,
            model_name="custom",
            arch=model.config,
            class_names=["a", "b", "c"],
            preprocess=Preprocess(input_size=32, resize=36),
        )

    cache, batch = OnnxCache(tmp_path / "cache"), np.random.default_rng(0).random((2, 3, 32, 32), np.float32)

    def run(path):
        messages = []
        runtime = open_runtime(str(path), cache=cache, notify=messages.append)
        assert runtime.backend.name == "onnxruntime"
        return runtime.backend(batch), any("building" in m for m in messages)

    first = tmp_path / "a.pt"
    write(first, 0)
    logits, built = run(first)
    assert built and len(_entries(cache.root)) == 1
    renamed = tmp_path / "renamed.pt"
    first.rename(renamed)
    again, built = run(renamed)
    assert not built and np.array_equal(again, logits) and len(_entries(cache.root)) == 1
    write(renamed, 1)  # same name, other weights
    other, built = run(renamed)
    assert built and len(_entries(cache.root)) == 2 and not np.allclose(other, logits, rtol=0.01, atol=0)
