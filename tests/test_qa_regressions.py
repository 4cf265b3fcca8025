"""Regressions found by using every command the way people and scripts do (QA pass).

Each test is one bug that was seen: the command broke a convention (a user error reported as an
"internal error", exit 1 instead of 2, output a script cannot use) on an input a real user gives.
"""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest
from helpers import cli_env as _cli_env


@pytest.fixture
def blocked_dir(tmp_path):
    """A path whose parent is a regular file: no directory can be made there, even by root."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    return blocker / "sub"


def _one_user_error(result, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("mnv3: ")]
    assert len(errors) == 1 and errors[0].startswith("mnv3: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


def test_predict_output_in_unwritable_place_is_a_user_error(run_cli, int8_tflite, cat_photo,
                                                            blocked_dir):
    result = run_cli("predict", cat_photo, "-w", int8_tflite, "-o", blocked_dir / "labels.csv")
    _one_user_error(result, "--output", "labels.csv", "cannot write")


def test_convert_to_unwritable_place_is_a_user_error(run_cli, int8_tflite, blocked_dir):
    result = run_cli("convert", int8_tflite, blocked_dir / "small.pt")
    _one_user_error(result, "small.pt", "cannot write")


def test_profile_plot_in_unwritable_place_is_a_user_error(run_cli, blocked_dir):
    result = run_cli("profile", "--size", "small", "--backend", "eager", "--runs", "1", "--warmup",
                     "0", "-r", "32", "--plot", blocked_dir / "latency.png")
    _one_user_error(result, "--plot", "latency.png", "cannot write")


def test_train_output_in_unwritable_place_is_a_user_error(run_cli, tmp_path, blocked_dir):
    from PIL import Image

    for split in ("train", "val"):
        for i, name in enumerate(("red", "green")):
            (tmp_path / "data" / split / name).mkdir(parents=True)
            Image.new("RGB", (24, 24), (255 * (i == 0), 255 * (i == 1), 0)).save(
                tmp_path / "data" / split / name / "a.png")
    result = run_cli("train", tmp_path / "data", "--model", "small", "--epochs", "1", "--img-size",
                     "32", "--workers", "0", "--output", blocked_dir / "run")
    _one_user_error(result, "run", "cannot write")


def test_profile_batch_too_large_for_memory_is_a_user_error(run_cli):
    result = run_cli("profile", "--size", "small", "--backend", "eager", "--runs", "1", "--warmup",
                     "0", "-b", str(10**9))
    _one_user_error(result, "--batch-size 1000000000", "memory")


def test_predict_json_into_a_closed_pipe_stops_quietly(int8_tflite, cat_photo, coffee_photo, tmp_path):
    """``mnv3 predict ... --json | head -1``: the reader leaving is not an internal error."""
    # -k 1000 makes each JSON line ~60 KB, so the second line cannot fit in the pipe's buffer.
    args = [sys.executable, "-m", "mnv3cli", "predict", str(cat_photo), str(coffee_photo), str(cat_photo),
            "-w", str(int8_tflite), "--json", "-k", "1000"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_cli_env(),
                            cwd=tmp_path)
    first = proc.stdout.read(100)
    proc.stdout.close()  # like `head -c 100`
    stderr = proc.stderr.read().decode()
    proc.wait(timeout=600)
    assert first.startswith(b'{"path": ')
    assert "internal error" not in stderr and "BrokenPipe" not in stderr and "Exception" not in stderr
    assert proc.returncode == 1


def test_predict_csv_has_columns_only_for_labels_the_model_has(run_cli, int8_tflite, cat_photo, tmp_path):
    out = tmp_path / "labels.csv"
    result = run_cli("predict", cat_photo, "-w", int8_tflite, "-k", "5000", "-o", out)
    assert result.returncode == 0, result.stderr
    header, row = list(csv.reader(out.open(encoding="utf-8")))
    assert len(header) == len(row) == 1 + 3 * 1000 + 1
    assert header[-2] == "probability_1000" and row[-1] == ""


def test_broken_yaml_config_is_reported_on_one_line(tmp_path):
    from mnv3cli.errors import UserError
    from mnv3cli.training.config import read_config_file

    config = tmp_path / "recipe.yaml"
    config.write_text("epochs: [1\nlr: 0.1\n")
    with pytest.raises(UserError) as caught:
        read_config_file(config)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{config}: not a valid YAML file")
    assert "line 2, column 3" in message  # where the parser gave up


def test_a_symlink_loop_in_a_class_folder_does_not_repeat_its_images(tmp_path):
    from PIL import Image

    from mnv3cli.data.folders import scan_folder

    (tmp_path / "tabby").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "tabby" / "a.png")
    (tmp_path / "tabby" / "up").symlink_to("..")  # tabby/up/tabby/up/... until ELOOP
    assert [name for _, name in scan_folder(tmp_path).items] == ["tabby"]


def test_profile_width_beyond_4_is_refused_before_building_anything(run_cli):
    result = run_cli("profile", "--width", "100", "--runs", "0")
    assert result.returncode == 2 and "--width" in result.stderr and "Traceback" not in result.stderr
