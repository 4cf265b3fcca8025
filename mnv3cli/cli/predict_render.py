"""What ``mnv3 predict`` shows on the terminal besides its results' text: the progress bar and
the top-k table of one image (kept apart from the command so that each file stays small)."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable

from .context import AppContext


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


def top_k_table(result):
    from rich.table import Table

    table = Table()
    table.add_column("#", justify="right")
    table.add_column("label", min_width=24)
    table.add_column("index", justify="right")
    table.add_column("probability", justify="right")
    for rank, p in enumerate(result.predictions, 1):
        table.add_row(str(rank), p.label, str(p.index), f"{100 * p.probability:.2f} %")
    return table
