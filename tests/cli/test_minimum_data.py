"""Statistics on almost no data are refused or not stored (issue 24 items 10 and 11): a temperature
needs MIN_CALIBRATION_IMAGES images, an int8 budget of B points needs 100/B held-out images, and a
training batch needs two images (BatchNorm)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import assert_one_user_error, make_shapes
from mnv3cli.evaluation.calibration import MIN_CALIBRATION_IMAGES
from mnv3cli.inference.int8 import PairedDrop


def test_calibrate_on_fewer_images_than_the_minimum_is_refused(run_cli, imagenet_dev, int8_tflite, tmp_path):
    """1 image stored temperature 0.05 (the clamp) and exited 0."""
    proc = run_cli("calibrate", imagenet_dev, "-w", int8_tflite, "--limit", "1", "-o", "cal.pt")
    assert_one_user_error(proc, "1 image(s) to calibrate", f"needs at least {MIN_CALIBRATION_IMAGES}")
    assert not (tmp_path / "cal.pt").exists()


def test_training_with_two_validation_images_stores_no_temperature(run_cli, tmp_path):
    """2 validation images stored temperature 20 in best.pt; now best.pt keeps 1, calibration null."""
    from mnv3cli.weights.checkpoint import read_checkpoint

    data = make_shapes(tmp_path / "data", per_class=(4, 1))
    (next((data / "val").iterdir()) / "000.png").unlink()  # 2 validation images in all
    proc = run_cli(
        "train", data, "-m", "mobilenetv3_small_075", "--resolution", "32", "-e", "1", "-b", "4", "-j", "0",
        "-o", "run", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["calibration"] is None
    assert "temperature" not in proc.stderr
    assert read_checkpoint(tmp_path / "run" / "best.pt").get("temperature", 1.0) == 1.0  # absent: 1


def test_train_with_batches_of_one_is_a_clear_user_error(run_cli, tmp_path):
    """It ended in "internal error: ValueError: Expected more than 1 value per channel"."""
    data = make_shapes(tmp_path / "data", per_class=(2, 1))
    proc = run_cli("train", data, "-b", "1", "-e", "1", "--resolution", "32", "-o", "run")
    assert_one_user_error(proc, "--batch-size: must be at least 2", "BatchNorm")


def test_a_drop_measured_on_one_image_certifies_nothing():
    """One held-out image, no disagreement: drop 0.00 ± 0.00 "certified" a 1-point budget."""
    one = PairedDrop.measure(np.array([3]), np.array([3]), np.array([3]))
    assert (one.drop, one.noise) == (0.0, 0.0) and not one.certifies(1.0)
    assert PairedDrop.min_images(1.0) == 100 and PairedDrop.min_images(0.5) == 200
    many = PairedDrop.measure(np.zeros(100, int), np.zeros(100, int), np.zeros(100, int))
    assert many.certifies(1.0) and not many.certifies(0.0)


def test_int8_export_refuses_to_certify_on_too_few_held_out_images(run_cli, imagenet_dev, tmp_path):
    """2 images: 1 calibrated on, 1 held out, "certified" (0.00 ± 0.00). Refused before NNCF runs."""
    pytest.importorskip("nncf", reason="the int8 extra is part of the test extra")
    data = tmp_path / "data"
    for wnid in sorted(p.name for p in imagenet_dev.iterdir())[:2]:
        (data / wnid).mkdir(parents=True)
        first = sorted((imagenet_dev / wnid).iterdir())[0]
        (data / wnid / first.name).symlink_to(first)
    proc = run_cli("export", "--int8", "--data", data, "-o", "s8.onnx")
    assert_one_user_error(proc, f"--data {data}: 1 held-out image(s) cannot certify --max-drop 1", "at least 100")
    assert not (tmp_path / "s8.onnx").exists()
