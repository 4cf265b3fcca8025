"""The CLI's shared rules, each kept once: the stream rule (results on stdout, -q never hides them),
the shared options, the one folder walk, the one class-label fallback and the one worker default.
"""

from __future__ import annotations

import os

import click
import pytest

from mnv3cli.cli.app import cli
from mnv3cli.data import default_workers
from mnv3cli.data.folders import images_under, scan_folder
from mnv3cli.data.inputs import expand_inputs
from mnv3cli.registry.card import class_label


def test_the_stream_rule_is_stated_once_in_the_cli_package():
    import mnv3cli.cli

    doc = mnv3cli.cli.__doc__
    assert "stdout" in doc and "stderr" in doc and "-q" in doc


def _options(name: str) -> dict[str, dict]:
    command = cli.get_command(click.Context(cli), name)
    return {p.opts[0]: p.to_info_dict() for p in command.params if isinstance(p, click.Option)}


def test_predict_and_evaluate_share_their_model_data_and_backend_options():
    predict, evaluate = _options("predict"), _options("evaluate")
    for flag in ("--model", "--weights", "--batch-size", "--workers", "--backend", "--fast-decode"):
        assert predict[flag] == evaluate[flag], flag
    from mnv3cli.inference import backend_names

    assert tuple(predict["--backend"]["type"]["choices"]) == backend_names()


@pytest.mark.parametrize("name", ["predict", "evaluate", "export", "convert", "profile", "models"])
def test_every_command_spells_json_and_model_alike(name):
    options = _options(name)
    assert options["--json"]["name"] == "as_json" and options["--json"]["is_flag"]
    if name != "models":
        assert options["--model"]["opts"] == ["--model", "-m"]


def test_no_command_keeps_its_own_backend_list_or_opener():
    from mnv3cli.cli import evaluate, predict

    for module in (predict, evaluate):
        assert not hasattr(module, "BACKENDS") and not hasattr(module, "open_backend")


@pytest.fixture
def walk_tree(tmp_path):
    """cats/{a.png, .b.png, .cache/c.png, sub/d.png, up -> ..}: a hidden file, a hidden folder, a loop."""
    from PIL import Image

    cats = tmp_path / "cats"
    (cats / ".cache").mkdir(parents=True)
    (cats / "sub").mkdir()
    for rel in ("a.png", ".b.png", ".cache/c.png", "sub/d.png"):
        Image.new("RGB", (8, 8)).save(cats / rel)
    (cats / "up").symlink_to("..")
    return tmp_path


def test_predict_and_evaluate_walk_folders_alike(walk_tree, monkeypatch):
    cats = walk_tree / "cats"
    walked = images_under(cats)
    assert sorted(os.path.relpath(p, cats) for p in walked) == ["a.png", os.path.join("sub", "d.png")]
    monkeypatch.chdir(walk_tree)
    assert expand_inputs(["cats"]) == ["cats/a.png", "cats/sub/d.png"]  # sorted, normalised
    assert [path for path, _ in scan_folder(walk_tree).items] == walked


def test_class_label_falls_back_to_the_index():
    assert class_label(["ant", "bee"], 1) == "bee"
    assert class_label(["ant", "bee"], 2) == "2" and class_label(["ant"], -1) == "-1"


def test_default_workers_is_cpu_cores_at_most_8(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert default_workers() == 1
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert default_workers() == 8
