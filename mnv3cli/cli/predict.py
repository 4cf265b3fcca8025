"""``mnv3 predict``: top-k labels for images, folders, globs, stdin lists and URLs.

Results stream in input order: rich tables on stdout for people, JSON lines for scripts (``--json``),
or a CSV/JSONL file (``--output``: streamed to FILE.part and renamed when complete, continued by
``--resume``; see :mod:`mnv3cli.prediction.results_file`). A bad input is reported (stderr line or
error record) and the rest still run; any failure makes the exit status 1. Under torchrun each
process classifies a share of the batches and rank 0 prints and writes everything. Nothing heavy
is imported at module level (``mnv3 predict --help`` stays instant); the model comes from
:func:`~mnv3cli.cli.options.open_model`, like every command's.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from pathlib import Path

import click

from ..errors import Interrupted, PartialFailure, UserError, WriteError
from ..printable import plain
from ..rounding import format_seconds, format_significant
from .context import AppContext, pass_app
from .options import (
    allow_absolute_paths_option,
    backend_option,
    batch_size_option,
    device_option,
    fast_decode_option,
    json_option,
    model_option,
    open_model,
    precision_option,
    top_k_option,
    tta_option,
    weights_option,
    workers_option,
)
from .predict_sinks import progress_bar, result_sinks

OUTPUT_FORMATS = (".csv", ".jsonl")


@click.command("predict")
@click.argument("inputs", nargs=-1, required=True)
@model_option()
@weights_option()
@top_k_option()
@batch_size_option()
@workers_option()
@json_option("JSON lines on stdout, one per input, in order.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the results to FILE (.csv or .jsonl) instead of tables; "
    "streamed to FILE.part, renamed to FILE when complete.",
)
@click.option(
    "--resume", is_flag=True, help="Continue an interrupted --output: keep the results in FILE.part, classify the rest."
)
@click.option(
    "--min-confidence",
    type=click.FloatRange(0, 1),
    metavar="P",
    help="Answer 'unknown' when the top probability is below P (0-1); the top-k are still listed.",
)
@click.option(
    "--sort-into",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Put every input under DIR/<answer>/ (names kept, nothing overwritten) and write DIR/sorted.csv.",
)
@click.option(
    "--mode",
    type=click.Choice(["copy", "hardlink", "symlink"]),
    default=None,
    help="How --sort-into places files [default: copy].",
)
@allow_absolute_paths_option()
@tta_option()
@backend_option()
@device_option()
@precision_option()
@fast_decode_option()
@pass_app
def command(
    app: AppContext,
    inputs: tuple[str, ...],
    model: str | None,
    weights: str | None,
    top_k: int,
    batch_size: int,
    workers: int | None,
    as_json: bool,
    output: Path | None,
    resume: bool,
    min_confidence: float | None,
    sort_into: Path | None,
    mode: str | None,
    allow_absolute_paths: bool,
    tta: str,
    backend: str,
    precision: str,
    fast_decode: bool,
) -> None:
    """Classify INPUTS: image files, folders (recursively), glob patterns, URLs, - (paths on stdin) or manifests.

    \b
    Examples:
      mnv3 predict photo.jpg
      mnv3 predict 'holiday/**/*.jpg' --json > labels.jsonl
      find . -name '*.png' | mnv3 predict - -o labels.csv
      torchrun --nproc-per-node 4 -m mnv3cli predict archive/ -o a.csv --resume
      mnv3 predict inbox/ --min-confidence 0.6 --sort-into sorted/

    Exit status 1 when some inputs could not be read (the others are classified).
    """
    if output is not None and output.suffix.lower() not in OUTPUT_FORMATS:
        raise UserError(f"--output {output}: unknown format; use a .csv or .jsonl file name")
    if resume and output is None:
        raise UserError("--resume continues an --output FILE; give the same --output")
    if mode is not None and sort_into is None:
        raise UserError(f"--mode {mode}: only means something with --sort-into DIR")
    if sort_into is not None and sort_into.exists() and not sort_into.is_dir():
        raise UserError(f"--sort-into {sort_into}: exists and is not a folder")
    from .. import distributed
    from ..data.inputs import expand_inputs

    with distributed.process_group():
        # rank 0 reads the inputs (stdin included) and the earlier output; every rank gets them
        sources = distributed.on_main(lambda: expand_inputs(inputs, allow_absolute=allow_absolute_paths))
        runtime = open_model(
            app,
            model,
            weights,
            backend,
            device=distributed.rank_device(app.device),
            # no busy-waiting ORT threads: many batches need the cores for decoding; for one batch,
            # spinning saved < 1 ms of model time and burnt ~90 ms of CPU (measured, one photo)
            pipelined=True,
            precision=precision,
            # one image runs the model once, at batch 1: a single thread answers as fast (measured
            # 2.7 ms either way) and spares starting a pool of them (~30 ms on 2 cores, more on more)
            threads=1 if len(sources) == 1 else None,
        )
        top_k = min(top_k, len(runtime.card.class_names))  # no empty label columns in --output FILE.csv
        failed = 0
        with contextlib.ExitStack() as stack:
            results = (
                _open_output(stack, output, top_k, min_confidence is not None, runtime.card.multi_label)
                if distributed.is_main()
                else None
            )
            resumed = distributed.on_main(lambda: _begin(app, results, sources, resume))
            sorter = _sorter(sort_into, mode) if sort_into and distributed.is_main() else None
            # the inputs its list holds (a resumed list may lack the last results): placed from there on
            listed = distributed.on_main(
                lambda: stack.enter_context(sorter).open(sources, resume, resumed.complete) if sorter else len(sources)
            )
            if min(resumed.done, listed) < len(sources):
                failed = _classify(
                    app,
                    stack,
                    runtime,
                    sources,
                    (resumed, listed),
                    results,
                    as_json,
                    sorter,
                    tta,
                    top_k=top_k,
                    batch_size=batch_size,
                    workers=workers,
                    fast_decode=fast_decode,
                    min_confidence=min_confidence,
                )
            listing = sorter.write_csv() if sorter is not None else None
    if not distributed.is_main():
        return
    if results is not None and resumed.complete:
        app.info(f"{output} already holds the results of all {len(sources)} input(s)")
    elif results is not None:
        app.wrote(f"wrote {results.written} result(s) to {output}", as_json)
    failed += resumed.failed
    if listing is not None and sorter is not None:
        verb = {"copy": "copied", "hardlink": "linked (hard)", "symlink": "linked (symbolic)"}[sorter.mode]
        app.wrote(f"{verb} {sorter.placed} file(s) into {sort_into}; list in {listing}", as_json)
    if failed:
        raise PartialFailure(f"{failed} of {len(sources)} input(s) failed")


def _sorter(sort_into: Path, mode: str | None):
    from ..prediction import SortInto  # here: a predict without --sort-into spares its module

    return SortInto(sort_into, mode or "copy")


def _open_output(stack: contextlib.ExitStack, output: Path | None, top_k: int, answers: bool, labels: bool):
    if output is None:
        return None
    from ..prediction import ResultsFile

    try:
        return stack.enter_context(ResultsFile(output, top_k, answers, labels))
    except OSError as exc:
        raise UserError(f"--output {output}: cannot write ({exc.strerror or exc})") from None


def _begin(app: AppContext, results, sources: Sequence, resume: bool):
    """On rank 0: what an earlier run left (with ``--resume``), and the output file opened after it."""
    from ..prediction import Resumed

    if results is None:
        return Resumed()
    if not resume:
        if results.unfinished():
            app.info(f"replacing the unfinished {results.part} (--resume continues it instead)")
        results.start()
        return Resumed()
    resumed = results.resume(sources)
    if not resumed.complete:
        if resumed.done:
            app.info(f"resuming: {resumed.done} of {len(sources)} result(s) already in {results.part}")
        results.start(resumed)
    return resumed


def _classify(
    app: AppContext,
    stack: contextlib.ExitStack,
    runtime,
    sources: Sequence,
    done_listed: tuple,
    results,
    as_json: bool,
    sorter,
    tta: str,
    *,
    top_k: int,
    **options,
) -> int:
    """Classify the inputs after the first ``(resumed, listed)`` ones; rank 0 shows and writes every
    result after the ``resumed`` ones and files those after the ``listed`` ones under ``--sort-into``.
    Returns how many of them failed."""
    from .. import distributed
    from ..inference import with_tta
    from ..prediction import predict

    main, (resumed, listed) = distributed.is_main(), done_listed
    first = min(resumed.done, listed)
    todo = sources[first:]
    sinks = result_sinks(app, as_json, results, options.get("min_confidence")) if main else []
    long_job = main and len(todo) > options["batch_size"]
    show = progress_bar(app, stack, len(sources), resumed) if long_job else None
    failed = 0
    start = time.perf_counter()
    try:
        for n, result in enumerate(
            predict(
                todo,
                with_tta(runtime.backend, tta),
                runtime.card.preprocess,
                runtime.card.class_names,
                top_k=top_k,
                distributed=distributed.is_distributed(),
                thresholds=runtime.card.decision_thresholds() if runtime.card.multi_label else None,
                **options,
            ),
            1,
        ):
            if first + n > resumed.done:  # else already in the results file (a list to catch up)
                failed += result.error is not None
                for sink in sinks:
                    sink(result)
            placed = sorter.place(result, todo[n - 1]) if sorter is not None and first + n > listed else None
            if placed is not None and not placed.destination and result.error is None:
                failed += 1
                click.echo(f"mnv3: error: {plain(placed.error)}", err=True)
            if show:
                show(n, failed)
        seconds = time.perf_counter() - start
        if results is not None and not resumed.complete:  # the last records may still be in the buffer
            results.finish()
    except KeyboardInterrupt:
        if results is None or not results.written:
            raise
        raise Interrupted(
            f"interrupted after {results.written} of {len(sources)} result(s); kept "
            f"them in {results.part}. Resume with: the same command and --resume"
        ) from None
    except WriteError as exc:  # a full disk: what reached the file stays, in whole records
        if results is None or not results.on_disk():
            raise
        raise UserError(
            f"{exc}; the results written before are kept in it: make room and run the same command with --resume"
        ) from None
    done = len(todo) - failed
    (app.info if app.interactive else app.debug)(
        f"{done} image(s) classified in {format_seconds(seconds)} "
        f"({format_significant(done / max(seconds, 1e-9))} images/s)"
    )
    return failed
