"""``mnv3 export -o``: never the input it is made from, a suffix that says the format, any missing
folder created (issue 24 item 9). The bundled weights keep these runs short and offline; they run
in-process (the ``mnv3`` fixture): about files and refusals, not the process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import assert_one_user_error, invoke

BUNDLED = next((Path(__file__).resolve().parents[2] / "mnv3cli" / "bundled").glob("*.safetensors"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """The bundled weights as a ``.pt`` checkpoint, what a TorchScript ``-o`` would overwrite."""
    path = tmp_path_factory.mktemp("weights") / "small.pt"
    proc = invoke("convert", BUNDLED, "-o", path)
    assert proc.returncode == 0, proc.stderr
    return path


@pytest.mark.parametrize("spelling", ["small.pt", "sub/../small.pt", "link.pt"])
def test_output_equal_to_the_weights_is_refused_and_the_weights_kept(mnv3, checkpoint, tmp_path, spelling):
    """The same file however it is spelled (resolved): a relative detour or a symlink to it."""
    (tmp_path / "sub").mkdir()
    weights = tmp_path / "small.pt"
    weights.write_bytes(checkpoint.read_bytes())
    (tmp_path / "link.pt").symlink_to(weights)
    proc = mnv3("export", "-f", "torchscript", "-w", "small.pt", "-o", spelling, cwd=tmp_path)
    assert_one_user_error(proc, "--output ", ".pt: is the --weights file itself")
    assert weights.read_bytes() == checkpoint.read_bytes()


@pytest.mark.parametrize("fmt, name", [("onnx", "small.pt"), ("torchscript", "small.onnx"), ("openvino", "small")])
def test_a_suffix_that_does_not_say_the_format_is_refused(mnv3, tmp_path, fmt, name):
    proc = mnv3("export", "-f", fmt, "-o", name)
    assert_one_user_error(proc, f"--output {name}", f"--format {fmt} writes a")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt, name", [("onnx", "a/b/small.onnx"), ("openvino", "a/b/small.xml")])
def test_a_missing_output_folder_is_created_for_every_format(mnv3, tmp_path, fmt, name):
    if fmt == "openvino":
        pytest.importorskip("openvino", reason="the openvino extra is part of the test extra")
    proc = mnv3("export", "-f", fmt, "-o", name, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["ok"] and (tmp_path / name).is_file()
    if fmt == "openvino":
        assert (tmp_path / name).with_suffix(".bin").is_file()
