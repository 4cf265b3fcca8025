"""The ``mnv3`` command group: global options, lazy subcommands and the error conventions.

Subcommands live one per module (``mnv3cli.cli.<name>``) and are imported only when invoked, so
``mnv3 --help`` and ``mnv3 CMD --help`` never import torch. Every command reports problems by
raising :class:`~mnv3cli.errors.UserError` (exit 2) or :class:`~mnv3cli.errors.PartialFailure`
(exit 1); :meth:`Mnv3Group.invoke` turns them into one line on stderr, with the traceback only
under ``-v``.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
import traceback

import click

from ..deprecation import renamed_args
from ..errors import Interrupted, PartialFailure, UserError
from ..inference import DEVICE_CHOICES
from ..printable import plain, plain_lines
from .context import AppContext, is_utf8, warn
from .options import conventional_metavars, with_global_options

# name -> (module, short help). The help text is here so that listing commands imports nothing.
COMMANDS: dict[str, tuple[str, str]] = {
    "calibrate": ("mnv3cli.cli.calibrate", "Fit a temperature so that probabilities mean what they say."),
    "completion": ("mnv3cli.cli.completion", "Print the shell completion script for bash, zsh or fish."),
    "convert": ("mnv3cli.cli.convert", "Convert torchvision, timm or TFLite weights to a checkpoint."),
    "doctor": ("mnv3cli.cli.doctor", "Versions, backends, CPU features and cache, for bug reports."),
    "evaluate": ("mnv3cli.cli.evaluate", "Accuracy on labelled images: top-1/5, per class, confusion."),
    "explain": ("mnv3cli.cli.explain", "Grad-CAM heatmaps: where in each image the model found its class."),
    "export": ("mnv3cli.cli.export", "Export to ONNX, OpenVINO IR or TorchScript, checked on torch."),
    "models": ("mnv3cli.cli.models", "List the registered models and their pretrained weights."),
    "predict": ("mnv3cli.cli.predict", "Classify images, folders, globs and URLs: top-k labels per image."),
    "profile": ("mnv3cli.cli.profile", "Parameters, MACs/FLOPs and latency per backend and batch size."),
    "serve": ("mnv3cli.cli.serve", "Classify images over HTTP: API, web page, metrics, batching."),
    "train": ("mnv3cli.cli.train", "Fine-tune or train from scratch on labelled images; resumable."),
}


# the order of `mnv3 --help`: by how often a newcomer needs them, not alphabetical
COMMAND_ORDER = ("predict", "evaluate", "train", "calibrate", "explain", "serve", "export", "convert", "profile")


class Mnv3Group(click.Group):
    """A group whose commands are imported on first use and whose errors follow the conventions."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """:data:`COMMAND_ORDER` first, then the rest (``models``, plugins) alphabetically."""
        rest = sorted((set(COMMANDS) | set(self.commands)) - set(COMMAND_ORDER))
        return [*COMMAND_ORDER, *rest]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:  # commands attached with @cli.command (plugins, tests)
            command = super().get_command(ctx, name)
        else:
            command = importlib.import_module(COMMANDS[name][0]).command
        return conventional_metavars(with_global_options(command)) if command is not None else None

    def resolve_command(self, ctx: click.Context, args: list[str]):
        """Renamed options (:mod:`mnv3cli.deprecation`) reach every command under their new name."""
        name, command, rest = super().resolve_command(ctx, args)
        return name, command, renamed_args(rest, warn)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [
            (name, COMMANDS[name][1] if name in COMMANDS else self.commands[name].get_short_help_str())
            for name in self.list_commands(ctx)
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (UserError, PartialFailure, Interrupted) as exc:
            _report(ctx, exc, "error" if isinstance(exc, UserError) else "warning")
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("mnv3: interrupted", err=True)
            ctx.exit(130)
        except BrokenPipeError:  # the reader of stdout left (`mnv3 predict ... --json | head`)
            _silence_stdout()
            ctx.exit(1)  # as rich does when a table meets a closed pipe
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:  # a bug, not a user error: say so and how to see more
            if _verbose(ctx):
                raise
            click.echo(
                plain(f"mnv3: internal error: {type(exc).__name__}: {exc} (run with -v for the traceback)"), err=True
            )
            ctx.exit(1)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush cannot fail again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor (e.g. under click's CliRunner)
        pass


def _verbose(ctx: click.Context) -> bool:
    obj = ctx.find_object(AppContext)
    return bool(obj and obj.verbose)


def _report(ctx: click.Context, exc: Exception, kind: str) -> None:
    """One line on stderr. Under torchrun every process meets the same bad input, so only rank 0
    says it (the others too with -v, prefixed with their rank)."""
    from .. import distributed

    prefix = "" if distributed.is_main() else f"[rank {distributed.rank()}] "
    if prefix and not _verbose(ctx):
        return
    if _verbose(ctx):
        traceback.print_exception(exc, file=sys.stderr)
    message = str(exc).strip() or type(exc).__name__
    click.echo(f"{prefix}mnv3: {kind}: {plain_lines(message)}", err=True)


@click.group(
    cls=Mnv3Group,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Documentation: docs/index.md in the source tree; every command has --help.",
)
@click.option(
    "-V",
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=lambda ctx, param, value: _print_version(ctx) if value else None,
    help="Show the version and exit.",
)
@click.option("-v", "--verbose", count=True, help="More output; tracebacks on errors.")
@click.option("-q", "--quiet", is_flag=True, help="Only results and errors.")
@click.option(
    "--device",
    type=click.Choice(DEVICE_CHOICES),
    default="auto",
    show_default=True,
    envvar="MNV3_DEVICE",
    help="Where models run (also accepted after the command).",
)
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool, device: str) -> None:
    """mnv3: classify, evaluate, fine-tune and measure MobileNetV3 models.

    \b
      mnv3 predict examples/chelsea.jpg -k 3
    """
    ctx.obj = AppContext(verbose=verbose, quiet=quiet, device=device)


def _print_version(ctx: click.Context) -> None:
    """``--version``: the package version is read only here (see :func:`mnv3cli._read_version`)."""
    from .. import __version__

    click.echo(f"mnv3, version {__version__}")
    ctx.exit()


def _stop_signals_interrupt() -> None:
    """SIGTERM (``kill``, a scheduler) and SIGHUP (a closed terminal) stop a command the way Ctrl-C
    does: KeyboardInterrupt unwinds it, so atomic outputs remove their temporary files and the
    command says "interrupted" (exit 130) instead of vanishing silently. ``mnv3 train`` installs its
    own handlers while it runs (finish the step, save, exit 130). A signal the command was started
    with ignored stays ignored: ``nohup mnv3 ...`` must outlive its terminal."""
    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name) and signal.getsignal(getattr(signal, name)) is not signal.SIG_IGN:
            signal.signal(getattr(signal, name), interrupt)


def _degrade_streams() -> None:
    """A stream that cannot show every character (``LC_ALL=C``, ``PYTHONIOENCODING=ascii``) shows
    the others as ``\\xNN`` escapes instead of ending the command in a UnicodeEncodeError, its
    results lost (Rich already draws ASCII boxes there; ``--json`` escapes as ``\\u00NN``)."""
    for stream in (sys.stdout, sys.stderr):
        if not is_utf8(stream) and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def main() -> None:
    """Console-script entry point."""
    _degrade_streams()
    _stop_signals_interrupt()
    try:
        cli(prog_name="mnv3")
    except KeyboardInterrupt:  # one that arrives while click is already unwinding: still exit 130
        sys.exit(130)
