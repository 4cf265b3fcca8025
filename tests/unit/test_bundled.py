"""The model inside the package: the registry's record of it, making it again from ../shared's
.tflite (same bytes), the default it becomes, and the wheel that ships it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest
from click.testing import CliRunner

from helpers import ROOT
from mnv3cli.cli.app import cli
from mnv3cli.errors import UserError
from mnv3cli.registry import (
    BUNDLED,
    default_weights,
    find_weight_source,
    resolve_weights,
)
from mnv3cli.weights import download
from mnv3cli.weights.checkpoint import read_checkpoint
from mnv3cli.weights.download import sha256_file

ENTRY, SOURCE = find_weight_source(BUNDLED)
RECORD = SOURCE.bundled
PATH = ROOT / "mnv3cli" / "bundled" / RECORD.file


def test_the_bundled_file_is_the_registry_s_and_carries_its_card():
    assert ENTRY.name == "mobilenetv3_small_100" and download.cached_path(SOURCE) == PATH
    assert sha256_file(PATH) == RECORD.sha256
    assert PATH.stat().st_size <= 6_000_000
    record = read_checkpoint(PATH)  # checks the tensors' checksum too
    assert record["state_dict"]["stem.conv.weight"].dtype.is_floating_point
    assert str(record["state_dict"]["stem.conv.weight"].dtype) == "torch.float16"
    assert record["num_classes"] == 1000 and record["class_names"][:2] == ["tench", "goldfish"]
    assert record["wordnet_ids"][0] == "n01440764" and record["preprocess"]["mean"] == [0.5, 0.5, 0.5]
    assert record["arch"]["tf_padding"] is True
    extra = record["extra"]
    assert extra["converted_from"] == RECORD.made_from and extra["source_sha256"] == RECORD.made_from_sha256
    assert extra["license"] == "Apache-2.0" and "Google" in extra["notice"]
    notice = (PATH.parent / "NOTICE").read_text(encoding="utf-8")
    assert RECORD.file in notice and RECORD.made_from_sha256 in notice and "Apache License" in notice
    assert "Version 2.0, January 2004" in (PATH.parent / "LICENSE-Apache-2.0.txt").read_text(encoding="utf-8")


@pytest.mark.slow
def test_the_bundled_file_is_made_again_byte_for_byte_from_the_shared_tflite(tmp_path, int8_tflite):
    """The registry's recipe, run on ../shared's file, gives the very file the package ships."""
    assert int8_tflite.name == RECORD.made_from and sha256_file(int8_tflite) == RECORD.made_from_sha256
    out = tmp_path / RECORD.file
    result = CliRunner().invoke(cli, ["-q", "convert", str(int8_tflite), "-o", str(out), *RECORD.convert_args])
    assert result.exit_code == 0, result.output
    assert sha256_file(out) == RECORD.sha256 == sha256_file(PATH)


def test_omitted_weights_mean_the_bundled_model_unless_a_model_is_named():
    assert default_weights() == BUNDLED and default_weights("large") == "imagenet"
    assert resolve_weights(BUNDLED) == (ENTRY, SOURCE)
    assert resolve_weights(BUNDLED, "small") == (ENTRY, SOURCE)
    assert resolve_weights("imagenet")[1].tag == "torchvision:IMAGENET1K_V2"  # as before: downloaded
    with pytest.raises(UserError, match="mobilenetv3_large_100' has no weights 'bundled'"):
        resolve_weights(BUNDLED, "large")


def test_load_model_without_arguments_is_the_bundled_model_read_in_place(monkeypatch, tmp_path):
    from mnv3cli.weights.loader import load_model

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # nothing may land in the download cache
    loaded = load_model()
    assert loaded.card.source == BUNDLED and loaded.card.model_name == "mobilenetv3_small_100"
    assert loaded.card.sha256 == RECORD.sha256 and loaded.model.num_classes == 1000
    assert loaded.meta["license"] == "Apache-2.0"
    assert not (tmp_path / "torch").exists()


def test_a_damaged_bundled_file_asks_for_a_reinstall(monkeypatch, tmp_path):
    (tmp_path / RECORD.file).write_bytes(PATH.read_bytes()[:-1] + b"\0")
    monkeypatch.setattr(download, "BUNDLED_DIR", tmp_path)
    with pytest.raises(UserError, match="is not the bundled model's .*reinstall mnv3cli"):
        download.fetch(SOURCE)
    (tmp_path / RECORD.file).unlink()
    with pytest.raises(UserError, match="bundled model is missing .*reinstall mnv3cli"):
        download.fetch(SOURCE)


@pytest.mark.slow
def test_the_wheel_ships_the_bundled_model_and_its_install_answers_offline(tmp_path):
    """A non-editable install gets the model: the wheel (built as `pip install .` builds it) holds
    it, its notice and the licence, and the installed copy (not this checkout) runs the Quick start
    offline with empty caches. Dependencies come from this environment: nothing is downloaded."""
    # only what the build reads: a copy of the whole checkout would carry a local .venv (gigabytes)
    source = tmp_path / "src"
    shutil.copytree(ROOT / "mnv3cli", source / "mnv3cli", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    done = subprocess.run(
        [
            *pip,
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    wheel = next((tmp_path / "dist").glob("mnv3cli-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for name in (RECORD.file, "NOTICE", "LICENSE-Apache-2.0.txt"):
        assert f"mnv3cli/bundled/{name}" in names
    print(f"\nwheel {wheel.name}: {wheel.stat().st_size / 1e6:.1f} MB")
    assert wheel.stat().st_size < 6_000_000

    site, work = tmp_path / "site", tmp_path / "work"
    done = subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "-q", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    (work / "examples").mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "coffee.jpg", work / "examples")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MNV3_SHARED")}
    env |= {
        "PYTHONPATH": str(site),
        "MNV3_OFFLINE": "1",
        "TORCH_HOME": str(tmp_path / "torch"),
        "MNV3_CACHE": str(tmp_path / "cache"),
    }
    code = "import sys, mnv3cli; print(mnv3cli.__file__, file=sys.stderr); from mnv3cli.cli.app import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", code, "predict", "examples/coffee.jpg", "--json"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith(str(site / "mnv3cli"))  # the installed copy ran
    assert json.loads(done.stdout)["predictions"][0]["label"] == "espresso"
