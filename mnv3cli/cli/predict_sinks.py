"""Where ``mnv3 predict``'s results go: a table per image (with a multi-label model, the line of
labels at or above their thresholds), JSON lines, the ``--output`` file, error lines on stderr;
and the progress bar beside them."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable

import click

from ..printable import plain
from .context import AppContext


def result_sinks(app: AppContext, as_json: bool, results, min_confidence: float | None = None) -> list[Callable]:
    """Where each result goes: JSON lines or tables on stdout, error lines on stderr, the file."""
    sinks: list[Callable] = []
    if results is not None:
        sinks.append(results.write)
    if as_json:
        sinks.append(lambda r: app.emit_json(r.to_dict()))
        return sinks
    if results is None:
        from rich.text import Text

        console = app.out  # stdout: the results are the command's output

        def print_table(result) -> None:
            if result.error is None:  # the path on its own line, never folded, then its labels
                console.print(Text(plain(result.shown_path), style="bold"), soft_wrap=True, highlight=False)
                console.print(_table(result))
                if result.labels is not None:  # a multi-label model: the labels at or above their thresholds
                    shown = ", ".join(f"{p.label} {100 * p.probability:.1f} %" for p in result.labels)
                    console.print(Text(plain(f"labels: {shown or 'none above the thresholds'}")), soft_wrap=True)
                elif result.answer is not None and min_confidence and result.answer != result.predictions[0].label:
                    console.print(
                        f"answer: {result.answer} (top probability below {100 * min_confidence:g} %)",
                        soft_wrap=True,
                        highlight=False,
                    )

        sinks.append(print_table)

    def print_error(result) -> None:
        if result.error is not None:
            click.echo(f"mnv3: error: {plain(result.to_dict()['error'])}", err=True)

    sinks.append(print_error)
    return sinks


def _table(result):
    from rich.table import Table

    table = Table()
    table.add_column("#", justify="right")
    table.add_column("label", min_width=24)
    table.add_column("index", justify="right")
    table.add_column("probability", justify="right")
    for rank, p in enumerate(result.predictions, 1):
        table.add_row(str(rank), p.label, str(p.index), f"{100 * p.probability:.2f} %")
    return table


def progress_bar(app: AppContext, stack: contextlib.ExitStack, total: int, resumed) -> Callable[[int, int], None]:
    """A bar on stderr (when it is a terminal): results so far, images/s, errors so far, ETA."""
    # When stdout is the same terminal, rich prints results above the bar; when it is a pipe or a
    # file, it must not capture them.
    bar = stack.enter_context(app.progress(redirect_stdout=sys.stdout.isatty()))
    task = bar.add_task("classifying", total=total, completed=resumed.done)
    start = time.perf_counter()

    def show(done: int, failed: int) -> None:
        rate = done / max(time.perf_counter() - start, 1e-9)
        bar.update(
            task, completed=resumed.done + done, description=f"{rate:.1f} images/s, {resumed.failed + failed} failed"
        )

    return show
