"""Command-line tests: each runs ``mnv3`` in a subprocess.

Out of the box: on a machine without network, downloads or caches, ``mnv3 predict`` and
``mnv3 evaluate`` without ``--model``/``--weights`` answer with the model inside the package; the
first run builds the ONNX cache, later ones stay torch-free; named models and tags still download.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import IMPORT_GUARD, ROOT, assert_one_user_error, cli_env

# What README's Quick start promises for the photos in examples/ (scikit-image's, CC0).
EXPECTED_TOP1 = {"examples/chelsea.jpg": "Egyptian cat", "examples/coffee.jpg": "espresso"}


@pytest.fixture
def fresh_machine(tmp_path):
    """The environment of a first run: offline, empty torch hub and ONNX caches."""
    return {"MNV3_OFFLINE": "1", "TORCH_HOME": str(tmp_path / "torch"), "MNV3_CACHE": str(tmp_path / "cache")}


def mnv3(*args, env, guard=False):
    prefix = ["-c", IMPORT_GUARD] if guard else ["-m", "mnv3cli"]
    return subprocess.run(
        [sys.executable, *prefix, *args], capture_output=True, text=True, cwd=ROOT, env=cli_env(env), timeout=600
    )


def test_quick_start_predicts_the_examples_offline_then_without_torch(fresh_machine, tmp_path):
    first = mnv3("predict", *EXPECTED_TOP1, "--json", env=fresh_machine)
    assert first.returncode == 0, first.stderr
    assert "building ONNX cache for mobilenetv3_small_100 (weights: bundled; first run only)" in first.stderr
    records = [json.loads(line) for line in first.stdout.splitlines()]
    assert {r["path"]: r["predictions"][0]["label"] for r in records} == EXPECTED_TOP1
    assert not (tmp_path / "torch").exists()  # nothing was downloaded

    again = mnv3("predict", *EXPECTED_TOP1, "--json", env=fresh_machine, guard=True)
    assert again.returncode == 0, again.stderr
    *lines, imported = again.stdout.strip().splitlines()
    assert imported == "[]" and "building" not in again.stderr
    assert [json.loads(line) for line in lines] == records


@pytest.mark.parametrize(
    "option, file",
    [
        (["--model", "large"], "mobilenet_v3_large-5c1a4163.pth"),
        (["--weights", "imagenet"], "mobilenet_v3_large-5c1a4163.pth"),
        (["--model", "small"], "mobilenet_v3_small-047dcff4.pth"),
        (["--weights", "torchvision:IMAGENET1K_V1", "--model", "small"], "mobilenet_v3_small-047dcff4.pth"),
    ],
)
def test_named_models_and_tags_still_download(fresh_machine, option, file):
    result = mnv3("predict", "examples/coffee.jpg", *option, env=fresh_machine)
    assert_one_user_error(result, f"offline: {file} not cached; use --weights")
    assert all(len(line) <= 80 for line in result.stderr.splitlines())


@pytest.mark.slow
def test_evaluate_without_weights_reaches_the_bar_offline(fresh_machine, imagenet_dev):
    result = mnv3("evaluate", str(imagenet_dev), "--json", env=fresh_machine)
    assert result.returncode == 0, result.stderr
    obj = json.loads(result.stdout)
    print(f"\nbundled model on dev: top-1 {obj['top1']:.1f} %, top-5 {obj['top5']:.1f} % ({obj['backend']})")
    assert obj["model"] == "mobilenetv3_small_100" and obj["weights"] == "bundled"
    assert obj["images"] == 500 and obj["errors"] == 0
    assert obj["top1"] >= 78.5 and obj["top5"] >= 93.5
