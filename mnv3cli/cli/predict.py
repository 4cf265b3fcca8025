"""``mnv3 predict``: top-k labels for images, folders, globs, stdin lists and URLs.

Results stream in input order: rich tables on stdout for people, JSON lines for scripts (``--json``),
or a CSV/JSONL file (``--output``, written atomically). A bad input is reported (stderr line or error
record) and the rest still run; any failure makes the exit status 1.

Nothing heavy is imported at module level (``mnv3 predict --help`` stays instant); the model
comes from :func:`~mnv3cli.cli.options.open_model`, like every command's.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import click

from ..errors import PartialFailure, UserError
from .context import AppContext, pass_app
from .options import (
    backend_option,
    batch_size_option,
    fast_decode_option,
    json_option,
    model_option,
    open_model,
    precision_option,
    weights_option,
    workers_option,
)

OUTPUT_FORMATS = (".csv", ".jsonl")


@click.command("predict")
@click.argument("inputs", nargs=-1, required=True)
@model_option()
@weights_option()
@click.option("--top-k", "-k", type=click.IntRange(min=1), default=5, show_default=True,
              help="Labels per image.")
@batch_size_option()
@workers_option()
@json_option("JSON lines on stdout, one per input, in order.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the results to FILE.csv or FILE.jsonl (instead of tables).")
@backend_option()
@precision_option()
@fast_decode_option()
@pass_app
def command(app: AppContext, inputs: tuple[str, ...], model: str | None, weights: str | None,
            top_k: int, batch_size: int, workers: int | None, as_json: bool, output: Path | None,
            backend: str, precision: str, fast_decode: bool) -> None:
    """Classify INPUTS: image files, folders (recursively), glob patterns, URLs, or - (paths on stdin).

    \b
      mnv3 predict photo.jpg
      mnv3 predict 'holiday/**/*.jpg' --json > labels.jsonl
      find . -name '*.png' | mnv3 predict - --output labels.csv
    """
    if output is not None and output.suffix.lower() not in OUTPUT_FORMATS:
        raise UserError(f"--output {output}: unknown format; use a .csv or .jsonl file name")
    from ..data.inputs import expand_inputs
    from ..evaluation import predict

    sources = expand_inputs(inputs)
    runtime = open_model(app, model, weights, backend, pipelined=len(sources) > batch_size,
                         precision=precision)
    runner, class_names, preprocess = runtime.backend, runtime.class_names, runtime.preprocess
    top_k = min(top_k, len(class_names))  # no empty label columns in --output FILE.csv

    failed = 0
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        sinks = _sinks(app, stack, as_json, output, top_k)
        advance = _progress(app, stack, len(sources)) if len(sources) > batch_size else None
        for result in predict(sources, runner, preprocess, class_names, top_k=top_k,
                              batch_size=batch_size, workers=workers, fast_decode=fast_decode,
                              progress=advance):
            failed += result.error is not None
            for sink in sinks:
                sink(result)
    seconds = time.perf_counter() - start
    done = len(sources) - failed
    (app.info if app.interactive else app.debug)(
        f"{done} image(s) classified in {seconds:.2f} s ({done / max(seconds, 1e-9):.1f} images/s)")
    if output is not None:
        app.wrote(f"wrote {len(sources)} result(s) to {output}", as_json)
    if failed:
        raise PartialFailure(f"{failed} of {len(sources)} input(s) failed")


def _sinks(app: AppContext, stack: contextlib.ExitStack, as_json: bool, output: Path | None,
           top_k: int) -> list[Callable]:
    """Where each result goes: JSON lines or tables on stdout, error lines on stderr, the file."""
    sinks: list[Callable] = []
    if output is not None:
        try:
            sinks.append(stack.enter_context(_file_sink(output, top_k)))
        except OSError as exc:
            raise UserError(f"--output {output}: cannot write ({exc.strerror or exc})") from None
    if as_json:
        sinks.append(lambda r: app.emit_json(r.to_dict()))
        return sinks
    if output is None:
        console = app.out  # stdout: the results are the command's output

        def print_table(result) -> None:
            if result.error is None:
                console.print(_table(result))

        sinks.append(print_table)

    def print_error(result) -> None:
        if result.error is not None:
            click.echo(f"mnv3: error: {result.error}", err=True)

    sinks.append(print_error)
    return sinks


def _progress(app: AppContext, stack: contextlib.ExitStack, total: int) -> Callable[[int], None]:
    # When stdout is the same terminal, rich prints results above the bar; when it is a pipe or a
    # file, it must not capture them.
    bar = stack.enter_context(app.progress(redirect_stdout=sys.stdout.isatty()))
    task = bar.add_task("classifying", total=total)
    return lambda n: bar.advance(task, n)


def _table(result):
    from rich.table import Table

    table = Table(title=result.path, title_justify="left", title_style="bold")
    table.add_column("#", justify="right")
    table.add_column("label", min_width=24)
    table.add_column("index", justify="right")
    table.add_column("probability", justify="right")
    for rank, p in enumerate(result.predictions, 1):
        table.add_row(str(rank), p.label, str(p.index), f"{100 * p.probability:.2f} %")
    return table


@contextlib.contextmanager
def _file_sink(path: Path, top_k: int) -> Iterator[Callable]:
    """Write results to ``path`` (.jsonl: the ``--json`` objects; .csv: one row per input)."""
    import csv
    import json

    from ..fileio import atomic_write

    if path.suffix.lower() == ".jsonl":
        with atomic_write(path, "w", encoding="utf-8") as fh:
            yield lambda r: fh.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
        return
    with atomic_write(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", *[f"{field}_{rank}" for rank in range(1, top_k + 1)
                                   for field in ("label", "index", "probability")], "error"])
        yield lambda r: writer.writerow(_csv_row(r, top_k))


def _csv_row(result, top_k: int) -> Sequence:
    cells = [result.path]
    for p in result.to_dict().get("predictions", []):
        cells += [p["label"], p["index"], p["probability"]]
    cells += [""] * (1 + 3 * top_k - len(cells))
    return cells + [result.error or ""]
