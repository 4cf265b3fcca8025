"""The options that the same model takes wherever it runs really act there: ``serve --tta``,
``explain -k`` and explain's default output folder, ``--device`` on calibrate/explain/serve."""

from __future__ import annotations

import json

import click
import numpy as np
import pytest
from click.testing import CliRunner

from helpers import ROOT
from mnv3cli.cli.app import cli
from mnv3cli.cli.context import AppContext
from mnv3cli.cli.options import _set_device

CAT = ROOT / "examples" / "chelsea.jpg"


def test_serve_tta_flip_averages_each_image_with_its_mirror():
    from mnv3cli.cli.serve import _open

    app = AppContext(quiet=True, device="cpu")
    plain = _open(app, None, None, "auto", "f32", "none")
    flip = _open(app, None, None, "auto", "f32", "flip")
    batch = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    expected = (plain.backend(batch) + plain.backend(batch[..., ::-1].copy())) / 2
    np.testing.assert_allclose(flip.backend(batch), expected, rtol=1e-4, atol=1e-4)
    assert flip.backend.name == plain.backend.name


@pytest.mark.parametrize("name", ["calibrate", "explain", "serve"])
def test_device_after_the_command_where_the_model_runs(name):
    command = cli.get_command(click.Context(cli), name)
    (device,) = [p for p in command.params if p.name == "device"]
    assert device.callback is _set_device


def test_explain_takes_top_k_and_writes_to_gradcam_by_default(tmp_path, monkeypatch):
    pytest.importorskip("pytorch_grad_cam")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["explain", str(CAT), "-k", "2", "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert len(record["predictions"]) == 2 and record["heatmap"] == "gradcam/chelsea.gradcam.png"
    assert (tmp_path / "gradcam" / "chelsea.gradcam.png").stat().st_size > 0
