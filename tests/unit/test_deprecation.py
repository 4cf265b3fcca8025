"""The one table of renamed options (mnv3cli/deprecation.py): an entry in it is all a rename needs.

The table ships empty (nothing was released under another name), so each test adds a real entry
for its own duration: ``--img-size`` (``img_size``), the name ``--resolution`` once had.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from mnv3cli import deprecation
from mnv3cli.cli.app import cli
from mnv3cli.errors import UserError
from mnv3cli.training.config import build_config


@pytest.fixture
def img_size_renamed(monkeypatch):
    monkeypatch.setitem(deprecation.RENAMED, "img_size", "resolution")


def test_an_old_name_in_a_config_file_maps_and_warns(img_size_renamed, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("img-size: 48\nepochs: 2\n")
    heard: list[str] = []
    cfg = build_config({}, recipe, warn=heard.append)
    assert cfg.resolution == 48 and cfg.epochs == 2
    assert heard == [f"{recipe}: img_size is deprecated; use resolution"]


def test_an_old_name_warns_through_python_warnings_without_a_listener(img_size_renamed, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("img_size: 64\n")
    with pytest.warns(FutureWarning, match="img_size is deprecated; use resolution"):
        assert build_config({}, recipe).resolution == 64


def test_both_names_in_one_file_are_refused(img_size_renamed, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("img_size: 64\nresolution: 96\n")
    with pytest.raises(UserError, match="img_size is the old name of resolution: give one of them"):
        build_config({}, recipe, warn=lambda message: None)


def test_an_old_flag_reaches_the_command_under_its_new_name(img_size_renamed):
    """``--img-size 8`` is refused by ``--resolution``'s own check: the value reached the new option."""
    result = CliRunner().invoke(cli, ["train", "data", "--img-size", "8"])
    assert result.exit_code == 2
    assert "mnv3: warning: --img-size is deprecated; use --resolution" in result.stderr
    assert "'-r' / '--resolution': 8 is not in the range 16<=x<=4096" in result.stderr


def test_renamed_args_keeps_values_and_file_names(img_size_renamed):
    heard: list[str] = []
    args = ["x", "--img-size=32", "--", "--img-size"]
    assert deprecation.renamed_args(args, heard.append) == ["x", "--resolution=32", "--", "--img-size"]
    assert heard == ["--img-size is deprecated; use --resolution"]
    with pytest.raises(UserError, match="--img-size is the old name of --resolution"):
        deprecation.renamed_args(["--img-size", "32", "-r", "48", "--resolution", "48"], heard.append)


def test_without_entries_arguments_pass_unchanged():
    args = ["predict", "--img-size", "3", "--", "-x"]
    assert deprecation.renamed_args(args) == args
    assert deprecation.renamed_keys({"img_size": 3}, "cfg") == {"img_size": 3}
