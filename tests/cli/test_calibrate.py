"""Temperature scaling through the command line: at the end of ``mnv3 train`` (ants vs bees) and
with ``mnv3 calibrate`` (Google's int8 model on the ImageNet sample), then applied by evaluate,
predict and export on both backends, top-1 unchanged.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import assert_one_user_error, invoke


@pytest.mark.slow
def test_train_fits_a_temperature_that_lowers_ece_on_validation(run_cli, int8_tflite, hymenoptera, tmp_path):
    """The issue's bar: ECE of the ants/bees fine-tune after temperature scaling below ECE before it,
    on the validation images, same top-1. A linear probe of one epoch keeps the test short."""
    proc = run_cli(
        "train", hymenoptera, "-w", int8_tflite, "--epochs", "1", "--freeze", "0", "-o", "run", "--json", timeout=900
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    fit = summary["calibration"]
    print(
        f"\nants/bees: T {fit['temperature']:.3f}, ECE {fit['ece_before']:.2f} % -> {fit['ece_after']:.2f} %, "
        f"NLL {fit['nll_before']:.4f} -> {fit['nll_after']:.4f}, top-1 {fit['top1']:.2f} %"
    )
    assert fit["ece_after"] < fit["ece_before"] and fit["nll_after"] < fit["nll_before"]
    assert fit["images"] == 153 and fit["top1"] == pytest.approx(summary["best_top1"], abs=1e-3)
    assert f"temperature {fit['temperature']:g} fitted on 153 validation images, stored in best.pt:" in proc.stderr
    ev = run_cli("-q", "evaluate", hymenoptera / "val", "-w", tmp_path / "run" / "best.pt", "--json")
    assert ev.returncode == 0, ev.stderr
    result = json.loads(ev.stdout)
    assert result["top1"] == pytest.approx(summary["best_top1"], abs=1e-6)  # top-1 never changes
    assert result["calibration"]["temperature"] == pytest.approx(fit["temperature"], abs=1e-6)
    assert result["calibration"]["ece"] == pytest.approx(fit["ece_after"], abs=0.05)


@pytest.fixture(scope="module")
def calibrated(int8_tflite, imagenet_dev, tmp_path_factory):
    out = tmp_path_factory.mktemp("calibrate") / "cal.safetensors"
    proc = invoke("calibrate", imagenet_dev, "-w", int8_tflite, "-o", out, "--limit", "100", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), out


def test_calibrate_writes_a_checkpoint_with_the_fitted_temperature(calibrated):
    fit, path = calibrated
    assert fit["images"] == 100 and 0.3 < fit["temperature"] < 1  # this int8 model is underconfident here
    assert fit["ece_after"] < fit["ece_before"] and fit["nll_after"] < fit["nll_before"]
    assert path.is_file() and fit["output"] == str(path)


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_evaluate_and_predict_apply_it_on_every_backend(calibrated, int8_tflite, imagenet_dev, backend):
    fit, path = calibrated
    args = ["-q", "evaluate", imagenet_dev, "--limit", "100", "--json", "--backend", backend]
    raw = json.loads(invoke(*args, "-w", int8_tflite).stdout)
    cal = json.loads(invoke(*args, "-w", path).stdout)
    assert cal["top1"] == raw["top1"] and cal["top5"] == raw["top5"]
    assert cal["calibration"]["temperature"] == pytest.approx(fit["temperature"], abs=1e-6)
    assert cal["calibration"]["ece"] == pytest.approx(fit["ece_after"], abs=0.05)
    assert cal["calibration"]["nll"] == pytest.approx(fit["nll_after"], abs=1e-3)
    image = next((imagenet_dev / "n01440764").iterdir())
    one = [
        json.loads(invoke("-q", "predict", image, "-w", w, "--json", "--backend", backend).stdout)["predictions"]
        for w in (int8_tflite, path)
    ]
    assert [p["index"] for p in one[0]] == [p["index"] for p in one[1]]
    assert one[1][0]["probability"] > one[0][0]["probability"]  # T < 1 sharpens


def test_export_puts_the_temperature_in_the_graph(calibrated, int8_tflite, tmp_path):
    import onnxruntime as ort

    fit, path = calibrated
    for weights, name in ((int8_tflite, "raw.onnx"), (path, "cal.onnx")):
        proc = invoke("export", "-w", weights, "-o", tmp_path / name, "--json")
        assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["temperature"] == pytest.approx(fit["temperature"], abs=1e-6)
    x = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    raw, cal = (ort.InferenceSession(str(tmp_path / n)).run(None, {"input": x})[0] for n in ("raw.onnx", "cal.onnx"))
    np.testing.assert_allclose(cal, raw / fit["temperature"], rtol=1e-4, atol=1e-4)


def test_calibrate_refuses_an_unknown_output_format_before_any_work(run_cli, tmp_path):
    (tmp_path / "data").mkdir()
    proc = run_cli("calibrate", tmp_path / "data", "-o", "out.onnx")
    assert_one_user_error(proc, "out.onnx", ".pt, .pth, .safetensors")
