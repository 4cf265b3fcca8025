"""Layouts for people (80 columns, nothing copied comes out broken) and one name per idea across
commands (--device after any command, one metavar per kind of value). In-process, via click's runner."""

from __future__ import annotations

import json
import re

import click
import pytest
from click.testing import CliRunner

from mnv3cli.cli.app import COMMANDS, cli
from mnv3cli.cli.context import pass_app
from mnv3cli.cli.options import _set_device, device_option
from mnv3cli.registry import MODELS

LONGEST_NAMES = ["mobilenetv3_large_minimal_100", "mobilenetv3_small_minimal_100", "mobilenetv3_large_100"]


def invoke(*args: str, columns: int = 80, env: dict | None = None):
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": str(columns), "MNV3_OFFLINE": "1", **(env or {})})
    assert result.exit_code == 0, result.output
    return result


def assert_fits(text: str, columns: int = 80) -> None:
    """No line wider than ``columns``, and no boxed table cropped at the edge (rich crops a table
    that does not fit: its lines then stop mid-cell instead of at the box's right border)."""
    too_wide = [line for line in text.splitlines() if len(line) > columns]
    assert not too_wide, "\n".join(too_wide)
    cropped = [line for line in text.splitlines() if line[:1] in "┏┃┡│├└" and line[-1:] not in "┓┃┩│┤┘"]
    assert not cropped, "\n".join(cropped)


def lines_holding(text: str, needle: str) -> list[str]:
    return [line for line in text.splitlines() if needle in line]


# ------------------------------------------------------------------------------------------ 80 columns


def test_models_fit_80_columns_and_every_tag_and_name_is_whole():
    out = invoke("models").stdout
    assert_fits(out)
    for entry in MODELS:
        assert lines_holding(out, entry.name), entry.name
        for w in entry.weights:  # a tag people copy: whole, on one line, with its accuracy
            shown = f"{w.top1:.2f}" if w.top1 is not None else "-"  # the bundled model: none published
            assert any(shown in line for line in lines_holding(out, f" {w.tag} ")), w.tag


def test_profile_tables_fit_80_columns_with_whole_names_and_numbers():
    names = [m.name for m in MODELS]
    args = ["profile", "--runs", "0", "--per-layer", "--model", names[0]]
    out = invoke(*args, *(a for n in names[1:] for a in ("--compare", n))).stdout
    assert_fits(out)
    records = json.loads(invoke(*args, *(a for n in names[1:] for a in ("--compare", n)), "--json").stdout)
    for record in records:
        cells = [line for line in lines_holding(out, record["model"]) if line.startswith("┃")]
        assert cells, record["model"]  # a column header of the summary, whole
        for figure in (f"{record['params']:,}", f"{record['macs'] / 1e6:,.2f}", f"{record['flops'] / 1e6:,.2f}"):
            assert re.search(rf"(?<![\d,.]){re.escape(figure)}(?![\d,.])", out), figure
        for stage, macs in record["macs_per_stage"].items():
            assert re.search(rf"│ {re.escape(stage)} +│[ \d,]+│ +{macs:,} │", out), stage


def test_profile_latency_rows_keep_every_number_whole(one_thread):
    out = invoke(
        "profile",
        "--model",
        "small",
        "--compare",
        LONGEST_NAMES[0],
        "-r",
        "64",
        "-b",
        "1,2",
        "--backend",
        "eager",
        "--backend",
        "channels_last",
        "--runs",
        "2",
        "--warmup",
        "0",
    ).stdout
    assert_fits(out)
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["eager"], ["channels_last"])]
    assert len(rows) == 2 * 2 * 2  # models x backends x batch sizes
    number = re.compile(r"^\d{1,3}(,\d{3})*(\.\d+)?$")
    for row in rows:  # backend, batch, min, median, p90, mean, ±, std, images/s, peak MiB
        assert len(row) == 10 and row[6] == "±", row
        assert all(number.match(cell) for cell in row[1:6] + row[7:]), row
    assert len(lines_holding(out, LONGEST_NAMES[0])) >= 3  # summary header, stages and latency titles


@pytest.mark.parametrize("columns", [80, 160])
def test_predict_prints_a_long_path_whole_above_its_table(int8_tflite, cat_photo, tmp_path, columns):
    folder = tmp_path / ("a folder whose name is long enough to need wrapping " * 2).strip()
    folder.mkdir()
    photo = folder / ("photo-" + "x" * 60 + ".jpg")
    photo.write_bytes(cat_photo.read_bytes())
    out = invoke("predict", str(photo), "-w", str(int8_tflite), "-k", "3", columns=columns).stdout
    lines = out.splitlines()
    assert lines[0] == str(photo)  # the path alone on its line, never folded into a cell
    assert_fits("\n".join(lines[1:]), columns)
    assert len(lines_holding(out, "Egyptian cat")) == 1


# ------------------------------------------------------------------------------- one name per idea


@pytest.fixture
def device_probe():
    """A command taking the shared --device option that prints the device the app will use."""

    @cli.command("device-for-test")
    @device_option()
    @pass_app
    def probe(app) -> None:
        click.echo(app.device)

    yield
    cli.commands.pop("device-for-test")


@pytest.mark.parametrize(
    "args, env, expected",
    [
        (["device-for-test"], {}, "auto"),
        (["device-for-test", "--device", "cpu"], {}, "cpu"),
        (["--device", "cuda", "device-for-test"], {}, "cuda"),
        (["--device", "cuda", "device-for-test", "--device", "cpu"], {}, "cpu"),  # the later, nearer one
        (["device-for-test"], {"MNV3_DEVICE": "mps"}, "mps"),
        (["device-for-test", "--device", "cpu"], {"MNV3_DEVICE": "mps"}, "cpu"),
    ],
)
def test_device_is_accepted_before_and_after_the_command(device_probe, args, env, expected):
    assert invoke(*args, env=env).stdout.strip() == expected


@pytest.mark.parametrize("name", ["predict", "evaluate", "profile", "export", "train"])
def test_every_command_that_runs_a_model_takes_the_shared_device_option(name):
    command = cli.get_command(click.Context(cli), name)
    (device,) = [p for p in command.params if p.name == "device"]
    assert device.callback is _set_device and not device.expose_value
    assert list(device.type.choices) == ["auto", "cpu", "cuda", "mps"] and device.default is None


def test_profile_runs_with_device_after_the_command():
    record = json.loads(invoke("profile", "--size", "small", "--runs", "0", "--json", "--device", "cpu").stdout)
    assert record["params"] == 2542856


# The same kind of value reads the same in every command's help.
SPELLED = {
    "--model": "NAME",
    "--weights": "WEIGHTS",
    "--batch-size": ("N", "N[,N...]"),
    "--workers": "N",
    "--top-k": "N",
    "--limit": "N",
    "--epochs": "N",
    "--threads": "N",
    "--runs": "N",
    "--warmup": "N",
    "--resolution": "PIXELS",
    "--image": "FILE",
    "--labels": "FILE",
    "--plot": "FILE",
    "--config": "FILE",
    "--report": "DIR",
    "--val": ("DIR", "PATH"),  # a folder, or (export, train) a manifest
    "--lr": "FLOAT",
    "--width": "FLOAT",
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_one_metavar_per_kind_of_value(name):
    ctx = click.Context(cli, info_name="mnv3")
    command = cli.get_command(ctx, name)
    for param in command.params:
        if isinstance(param, click.Option) and param.opts[0] in SPELLED:
            expected = SPELLED[param.opts[0]]
            assert param.make_metavar(ctx) in ((expected,) if isinstance(expected, str) else expected), param.opts
    text = invoke(name, "--help", columns=200).stdout
    for generic in ("INTEGER", "FLOAT RANGE", "TEXT", "DIRECTORY", " W "):
        assert generic not in text, (name, generic)


def test_output_is_a_file_or_a_folder_and_train_names_its_dir():
    text = {name: invoke(name, "--help", columns=200).stdout for name in ("predict", "export", "train")}
    assert "-o, --output FILE" in text["predict"] and "-o, --output FILE" in text["export"]
    assert "-o, --output DIR" in text["train"] and "train [OPTIONS] [DIR]" in text["train"]
