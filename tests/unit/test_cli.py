"""The CLI skeleton: lazy commands, --version, the registry listing, the error conventions."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import click
from click.testing import CliRunner

from mnv3cli.cli.app import cli
from mnv3cli.errors import PartialFailure, UserError


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
