"""Exported files as weights: ``.onnx`` and OpenVINO ``.xml`` carry their card and run as they are;
``--backend openvino`` runs the cached graph in f32 unless another precision is asked for.

A small random model at 96x96 keeps each export under a second; the real int8 weights are used
once, through the ONNX cache, for the OpenVINO backend.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mnv3cli.errors import UserError
from mnv3cli.factory import create_model
from mnv3cli.inference.export import export_onnx, export_verified
from mnv3cli.inference.onnx_cache import OnnxCache
from mnv3cli.inference.runtime import open_runtime
from mnv3cli.inference.verify import TOLERANCE, sample_batch
from mnv3cli.registry import ModelCard, Preprocess

pytest.importorskip("openvino", reason="the openvino extra is part of the test extra")

PRE = Preprocess(input_size=96, resize=110, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
CARD = ModelCard(
    "mobilenetv3_small_100", [f"thing {i}" for i in range(1000)], Preprocess(), source="weights.pth", sha256="ab" * 32
)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    model = create_model("small", tf_padding=True).eval()
    for layer in (model.pre_logits[0], model.classifier):  # logits of a useful size, not ~1e-9
        torch.nn.init.normal_(layer.weight, 0, 0.2)
    return model


@pytest.fixture(scope="module")
def files(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("exported")
    diffs = {
        fmt: export_verified(model, folder / f"small{suffix}", PRE, fmt, card=CARD)
        for fmt, suffix in (("onnx", ".onnx"), ("openvino", ".xml"))
    }
    return folder, diffs


def _torch(model, batch):
    with torch.no_grad():
        return model(torch.from_numpy(batch)).numpy()


@pytest.mark.parametrize(
    "name, backend", [("small.onnx", "onnxruntime"), ("small.xml", "openvino"), ("small.onnx", "openvino")]
)
def test_an_exported_file_runs_as_weights_with_the_card_inside_it(files, model, name, backend):
    folder, diffs = files
    assert max(diffs.values()) <= TOLERANCE
    runtime = open_runtime(str(folder / name), backend="auto" if name.endswith(".xml") else backend)
    assert runtime.backend.name == backend
    assert runtime.card.class_names == CARD.class_names and runtime.card.preprocess == PRE
    assert runtime.card.source == "weights.pth" and runtime.card.model_name == "mobilenetv3_small_100"
    batch = sample_batch(PRE)
    assert np.abs(runtime.backend(batch) - _torch(model, batch)).max() <= TOLERANCE


def test_the_ir_is_written_whole_beside_its_weights(files):
    folder, _ = files
    assert (folder / "small.bin").stat().st_size > 5_000_000
    assert not [p for p in folder.iterdir() if p.name.startswith(".mnv3-ir-")]


def test_a_graph_without_a_card_is_refused_not_guessed(model, tmp_path):
    bare = export_onnx(model, tmp_path / "bare.onnx", input_size=96)
    with pytest.raises(UserError, match="bare.onnx: carries no mnv3 model card"):
        open_runtime(str(bare))


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("small.onnx", {"backend": "torch"}, "not --backend torch"),
        ("small.xml", {"backend": "onnxruntime"}, "ONNX Runtime cannot read OpenVINO IR"),
        ("small.onnx", {"model_name": "large"}, "holds mobilenetv3_small_100"),
        ("small.onnx", {"resolution": 224}, "fixed to 96x96"),
        ("small.onnx", {"precision": "bf16"}, "only the openvino backend"),
        ("missing.onnx", {}, "no such file"),
    ],
)
def test_what_an_exported_file_cannot_do_is_a_user_error(files, name, options, message):
    folder, _ = files
    with pytest.raises(UserError, match=message):
        open_runtime(str(folder / name), **options)


def test_openvino_backend_runs_the_cached_graph_in_f32_unless_asked(bundled_weights, tmp_path):
    cache = OnnxCache(tmp_path)
    f32 = open_runtime(str(bundled_weights), backend="openvino", cache=cache)
    ort = open_runtime(str(bundled_weights), backend="onnxruntime", cache=cache)
    assert len(list((tmp_path / "onnx").iterdir())) == 1  # one graph serves both engines
    assert f32.backend.name == "openvino" and (tmp_path / "openvino").is_dir()
    batch = sample_batch(f32.card.preprocess)
    assert np.abs(f32.backend(batch) - ort.backend(batch)).max() < 1e-3
    bf16 = open_runtime(str(bundled_weights), backend="openvino", cache=cache, precision="bf16")
    assert bf16.backend.name == "openvino-bf16"  # stated wherever the backend is named
    assert np.abs(bf16.backend(batch) - ort.backend(batch)).max() > 1e-3  # really another precision


def test_profile_times_an_exported_file_as_it_is_with_top1_per_row(files, model):
    from mnv3cli.profiling import profile_model

    folder, _ = files
    batch = sample_batch(PRE)
    expected = _torch(model, batch).argmax(1).tolist()
    seen = []

    def top1_on(runner, card):  # the runner is the very file: same argmax as the model
        seen.append(card.preprocess)
        return 100.0 * (runner(batch).argmax(1).tolist() == expected)

    profile = profile_model(None, weights=str(folder / "small.onnx"), runs=2, warmup=0, top1_on=top1_on)
    assert profile.model == "mobilenetv3_small_100" and profile.resolution == 96
    assert profile.params.total == 2542856  # counted from the card's architecture
    assert [(s.backend, s.top1) for s in profile.latency] == [("onnxruntime", 100.0), ("openvino", 100.0)]
    assert seen == [PRE, PRE] and "eager" in profile.skipped_backends
    with pytest.raises(UserError, match="fixed to 96x96"):
        profile_model(None, weights=str(folder / "small.onnx"), resolution=224, runs=0)
    with pytest.raises(UserError, match="fixed width"):
        profile_model(None, weights=str(folder / "small.onnx"), width=0.5, runs=0)
