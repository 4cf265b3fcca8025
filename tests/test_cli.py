"""The CLI skeleton: lazy commands, --version, the registry listing, the error conventions."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator

import click
from click.testing import CliRunner

from mnv3cli import __version__
from mnv3cli.cli.app import COMMANDS, cli
from mnv3cli.errors import PartialFailure, UserError
from mnv3cli.registry import list_models


def _imports_after(args: list[str]) -> tuple[set[str], float]:
    code = ("import sys, time; t = time.perf_counter(); from mnv3cli.cli.app import cli\n"
            f"try:\n    cli({args!r}, prog_name='mnv3')\nexcept SystemExit:\n    pass\n"
            "print('\\n' + repr(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'torchvision', 'timm', 'onnxruntime'))), time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    modules, seconds = out.strip().splitlines()[-1].rsplit(" ", 1)
    return set(eval(modules)), float(seconds)


def test_help_never_imports_torch_and_is_fast():
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    torch_import = time.perf_counter() - t0
    for args in (["--help"], *([name, "--help"] for name in COMMANDS)):
        modules, seconds = _imports_after(list(args))
        assert not modules, f"mnv3 {' '.join(args)} imported {sorted(modules)[:5]}"
        assert seconds < torch_import / 5, (args, seconds, torch_import)


def test_version(run_cli):
    result = run_cli("--version")
    assert result.returncode == 0 and __version__ in result.stdout


def test_models_json_lists_the_registry(run_cli):
    result = run_cli("models", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["models"]
    assert [r["name"] for r in rows] == list_models()
    small = rows[0]
    assert small["params"] == 2_542_856 and small["macs"] == 56_510_400 and small["aliases"] == ["small"]
    assert small["weights"][0]["tag"] == "torchvision:IMAGENET1K_V1"


def test_models_table(run_cli):
    result = run_cli("models")
    assert result.returncode == 0
    for name in list_models():
        assert name in result.stdout
    assert "2.54 M" in result.stdout and "56.5 M" in result.stdout


@contextlib.contextmanager
def raising(exc: Exception) -> Iterator[click.Group]:
    """The real ``mnv3`` group plus one command that raises ``exc`` (the conventions' unit test)."""

    @cli.command("raise-for-test")
    def raiser() -> None:
        raise exc

    try:
        yield cli
    finally:
        cli.commands.pop("raise-for-test")


def test_user_error_is_one_line_exit_2_traceback_only_with_verbose():
    runner = CliRunner()
    with raising(UserError("photo.jpg: not an image")) as group:
        quiet = runner.invoke(group, ["raise-for-test"])
        loud = runner.invoke(group, ["-v", "raise-for-test"])
    assert quiet.exit_code == 2
    assert quiet.stderr.strip() == "mnv3: error: photo.jpg: not an image"
    assert loud.exit_code == 2 and "Traceback" in loud.stderr


def test_partial_failure_exits_1():
    with raising(PartialFailure("1 of 3 inputs failed")) as group:
        result = CliRunner().invoke(group, ["raise-for-test"])
    assert result.exit_code == 1 and "1 of 3 inputs failed" in result.stderr


def test_unexpected_exception_is_reported_without_traceback():
    with raising(RuntimeError("boom")) as group:
        result = CliRunner().invoke(group, ["raise-for-test"])
    assert result.exit_code == 1
    assert "internal error: RuntimeError: boom" in result.stderr and "Traceback" not in result.stderr


def test_unknown_command_is_a_usage_error(run_cli):
    result = run_cli("frobnicate")
    assert result.returncode == 2 and "No such command" in result.stderr
