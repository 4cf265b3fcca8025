"""``mnv3 profile``: exact parameter and MAC counts, honest latency statistics, exports, the command."""

from __future__ import annotations

import json
import statistics

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from mnv3cli.errors import UserError
from mnv3cli.factory import create_model
from mnv3cli.inference.device import resolve_device
from mnv3cli.inference.export import export_onnx, export_torchscript
from mnv3cli.profiling.counting import count_compute, count_parameters
from mnv3cli.profiling.profile import ModelProfile
from mnv3cli.profiling.timing import measure_latency, summarize
from mnv3cli.registry import MODELS

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def small():
    return create_model("small").eval()


@pytest.mark.parametrize("entry", MODELS, ids=lambda e: e.name)
def test_counts_equal_the_registry_at_224(entry):
    model = create_model(entry.name).eval()
    assert count_parameters(model).total == entry.params
    compute = count_compute(model, 224)
    assert compute.macs == entry.macs and compute.flops == 2 * entry.macs


def test_the_papers_headline_numbers(small):
    compute = count_compute(small, 224)
    assert compute.macs == 56_510_400
    large = count_compute(create_model("large"), 224)
    assert large.macs == 216_589_760
    assert round(large.flops / 1e6, 1) == 433.2 and round(compute.flops / 1e6, 1) == 113.0


@pytest.mark.parametrize(
    "name,width,resolution",
    [
        ("small", 1.0, 96),
        ("small", 0.5, 160),
        ("large", 0.75, 128),
        ("large", 1.25, 97),
        ("mobilenetv3_small_minimal_100", 1.0, 193),
        ("large", 0.35, 64),
    ],
)
def test_macs_agree_with_torch_flop_counter(name, width, resolution):
    model = create_model(name, width=width).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, resolution, resolution))
    compute = count_compute(model, resolution)
    assert compute.flops == counter.get_total_flops() == 2 * compute.macs
    assert compute.macs == sum(layer.macs for layer in compute.layers) == sum(compute.per_stage.values())


def test_per_stage_and_per_layer_tables_add_up(small):
    params = count_parameters(small)
    assert sum(params.per_stage.values()) == params.total == params.trainable
    assert list(params.per_stage)[:3] == ["stem", "stages.0", "stages.1"]
    compute = count_compute(small, 224)
    first, last = compute.layers[0], compute.layers[-1]
    assert (first.name, first.kind, first.output_shape) == ("stem.conv", "conv 3x3/2", [16, 112, 112])
    assert first.macs == 16 * 112 * 112 * 3 * 9 and first.params == 16 * 27
    assert (last.name, last.kind, last.macs) == ("classifier", "linear", 1024 * 1000)
    assert {"dwconv 5x5/2", "dwconv 3x3/2", "conv 1x1"} <= {layer.kind for layer in compute.layers}


def test_trainable_excludes_frozen_parameters():
    model = create_model("small")
    for p in model.stem.parameters():
        p.requires_grad_(False)
    params = count_parameters(model)
    assert params.total - params.trainable == params.per_stage["stem"] == 16 * 27 + 2 * 16


def test_elementwise_work_is_counted_separately(small):
    compute = count_compute(small, 224)
    ew = compute.elementwise
    assert ew["global_pool"] == 576 * 7 * 7  # the pooling before pre_logits reads the 7x7x576 map
    assert ew["se_pool"] == ew["se_scale"] > 0 and ew["residual_add"] > 0
    assert compute.elementwise_total == sum(ew.values()) and compute.macs == 56_510_400
    minimal = count_compute(create_model("mobilenetv3_small_minimal_100"), 224).elementwise
    assert "se_scale" not in minimal and "se_pool" not in minimal


def test_file_sizes_are_the_sizes_on_disk(small, tmp_path):
    from safetensors.torch import save_file

    params = count_parameters(small)
    path = tmp_path / "small.safetensors"
    save_file({k: v.contiguous() for k, v in small.state_dict().items()}, str(path))
    assert params.bytes_fp32 == path.stat().st_size
    assert params.bytes_fp32 > 4 * params.total and 0.49 < params.bytes_fp16 / params.bytes_fp32 < 0.51


def test_summary_statistics():
    stats = summarize([float(v) for v in range(10, 0, -1)], batch_size=4)
    assert (stats["min"], stats["median"], stats["p90"], stats["mean"]) == (1.0, 5.5, 9.0, 5.5)
    assert stats["std"] == pytest.approx(statistics.stdev(range(1, 11)))
    assert stats["images_per_s"] == pytest.approx(4 * 1000 / 5.5)


def test_every_backend_times_every_batch_size_with_the_threads_asked(small):
    before = torch.get_num_threads()
    results = measure_latency(
        small,
        backends=["eager", "channels_last", "torchscript", "onnxruntime"],
        batch_sizes=[1, 3],
        device=CPU,
        resolution=64,
        runs=3,
        warmup=1,
        threads=1,
    )
    assert torch.get_num_threads() == before  # restored
    assert [(s.backend, s.batch_size) for s in results] == [
        (b, n) for b in ("eager", "channels_last", "torchscript", "onnxruntime") for n in (1, 3)
    ]
    for s in results:
        assert s.threads == 1 and s.runs == 3 and s.device == "cpu"
        assert 0 < s.min <= s.median <= s.p90 and s.images_per_s == pytest.approx(s.batch_size * 1000 / s.median)
        assert s.memory_kind == "cpu_rss_growth" and s.peak_memory_bytes is not None
    assert next(small.parameters()).is_contiguous()  # the caller's model was not converted


def test_json_record_has_latency_ms_of_the_first_backend_at_batch_1(small):
    latency = measure_latency(
        small,
        backends=["channels_last", "eager"],
        batch_sizes=[2, 1],
        device=CPU,
        resolution=64,
        runs=2,
        warmup=0,
        threads=1,
    )
    record = ModelProfile(
        "mobilenetv3_small_100", 1.0, 64, count_parameters(small), count_compute(small, 64), latency
    ).to_dict(per_layer=True)
    assert record["latency_ms"]["backend"] == "channels_last" and record["latency_ms"]["batch_size"] == 1
    assert record["latency_ms"]["median"] == pytest.approx(latency[1].median, rel=5e-3)
    assert len(record["latency"]) == 4
    for stats in record["latency"]:  # 3 significant digits: no 16-digit noise in the JSON
        for key in ("min", "median", "p90", "mean", "std", "images_per_s"):
            assert stats[key] == float(f"{stats[key]:.3g}") or stats[key] == round(stats[key]), (key, stats)
    assert "pool" not in record["params_per_stage"] and record["layers"][0]["name"] == "stem.conv"
    json.dumps(record, allow_nan=False)


def test_profile_result_is_one_record_or_a_list_with_compare(small):
    """The --json document is the result's to_dict(): one model's record, a list with --compare."""
    from mnv3cli.profiling import ProfileResult

    one = ModelProfile("mobilenetv3_small_100", 1.0, 64, count_parameters(small), count_compute(small, 64))
    assert ProfileResult([one]).to_dict() == one.to_dict()
    both = ProfileResult([one, one], compared=True, per_layer=True).to_dict()
    assert isinstance(both, list) and len(both) == 2 and "layers" in both[1]


def test_onnx_export_has_a_dynamic_batch_and_matches_torch(small, tmp_path):
    import onnxruntime as ort

    path = export_onnx(small, tmp_path / "small.onnx", input_size=64)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, 64, 64)
    (logits,) = session.run(None, {"input": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(logits, small(x).numpy(), atol=1e-4, rtol=0)
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, nothing left behind


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_export_runs_any_batch_and_size(small, tmp_path):
    loaded = torch.jit.load(str(export_torchscript(small, tmp_path / "small.pt")))
    x = torch.randn(2, 3, 80, 72)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), small(x), atol=1e-4, rtol=0)


def test_resolve_device():
    assert resolve_device("cpu") == CPU
    assert resolve_device("auto").type in ("cuda", "mps", "cpu")
    with pytest.raises(UserError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="--device cuda: CUDA is not available"):
            resolve_device("cuda")
        assert resolve_device("auto").type != "cuda"
