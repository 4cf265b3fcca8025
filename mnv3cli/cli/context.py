"""The object every command receives (``@pass_app``): global options and the shared output helpers.

The helpers carry the stream rule stated in :mod:`mnv3cli.cli`: ``out``, ``emit_json`` and
``wrote`` write results to stdout and ignore ``-q``; ``console``, ``progress``, ``info`` and
``debug`` write to stderr, and ``-q`` silences them.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import click

from ..printable import plain_lines


def is_utf8(stream) -> bool:
    """Whether ``stream`` can write every character (its encoding is UTF-8, or it has none)."""
    import codecs

    encoding = getattr(stream, "encoding", None)
    try:
        return encoding is None or codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return False


@dataclass
class AppContext:
    verbose: int = 0
    quiet: bool = False
    device: str = "auto"
    _console: Any = field(default=None, repr=False)
    _out: Any = field(default=None, repr=False)

    @property
    def console(self):
        """A rich console on stderr for progress and notes (silenced by ``-q``); results use :attr:`out`."""
        if self._console is None:
            self._console = rich_console(stderr=True, quiet=self.quiet)
        return self._console

    @property
    def out(self):
        """A rich console on stdout for result tables; ``-q`` does not silence it."""
        if self._out is None:
            self._out = rich_console(stderr=False)
        return self._out

    @property
    def interactive(self) -> bool:
        """Progress bars and live displays only when a person is watching stderr."""
        return not self.quiet and sys.stderr.isatty()

    def progress(self, **kwargs):
        """A rich Progress on stderr, disabled (but still usable) when not interactive."""
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        columns = (
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        return Progress(*columns, console=self.console, disable=not self.interactive, transient=True, **kwargs)

    def print_whole(self, renderable) -> None:
        """Print a result table on stdout without breaking any cell: tables are laid out to fit 80
        columns, but should one still be wider than the terminal, it is printed at its natural width
        (the terminal wraps the line) rather than folding a path, a tag or a number."""
        from rich.measure import Measurement

        out = self.out
        natural = Measurement.get(out, out.options.update_width(10_000), renderable).maximum
        if natural <= out.width:
            out.print(renderable)
            return
        width, out.width = out.width, natural  # print() itself never goes beyond the console width
        try:
            out.print(renderable)
        finally:
            out.width = width

    def info(self, message: str) -> None:
        """A human-oriented status line on stderr (suppressed by ``-q``)."""
        if not self.quiet:
            click.echo(plain_lines(message), err=True)

    def debug(self, message: str) -> None:
        if self.verbose and not self.quiet:
            click.echo(plain_lines(message), err=True)

    def wrote(self, message: str, as_json: bool = False) -> None:
        """The "wrote FILE" line naming what a command made: a result, so stdout, whatever ``-q``
        says; with ``--json`` stdout holds only JSON, and the line becomes a note on stderr."""
        if as_json:
            self.info(message)
        else:
            click.echo(plain_lines(message))

    @staticmethod
    def emit_json(obj: Any) -> None:
        """One JSON document (or one JSON line of a stream) on stdout."""
        text = json.dumps(obj, ensure_ascii=not is_utf8(sys.stdout), allow_nan=False, default=_json_default)
        click.echo(text)


def warn(message: str) -> None:
    """Something the user should change (a deprecated name): ``mnv3: warning: ...`` on stderr,
    also under ``-q``, which hides progress and notes, not what needs acting on."""
    click.echo(f"mnv3: warning: {message}", err=True)


def rich_console(stderr: bool, quiet: bool = False):
    """A rich console that prints every string as plain text (see :func:`plain_console`). Off a
    terminal (a pipe, a file) rich would assume 80 columns and fold long paths and wide tables;
    there it gets ``$COLUMNS`` or 160 columns instead."""
    width = None
    if not (sys.stderr if stderr else sys.stdout).isatty():
        columns = os.environ.get("COLUMNS", "")
        width = int(columns) if columns.isdigit() and int(columns) > 0 else 160
    return plain_console()(stderr=stderr, quiet=quiet, width=width, markup=False, emoji=False)


@functools.cache
def plain_console():
    """The Console class of every command: the strings it prints (table cells, titles, lines) are
    labels and paths that files and folders chose, so none is read as markup (``[/]``) or emoji
    code (``:cat:``), and control characters but line breaks are shown escaped (:func:`~mnv3cli.printable.plain_lines`).
    ``Text`` objects are printed as they are: build them from :func:`~mnv3cli.printable.plain` text."""
    from rich.console import Console

    class PlainConsole(Console):
        def render_str(self, text: str, **kwargs):
            kwargs.update(markup=False, emoji=False)
            return super().render_str(plain_lines(text), **kwargs)

    return PlainConsole


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "__fspath__"):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


pass_app = click.make_pass_decorator(AppContext)
