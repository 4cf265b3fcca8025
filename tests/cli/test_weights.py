"""Command-line tests: ``mnv3`` runs in-process (the ``mnv3`` fixture, :func:`helpers.invoke`): about
files and error lines, not the process; a malicious pickle is only ever loaded in a subprocess.

``mnv3 convert``: TFLite -> .pt -> .safetensors keeps the logits, and every bad or hostile input
is one error line with exit status 2 (no traceback, and a malicious pickle never runs).
"""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch

from helpers import assert_one_user_error, flip_a_weight_bit, invoke
from mnv3cli.model import MobileNetV3
from mnv3cli.registry.entries import TF
from mnv3cli.weights.checkpoint import save_checkpoint
from mnv3cli.weights.loader import load_model


def test_convert_to_unwritable_place_is_a_user_error(mnv3, int8_tflite, blocked_dir):
    result = mnv3("convert", int8_tflite, "-o", blocked_dir / "small.pt")
    assert_one_user_error(result, "small.pt", "cannot write")


def test_convert_tflite_to_checkpoint_and_safetensors(tmp_path, int8_tflite):
    result = invoke("convert", int8_tflite, "-o", tmp_path / "small.pt", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["model"] == "mobilenetv3_small_100" and record["num_classes"] == 1000
    assert record["format"] == "pt" and record["source_format"] == "tflite"
    assert record["arch"]["tf_padding"] is True and record["preprocess"]["mean"] == [0.5, 0.5, 0.5]

    result = invoke("convert", tmp_path / "small.pt", "-o", tmp_path / "small.safetensors")
    assert result.returncode == 0, result.stderr
    assert all(len(line) <= 80 or " " not in line.strip() for line in result.stdout.splitlines())
    assert result.stdout.replace("\n  ", " ").startswith(f"wrote {tmp_path / 'small.safetensors'} (safetensors, ")

    x = torch.randn(2, 3, 224, 224)
    reference = load_model(int8_tflite).model
    with torch.inference_mode():
        expected = reference(x)
        for name, origin in (("small.pt", int8_tflite), ("small.safetensors", tmp_path / "small.pt")):
            loaded = load_model(tmp_path / name)
            assert loaded.card.model_name == "mobilenetv3_small_100" and loaded.card.wordnet_ids[0] == "n01440764"
            assert loaded.meta["converted_from"] == origin.name  # not the path: same bytes anywhere
            torch.testing.assert_close(loaded.model(x), expected)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_bit_flipped_checkpoint_is_one_error_line(mnv3, tmp_path, suffix):
    model = MobileNetV3("small", num_classes=3)
    path = tmp_path / f"flipped{suffix}"
    save_checkpoint(path, model, model_name="custom", arch=model.config, class_names=["a", "b", "c"], preprocess=TF)
    flip_a_weight_bit(path, model)
    result = mnv3("convert", path, "-o", tmp_path / "out.pt")
    assert_one_user_error(result, f"{path}: corrupt mnv3 checkpoint (checksum mismatch)")
    assert not (tmp_path / "out.pt").exists()


class Payload:
    """Unpickling this calls ``open(marker, "w")``: a file appears if the loader ever runs code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.mark.parametrize("container", ["zip", "legacy", "pickle"])
def test_malicious_pickle_is_refused_and_never_runs(run_cli, tmp_path, container):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    state = {"stem.conv.weight": torch.zeros(16, 3, 3, 3), "hook": Payload(marker)}
    if container == "pickle":
        path.write_bytes(pickle.dumps(state, protocol=2))
    else:
        torch.save(state, path, _use_new_zipfile_serialization=container == "zip")
    result = run_cli("convert", path, "-o", tmp_path / "out.pt")
    assert result.returncode == 2
    assert result.stderr.startswith(f"mnv3: error: {path}: refused: loading it would import and run ")
    assert "only tensors" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists() and not (tmp_path / "out.pt").exists()


def _truncated(path):
    torch.save(MobileNetV3("small").state_dict(), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _other_architecture(path):
    torch.save(
        {"conv1.weight": torch.zeros(8, 3, 3, 3), "fc.weight": torch.zeros(10, 8), "fc.bias": torch.zeros(10)}, path
    )


BAD_FILES = {
    "missing.pt": (None, "no such file"),
    "empty.pt": (lambda p: p.write_bytes(b""), "file is empty"),
    "truncated.pth": (_truncated, "not a readable PyTorch file"),
    "garbage.pth": (lambda p: p.write_bytes(os.urandom(4096)), "not a readable PyTorch file"),
    "garbage.safetensors": (lambda p: p.write_bytes(os.urandom(4096)), "not a readable safetensors file"),
    "garbage.tflite": (lambda p: p.write_bytes(os.urandom(4096)), "not a TFLite model"),
    "weights.onnx": (lambda p: p.write_bytes(b"onnx"), "unsupported weights file type '.onnx'"),
    "epoch.pt": (lambda p: torch.save({"epoch": 3}, p), "holds no state dict"),
    "resnet.pth": (_other_architecture, "holds 2 convolution/linear weights; a MobileNetV3 has"),
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_bad_input_files_are_one_line_errors(mnv3, tmp_path, name):
    make, message = BAD_FILES[name]
    path = tmp_path / name
    if make:
        make(path)
    result = mnv3("convert", path, "-o", tmp_path / "out.pt")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"mnv3: error: {path}: ") and message in result.stderr
    assert result.stderr.count("\n") == 1 and not (tmp_path / "out.pt").exists()


def test_truncated_tflite_is_an_error(mnv3, tmp_path, int8_tflite):
    path = tmp_path / "cut.tflite"
    path.write_bytes(int8_tflite.read_bytes()[:200_000])
    result = mnv3("convert", path, "-o", tmp_path / "out.pt")
    assert result.returncode == 2 and result.stderr.startswith(f"mnv3: error: {path}: damaged TFLite model")


def test_weights_for_another_model_name_the_tensor(mnv3, tmp_path):
    torch.save(MobileNetV3("small").state_dict(), tmp_path / "small.pt")
    result = mnv3("convert", tmp_path / "small.pt", "-o", tmp_path / "out.pt", "--model", "mobilenetv3_small_075")
    assert result.returncode == 2
    assert result.stderr == (
        f"mnv3: error: {tmp_path / 'small.pt'}: tensor 'stages.2.0.project.conv.weight' "
        "has shape (40, 96, 1, 1) but the model's 'stages.2.0.project.conv.weight' "
        "needs (32, 96, 1, 1)\n"
    )


def test_unknown_output_format(mnv3, tmp_path):
    result = mnv3("convert", "imagenet", "-o", tmp_path / "out.onnx")
    assert result.returncode == 2
    assert result.stderr == (
        f"mnv3: error: {tmp_path / 'out.onnx'}: unknown output format '.onnx'; use .pt, .pth, .safetensors\n"
    )
