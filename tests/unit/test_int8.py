"""int8 export: the paired drop and its noise, the class-balanced split, NNCF's graph with layers
kept in float, and a certified export that works as ``--weights``.

Small on purpose (a 64x64 random model, or 16 + 24 real images): the full measurement, half of the
dev images against the other half, is ``benchmarks/int8_budget.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mnv3cli.inference.int8 import export_int8, split

pytest.importorskip("nncf", reason="the int8 extra is part of the test extra")


def test_drop_upper_bound_known_values():
    from statistics import NormalDist

    from mnv3cli.inference.certificate import drop_upper_bound

    z = NormalDist().inv_cdf(0.95)
    for n in (20, 300, 1000):  # no disagreement: n d / (1 - d) = z^2
        assert drop_upper_bound(0, 0, n) == pytest.approx(100 * z * z / (n + z * z), rel=1e-6)
    for b, n in ((5, 100), (10, 1000), (1, 30)):  # only losses: (n d - b)^2 = z^2 n d (1 - d)
        qa, qb, qc = n * n + z * z * n, -(2 * b * n + z * z * n), b * b
        assert drop_upper_bound(b, 0, n) == pytest.approx(
            100 * (-qb + np.sqrt(qb * qb - 4 * qa * qc)) / (2 * qa), rel=1e-6
        )
    assert drop_upper_bound(10, 6, 500) == pytest.approx(2.262, abs=1e-3)  # measured 0.8
    assert drop_upper_bound(0, 0, 0) == 100.0


def test_drop_upper_bound_is_never_below_the_drop_and_moves_the_right_way():
    from mnv3cli.inference.certificate import drop_upper_bound

    for n in (20, 100, 500):
        for b in range(0, 12):
            for c in range(0, 12):
                bound = drop_upper_bound(b, c, n)
                assert bound >= 100 * (b - c) / n
                assert drop_upper_bound(b + 1, c, n) > bound  # one more image lost: higher
                assert drop_upper_bound(b, c + 1, n) < bound  # one more gained: lower
                assert drop_upper_bound(b, c, n, 0.99) > bound  # more confidence: higher
                if b >= c:
                    assert drop_upper_bound(b, c, 2 * n) < bound  # the same counts on more images


@pytest.mark.parametrize("n, p_fp32_only, p_int8_only", [(300, 0.02, 0.01), (100, 0.05, 0.0), (500, 0.012, 0.002)])
def test_drop_upper_bound_misses_the_true_drop_at_most_5_percent_of_the_time(n, p_fp32_only, p_int8_only):
    from mnv3cli.inference.certificate import drop_upper_bound

    rng = np.random.default_rng(0)
    draws = rng.multinomial(n, [p_fp32_only, p_int8_only, 1 - p_fp32_only - p_int8_only], size=2000)
    bounds = {}
    for b, c, _ in draws:
        bounds.setdefault((b, c), drop_upper_bound(b, c, n))
    misses = np.mean([bounds[(b, c)] < 100 * (p_fp32_only - p_int8_only) for b, c, _ in draws])
    assert 0.02 < misses <= 0.05  # not wildly conservative either


def test_too_few_images_never_certify_and_images_needed_would():
    from mnv3cli.inference.certificate import PairedDrop, drop_upper_bound, minimum_images

    assert minimum_images(1.0) == 268 and minimum_images(2.0) == 133  # about 270 / budget
    assert minimum_images(0.0) is None and minimum_images(100.0) == 1
    for budget in (0.5, 1.0, 5.0):
        least = minimum_images(budget)
        assert drop_upper_bound(0, 0, least) <= budget < drop_upper_bound(0, 0, least - 1)
    assert not PairedDrop(267, 200, 200, 0, 0).certifies(1.0)  # no disagreement at all, too few images
    assert PairedDrop(268, 200, 200, 0, 0).certifies(1.0)
    assert not PairedDrop(1, 1, 1, 0, 0).certifies(1.0)  # the "1 held-out image" certificate of old
    m = PairedDrop(500, 400, 396, 10, 6)  # drop 0.8, within 1.0, but its bound is 2.26
    assert m.drop == pytest.approx(0.8) and m.discordant == 16
    assert not m.certifies(1.0) and m.certifies(2.3) and not m.certifies(2.2)
    needed = m.images_needed(1.0)
    assert needed is not None and needed > 10_000  # 0.8 measured against 1.0: many images
    assert PairedDrop(needed, 0, 0, round(0.02 * needed), round(0.012 * needed)).certifies(1.0)
    half = needed // 2
    assert not PairedDrop(half, 0, 0, round(0.02 * half), round(0.012 * half)).certifies(1.0)
    assert m.images_needed(0.8) is None and m.images_needed(0.5) is None  # measured drop not below the budget
    assert PairedDrop(20, 10, 10, 0, 0).images_needed(1.0) == 268  # no disagreement: the minimum


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
        (["--int8"], "needs --data DATA"),
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
        "90",
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
        assert record["drop"] <= record["upper_bound"] <= 90 and record["confidence"] == 0.95
        assert record["kept_in_float"] == [] and record["steps"] == 1
        assert set(record["latency_ms"]) == {"fp32", "int8"} and record["latency_ms"]["int8"]["1"] > 0
    else:
        wide = [line for line in result.stdout.splitlines() if len(line) > 80 and " " in line.strip()]
        assert not wide, wide  # filled to 80 columns (a single long path may overflow, never split)
        lines = result.stdout.replace("\n  ", " ").splitlines()  # continuation lines rejoined
        assert lines[0].startswith(f"wrote {out} (ONNX, int8, ")
        assert lines[1].startswith("top-1 on 8 held-out images: fp32 ") and "95 % upper confidence bound" in lines[1]
        assert lines[1].endswith("within --max-drop 90")
        assert lines[2] == "kept in float: 0 of 61 layers: none"
        assert lines[3].startswith("latency (ONNX Runtime, batch 1): fp32 ")


def _folders(imagenet_dev, root, first: int, count: int):
    """A labelled folder of ``count`` dev classes (one image each) from the ``first``-th on."""
    root.mkdir()
    for wnid in sorted(p.name for p in imagenet_dev.iterdir())[first : first + count]:
        (root / wnid).symlink_to(imagenet_dev / wnid)
    return root


def test_export_int8_refuses_too_few_held_out_images_before_any_work(bundled_weights, imagenet_examples, tmp_path):
    from click.testing import CliRunner

    from mnv3cli.cli.app import cli

    data = _folders(imagenet_examples, tmp_path / "data", 0, 2)  # the 1 held-out image that once "certified"
    out = tmp_path / "s8.onnx"
    args = ["export", "--int8", "-w", str(bundled_weights), "--data", str(data), "-o", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.stderr
    assert "--max-drop 1: 1 held-out images cannot certify it (at least 595 are needed" in result.stderr
    assert "--val DIR" in result.stderr and not out.exists() and "quantizing" not in result.stderr
    result = CliRunner().invoke(cli, args + ["--val", str(data), "--max-drop", "50"])  # 2 images: 7 needed
    assert result.exit_code == 2 and "2 held-out images cannot certify it (at least 7" in result.stderr


def test_export_int8_certifies_on_a_val_folder_with_enough_images(int8_tflite, imagenet_dev, tmp_path):
    import json

    from click.testing import CliRunner

    from mnv3cli.cli.app import cli

    data = _folders(imagenet_dev, tmp_path / "data", 0, 8)
    val = _folders(imagenet_dev, tmp_path / "val", 100, 48)
    out = tmp_path / "s8.onnx"
    args = ["-q", "export", "--int8", "-w", str(int8_tflite), "--data", str(data), "--val", str(val)]
    result = CliRunner().invoke(cli, args + ["--max-drop", "35", "-o", str(out), "--json"])
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["held_out_images"] == 48 and record["calibration_images"] == 8 and out.is_file()
    assert record["drop"] <= record["upper_bound"] <= 35
    assert record["upper_bound"] > record["drop"] + 10  # 48 images: a wide bound, whatever the drop


def test_the_help_states_the_minimum_the_certificate_applies():
    from click.testing import CliRunner

    from mnv3cli.cli.app import cli
    from mnv3cli.inference.certificate import minimum_images
    from mnv3cli.inference.int8 import step_confidence

    help_text = " ".join(CliRunner().invoke(cli, ["export", "--help"]).stdout.split())
    assert f"a 1-point certificate needs at least {minimum_images(1.0, step_confidence())} images" in help_text
    assert "95 % upper confidence bound of its top-1 drop" in help_text
