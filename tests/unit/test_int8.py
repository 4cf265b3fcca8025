"""int8 export: the paired drop and its noise, the class-balanced split, NNCF's graph with layers
kept in float, and a certified export that works as ``--weights``.

Small on purpose (a 64x64 random model, or 16 + 24 real images): the full measurement, half of the
dev images against the other half, is ``benchmarks/int8_budget.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mnv3cli.inference.int8 import PairedDrop, export_int8, split

pytest.importorskip("nncf", reason="the int8 extra is part of the test extra")


def test_paired_drop_noise_and_images_needed():
    fp32 = np.array([1, 1, 1, 1, 0, 0, 0, 0] * 25)  # 200 images, labels all 1
    int8 = fp32.copy()
    int8[:6] = 0  # 6 only fp32 gets right
    int8[4:6] = 1  # ... of which 2 were fp32 mistakes int8 fixes: b = 4, c = 2
    m = PairedDrop.measure(fp32, int8, np.ones(200, dtype=int))
    assert (m.only_fp32, m.only_int8, m.n) == (4, 2, 200)
    assert m.fp32_top1 == 50.0 and m.int8_top1 == 49.0 and m.drop == pytest.approx(1.0)
    assert m.noise == pytest.approx(100 * np.sqrt(6 - 4 / 200) / 200)  # 1.22 points
    assert m.images_needed(1.0) == 300 and m.images_needed(2.0) == 75
    assert not m.certifies(1.0)  # drop 1.0 is within, its noise of 1.22 is not
    assert m.certifies(1.5) and not m.certifies(0.9)
    assert m.images_needed(0) is None


def test_split_is_class_balanced_and_never_measures_a_calibration_image():
    samples = [(f"c{c}/{i}.jpg", c) for c in range(4) for i in range(3)] + [("c4/0.jpg", 4)]
    cal, held = split(samples, 100, None)
    assert not set(cal) & {p for p, _ in held} and len(cal) + len(held) == len(samples)
    assert {p.split("/")[0] for p in cal} == {"c0", "c1", "c2", "c3", "c4"}
    assert sorted(c for _, c in held) == [0, 0, 1, 2, 2, 3]  # classes in turn: both halves see them
    assert split(samples, 3, None)[0] == ["c0/0.jpg", "c2/0.jpg", "c4/0.jpg"]
    other = [("v/0.jpg", 1)]
    cal, held = split(samples, 100, other)
    assert len(cal) == len(samples) and held == other


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    import onnx

    from mnv3cli.factory import create_model
    from mnv3cli.inference.export import export_onnx
    from mnv3cli.inference.quantize import quantize_graph

    torch.manual_seed(0)
    model = create_model("small", tf_padding=True).eval()
    path = export_onnx(model, tmp_path_factory.mktemp("q") / "fp32.onnx", input_size=64)
    images = np.random.default_rng(0).standard_normal((8, 3, 64, 64)).astype(np.float32)
    return path, onnx.load(str(path)), quantize_graph(path, images), images


def _run(model, images):
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": images})[0]


def test_layers_are_named_as_the_model_and_keeping_all_in_float_is_fp32_again(quantized):
    from mnv3cli.factory import create_model
    from mnv3cli.inference.quantize import find_layers, keep_in_float

    path, fp32, qmodel, images = quantized
    layers = find_layers(qmodel)
    modules = dict(create_model("small").named_modules())
    assert len(layers) >= 45 and layers[0].label == "stem.conv"
    assert all(layer.label.split(" ")[0] in modules for layer in layers)
    assert any(layer.label.endswith(".se (Mul)") for layer in layers)
    reference = _run(fp32, images)
    int8_error = np.abs(_run(qmodel, images) - reference).max()
    restored = keep_in_float(qmodel, fp32, {layer.node for layer in layers})
    ops = {node.op_type for node in restored.graph.node}
    assert "QuantizeLinear" not in ops  # every bypassed pair was removed
    assert np.abs(_run(restored, images) - reference).max() < 1e-3 * max(int8_error, 1e-3)
    one = keep_in_float(qmodel, fp32, {layers[0].node})  # only the stem: still int8 elsewhere
    assert (
        sum(n.op_type == "QuantizeLinear" for n in one.graph.node)
        == sum(n.op_type == "QuantizeLinear" for n in qmodel.graph.node) - 1
    )


def test_a_certified_int8_export_runs_as_weights(int8_tflite, imagenet_dev, tmp_path):
    from mnv3cli.data.folders import find_samples
    from mnv3cli.inference.runtime import open_runtime
    from mnv3cli.weights.loader import load_model

    loaded = load_model(str(int8_tflite), progress=False)
    samples = find_samples(imagenet_dev, loaded.card.class_names, loaded.card.wordnet_ids).samples
    cal, held = split(samples[:40], 16, None)
    out = tmp_path / "small-int8.onnx"
    steps = []
    result = export_int8(loaded.model, loaded.card, out, "onnx", cal, held[:20], max_drop=50.0, on_step=steps.append)
    assert result.steps == 1 and result.kept == [] and result.measured.n == 20
    assert result.measured.drop <= 50.0 and result.calibration_images == 16
    assert set(result.latency_ms) == {"fp32", "int8"} and result.latency_ms["int8"][1] > 0
    assert any("quantizing with NNCF on 16 images" in s for s in steps)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".mnv3-")]
    runtime = open_runtime(str(out))
    assert runtime.card.class_names == loaded.card.class_names and runtime.card.preprocess == loaded.card.preprocess
    ops = {node.op_type for node in __import__("onnx").load(str(out)).graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops


@pytest.mark.parametrize(
    "args, message",
    [
        (["--int8", "-f", "torchscript", "--data", "."], "only for --format onnx or openvino"),
        (["--int8"], "needs --data DIR"),
        (["--data", "."], "--data: only used with --int8"),
        (["--val", "."], "--val: only used with --int8"),
    ],
)
def test_int8_options_that_cannot_work_are_user_errors_before_any_work(args, message):
    from click.testing import CliRunner

    from mnv3cli.cli.app import cli

    result = CliRunner().invoke(cli, ["export", "--weights", "no-such.pt", *args])
    assert result.exit_code == 2 and message in result.stderr, result.stderr


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "text"])
def test_export_int8_command_reports_both_top1s_the_layers_and_latency(int8_tflite, imagenet_dev, tmp_path, as_json):
    import json

    from click.testing import CliRunner

    from mnv3cli.cli.app import cli

    data = tmp_path / "data"
    data.mkdir()
    for wnid in sorted(p.name for p in imagenet_dev.iterdir())[:16]:
        (data / wnid).symlink_to(imagenet_dev / wnid)
    out = tmp_path / "s8.onnx"
    args = [
        "-q",
        "export",
        "--int8",
        "--weights",
        str(int8_tflite),
        "--data",
        str(data),
        "--max-drop",
        "60",
        "-o",
        str(out),
    ] + (["--json"] if as_json else [])
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.stderr
    assert out.is_file()
    if as_json:
        record = json.loads(result.stdout)
        assert record["int8"] and record["held_out_images"] == 8 and record["calibration_images"] == 8
        assert record["drop"] == pytest.approx(record["fp32_top1"] - record["int8_top1"])
        assert record["kept_in_float"] == [] and record["steps"] == 1
        assert set(record["latency_ms"]) == {"fp32", "int8"} and record["latency_ms"]["int8"]["1"] > 0
    else:
        wide = [line for line in result.stdout.splitlines() if len(line) > 80 and " " in line.strip()]
        assert not wide, wide  # filled to 80 columns (a single long path may overflow, never split)
        lines = result.stdout.replace("\n  ", " ").splitlines()  # continuation lines rejoined
        assert lines[0].startswith(f"wrote {out} (ONNX, int8, ")
        assert lines[1].startswith("top-1 on 8 held-out images: fp32 ") and "budget 60" in lines[1]
        assert lines[2] == "kept in float: 0 of 61 layers: none"
        assert lines[3].startswith("latency (ONNX Runtime, batch 1): fp32 ")
