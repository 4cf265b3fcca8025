"""Checkpoints carry a checksum of their tensors (a flipped bit is refused, not answered with), and
writing the same model twice, or converting the same file twice, gives the same bytes."""

from __future__ import annotations

import shutil

import pytest
import torch
from click.testing import CliRunner

from helpers import flip_a_weight_bit
from mnv3cli.cli.app import cli
from mnv3cli.errors import UserError
from mnv3cli.model import MobileNetV3
from mnv3cli.registry.entries import TF
from mnv3cli.weights.checkpoint import (
    CHECKSUM,
    read_checkpoint,
    save_checkpoint,
    tensors_sha256,
)
from mnv3cli.weights.loader import load_model


def small_model() -> MobileNetV3:
    torch.manual_seed(0)
    return MobileNetV3("small", num_classes=3).eval()


def save(path, model=None, **kwargs):
    save_checkpoint(
        path,
        model or small_model(),
        model_name="custom",
        arch={"size": "small"},
        class_names=["a", "b", "c"],
        preprocess=TF,
        **kwargs,
    )
    return path


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_flipped_bit_in_tensor_data_is_refused_as_corrupt(tmp_path, suffix):
    model = small_model()
    path = save(tmp_path / f"run{suffix}", model)
    assert read_checkpoint(path)[CHECKSUM] == tensors_sha256(model.state_dict())
    flip_a_weight_bit(path, model)
    with pytest.raises(UserError, match=r"run\.\w+: corrupt mnv3 checkpoint \(checksum mismatch\)"):
        load_model(path)
    with pytest.raises(UserError, match="checksum mismatch"):
        read_checkpoint(path)  # what `train --resume` reads


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_file_without_a_checksum_still_loads(tmp_path, suffix):
    """Files written before the checksum existed: the same record without the key."""
    model = small_model()
    path = save(tmp_path / f"old{suffix}", model)
    if suffix == ".pt":
        record = torch.load(path, weights_only=True)
        del record[CHECKSUM]
        torch.save(record, path)
    else:
        from safetensors import safe_open
        from safetensors.torch import load_file, save_file

        with safe_open(str(path), "pt") as fh:
            metadata = {k: v for k, v in fh.metadata().items() if k != CHECKSUM}
        save_file(load_file(path), path, metadata=metadata)
    assert CHECKSUM not in read_checkpoint(path)
    with torch.no_grad():
        torch.testing.assert_close(load_model(path).model(torch.ones(1, 3, 64, 64)), model(torch.ones(1, 3, 64, 64)))


def test_float16_weights_are_half_the_size_and_load_in_float32(tmp_path):
    model = small_model()
    full, half = save(tmp_path / "full.safetensors", model), save(tmp_path / "half.safetensors", model, dtype="float16")
    assert 0.45 < half.stat().st_size / full.stat().st_size < 0.55
    assert read_checkpoint(half)["state_dict"]["stem.conv.weight"].dtype == torch.float16
    loaded = load_model(half).model
    assert loaded.stem.conv.weight.dtype == torch.float32
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_saving_the_same_model_twice_gives_the_same_bytes(tmp_path, suffix):
    """safetensors writes its metadata in hash-map order, different on each write; ours is sorted."""
    model = small_model()
    extra = {"b": 1, "a": {"z": 2, "y": 3}}
    files = [save(tmp_path / f"{i}{suffix}", model, extra=extra).read_bytes() for i in range(3)]
    assert files[0] == files[1] == files[2]


def test_convert_twice_from_two_places_gives_identical_files(tmp_path, bundled_weights):
    """The output names its input by file name and content hash, not by the path given."""
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copy(bundled_weights, tmp_path / folder / bundled_weights.name)
    runner = CliRunner()
    for suffix in (".pt", ".safetensors"):
        outputs = []
        for folder in ("a", "b"):
            out = tmp_path / f"{folder}{suffix}"
            result = runner.invoke(
                cli, ["-q", "convert", str(tmp_path / folder / bundled_weights.name), "-o", str(out)]
            )
            assert result.exit_code == 0, result.output
            outputs.append(out.read_bytes())
        assert outputs[0] == outputs[1], suffix
    assert read_checkpoint(tmp_path / "a.safetensors")["extra"]["converted_from"] == bundled_weights.name
