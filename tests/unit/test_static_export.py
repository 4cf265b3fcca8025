"""Static export: paddings computed once for the export resolution, the batch axis left dynamic.

TF "same" padding (Google's TFLite weights, timm's ``tf_`` ports) depends on the input size; the
exported graph must hold it as constants (no Shape/Gather arithmetic), compute the same logits as
PyTorch, and the ONNX cache must keep one entry per resolution.
"""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch

from mnv3cli.factory import create_model
from mnv3cli.inference.export import export_onnx
from mnv3cli.inference.onnx_cache import OnnxCache, cache_key
from mnv3cli.inference.verify import TOLERANCE, onnx_difference, sample_batch
from mnv3cli.model import static_padding
from mnv3cli.model.layers import SamePad2d
from mnv3cli.registry import Preprocess

SHAPE_OPS = {"Shape", "Size"}  # every run-time size computation starts by reading a tensor's shape


def _model(tf_padding: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("small", tf_padding=tf_padding).eval()
    for layer in (model.pre_logits[0], model.classifier):  # logits of a useful size, not ~1e-9
        torch.nn.init.normal_(layer.weight, 0, 0.2)
    return model


@pytest.mark.parametrize("size", [(96, 96), (97, 75)])
def test_static_padding_is_the_same_function_at_its_size_for_any_batch(size):
    model = _model(tf_padding=True)
    fixed = static_padding(model, torch.zeros(1, 3, *size))
    assert not any(isinstance(m, SamePad2d) for m in fixed.modules())
    pads = [m.padding for m in fixed.modules() if isinstance(m, torch.nn.ZeroPad2d)]
    assert len(pads) == sum(isinstance(m, SamePad2d) for m in model.modules()) == 5
    if size == (97, 75):  # odd sizes: (97 -> 49) pads 1 top 1 bottom, (75 -> 38) 1 left 1 right
        assert pads[0] == (1, 1, 1, 1)
    else:  # even: the odd pixel of TF "same" goes bottom/right only
        assert pads[0] == (0, 1, 0, 1)
    assert any(isinstance(m, SamePad2d) for m in model.modules())  # the original is untouched
    x = torch.randn(3, 3, *size)
    with torch.no_grad():
        assert torch.equal(fixed(x), model(x))


def test_static_padding_does_not_move_batchnorm_statistics_of_a_training_model():
    model = _model(tf_padding=True).train()
    before = model.stem.bn.running_mean.clone()
    fixed = static_padding(model, torch.randn(1, 3, 64, 64))
    assert fixed.training and model.training
    assert torch.equal(fixed.stem.bn.running_mean, before)


def _ops(path) -> collections.Counter:
    import onnx

    return collections.Counter(node.op_type for node in onnx.load(str(path)).graph.node)


@pytest.mark.parametrize("tf_padding", [True, False], ids=["tf-same", "symmetric"])
def test_exported_graph_has_no_shape_arithmetic_and_matches_pytorch(tmp_path, tf_padding):
    model = _model(tf_padding)
    path = export_onnx(model, tmp_path / "m.onnx", input_size=112)
    ops = _ops(path)
    assert not SHAPE_OPS & set(ops), ops
    real = sum(ops.values()) - ops["Identity"]  # random weights share initializers (Identity nodes)
    assert ops["Conv"] == 52 and real <= 210, ops
    assert ops["Pad"] == (5 if tf_padding else 0)
    batch = sample_batch(Preprocess(input_size=112, resize=128))
    assert onnx_difference(model, path, batch) <= TOLERANCE  # a batch of 2: the batch axis is dynamic


def test_the_dynamic_graph_is_still_available_for_comparison(tmp_path):
    model = _model(tf_padding=True)
    ops = _ops(export_onnx(model, tmp_path / "old.onnx", input_size=96, static=False))
    assert ops["Shape"] >= 5 and sum(ops.values()) - ops["Identity"] > 400, ops


def test_resolution_is_part_of_the_cache_key(tmp_path):
    cache = OnnxCache(tmp_path)
    own, at_160 = cache_key("abc", None, 17), cache_key("abc", None, 17, resolution=160)
    assert own["resolution"] is None and at_160["resolution"] == 160
    assert (
        cache.directory(own) != cache.directory(at_160) != cache.directory(cache_key("abc", None, 17, resolution=192))
    )


def test_open_runtime_at_another_resolution_caches_its_own_static_graph(bundled_weights, tmp_path):
    from mnv3cli.inference.runtime import open_runtime

    cache = OnnxCache(tmp_path)
    runtime = open_runtime(str(bundled_weights), backend="onnxruntime", cache=cache, resolution=160)
    assert runtime.card.preprocess.input_size == 160 and runtime.card.preprocess.resize == 183
    assert list(runtime.backend.input_shape[1:]) == [3, 160, 160]
    (entry,) = (tmp_path / "onnx").iterdir()
    assert not SHAPE_OPS & set(_ops(entry / "model.onnx"))
    logits = runtime.backend(np.zeros((2, 3, 160, 160), np.float32))
    assert logits.shape == (2, 1000)
    again = open_runtime(str(bundled_weights), backend="onnxruntime", cache=cache, resolution=160)
    assert again.backend.path == runtime.backend.path  # a hit: the same entry
    assert len(list((tmp_path / "onnx").iterdir())) == 1
