"""Statistics on almost no data are refused or not stored (issue 24 items 10 and 11): a temperature
needs MIN_CALIBRATION_IMAGES images and a training batch two images (BatchNorm). The int8
certificate's minimum of held-out images is tested with the certificate (tests/unit/test_int8.py)."""

from __future__ import annotations

import json

from helpers import assert_one_user_error, make_shapes
from mnv3cli.evaluation.calibration import MIN_CALIBRATION_IMAGES


def test_calibrate_on_fewer_images_than_the_minimum_is_refused(mnv3, imagenet_examples, bundled_weights, tmp_path):
    """1 image stored temperature 0.05 (the clamp) and exited 0. (In-process: about the refusal.)"""
    proc = mnv3("calibrate", imagenet_examples, "-w", bundled_weights, "--limit", "1", "-o", "cal.pt")
    assert_one_user_error(proc, "1 image(s) to calibrate", f"needs at least {MIN_CALIBRATION_IMAGES}")
    assert not (tmp_path / "cal.pt").exists()


def test_training_with_two_validation_images_stores_no_temperature(run_cli, tmp_path):
    """2 validation images stored temperature 20 in best.pt; now best.pt keeps 1, calibration null."""
    from mnv3cli.weights.checkpoint import read_checkpoint

    data = make_shapes(tmp_path / "data", per_class=(4, 1))
    (next((data / "val").iterdir()) / "000.png").unlink()  # 2 validation images in all
    proc = run_cli(
        "train", data, "-m", "mobilenetv3_small_075", "--resolution", "32", "-e", "1", "-b", "4", "-j", "1",
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
