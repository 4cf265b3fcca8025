"""Command-line tests: ``mnv3`` runs in-process (``mnv3``, :func:`helpers.invoke`) where a test is
about what the command computes or refuses, in a subprocess (``run_cli``) where it is about the
process: its imports, a batch too large for its memory.

``mnv3 profile``: exact parameter and MAC counts, honest latency statistics, exports, the command.
"""

from __future__ import annotations

import json

import pytest
import torch

from helpers import assert_one_user_error
from mnv3cli.factory import create_model
from mnv3cli.profiling.counting import count_compute
from mnv3cli.registry import MODELS


@pytest.fixture(scope="module")
def small():
    return create_model("small").eval()


def test_profile_json(mnv3):
    result = mnv3(
        "profile",
        "--size",
        "small",
        "--resolution",
        "96",
        "--backend",
        "eager",
        "--batch-size",
        "1,2",
        "--runs",
        "2",
        "--warmup",
        "1",
        "--threads",
        "1",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["model"] == "mobilenetv3_small_100" and record["params"] == 2_542_856
    assert record["macs"] == count_compute(create_model("small"), 96).macs and record["flops"] == 2 * record["macs"]
    assert record["latency_ms"]["median"] > 0 and record["latency_ms"]["threads"] == 1
    assert [(s["backend"], s["batch_size"]) for s in record["latency"]] == [("eager", 1), ("eager", 2)]


def test_profile_compare_counts_only_gives_a_list(mnv3):
    result = mnv3(
        "profile",
        "--model",
        "small",
        "--compare",
        "large",
        "--compare",
        "mobilenetv3_small_075",
        "--runs",
        "0",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    assert [(r["model"], r["macs"], r["params"]) for r in records] == [
        (e.name, e.macs, e.params) for e in (MODELS[0], MODELS[2], MODELS[1])
    ]
    assert all(r["latency"] == [] and r["latency_ms"] is None for r in records)


def test_profile_tables_with_per_layer_and_width(mnv3):
    result = mnv3("profile", "--size", "large", "--width", "0.5", "--per-layer", "--runs", "0")
    assert result.returncode == 0 and "Parameters" not in result.stderr  # the tables are the result
    for text in (
        "Parameters and compute at 224x224",
        "0.5",
        "per stage",
        "stages.5.2.depthwise.conv",
        "dwconv 5x5",
        "FLOPs = 2 x MACs",
        "torchvision",
    ):
        assert text in result.stdout, text


def test_profile_plot_writes_a_png(mnv3, tmp_path):
    out = tmp_path / "latency.png"
    result = mnv3(
        "profile",
        "--size",
        "small",
        "--resolution",
        "64",
        "--backend",
        "eager",
        "--backend",
        "onnxruntime",
        "-b",
        "1",
        "-b",
        "2",
        "--runs",
        "2",
        "--warmup",
        "0",
        "--plot",
        str(out),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_profile_times_openvino_when_asked_and_plots_it(mnv3, tmp_path):
    """--backend openvino is a choice (profile times it by default too), and the plot gives it a
    colour: with OpenVINO installed, --plot once ended in an internal ValueError."""
    pytest.importorskip("openvino", reason="the openvino extra is part of the test extra")
    out = tmp_path / "openvino.png"
    result = mnv3(
        *("profile", "--size", "small", "-r", "64", "--backend", "openvino", "--backend", "torch"),
        *("--runs", "2", "--warmup", "0", "--plot", out, "--json"),
    )
    assert result.returncode == 0, result.stderr
    assert [s["backend"] for s in json.loads(result.stdout)["latency"]] == ["openvino", "eager"]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "args,message",
    [
        (["--model", "mobilenetv9"], "unknown model 'mobilenetv9'"),
        (["--size", "small", "--model", "large"], "name different models"),
        (["--plot", "out.txt", "--runs", "0"], "unsupported image type"),
        (["--runs", "0", "--plot", "out.png"], "nothing to plot"),
        (["--device", "cuda", "--runs", "0"], "CUDA is not available"),
    ],
)
def test_profile_bad_input_is_one_line_and_exit_2(mnv3, args, message):
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    result = mnv3("profile", *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mnv3: error: ") and message in lines[0], lines


def test_bad_batch_size_is_a_usage_error(mnv3):
    result = mnv3("profile", "--batch-size", "1,x")
    assert result.returncode == 2 and "'x' is not an integer" in result.stderr


def test_profile_help_does_not_import_torch(run_cli):
    result = run_cli("profile", "--help", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert result.returncode == 0 and "--batch-size" in result.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "click" in imported and not {m for m in imported if m.split(".")[0] == "torch"}


def test_profile_plot_in_unwritable_place_is_a_user_error(mnv3, blocked_dir):
    result = mnv3(
        "profile",
        "--size",
        "small",
        "--backend",
        "eager",
        "--runs",
        "1",
        "--warmup",
        "0",
        "-r",
        "32",
        "--plot",
        blocked_dir / "latency.png",
    )
    assert_one_user_error(result, "--plot", "latency.png", "cannot write")


def test_profile_batch_too_large_for_memory_is_a_user_error(run_cli):
    result = run_cli(
        "profile", "--size", "small", "--backend", "eager", "--runs", "1", "--warmup", "0", "-b", str(10**9)
    )
    assert_one_user_error(result, "--batch-size 1000000000", "memory")


def test_profile_width_beyond_4_is_refused_before_building_anything(mnv3):
    result = mnv3("profile", "--width", "100", "--runs", "0")
    assert result.returncode == 2 and "--width" in result.stderr and "Traceback" not in result.stderr
