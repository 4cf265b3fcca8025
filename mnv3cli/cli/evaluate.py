"""``mnv3 evaluate``: accuracy of a model on a labelled folder, with a full report.

The numbers come from :mod:`mnv3cli.evaluation.evaluate`, as an
:class:`~mnv3cli.evaluation.EvaluationSummary` (:mod:`mnv3cli.evaluation.results`, whose rows the
headline table shows); this module parses options, shows progress and lays out tables. Results
go to stdout (rich tables and the "Report: N files" line, or one JSON object with ``--json``),
progress and notes to stderr. Unreadable images are listed and the report is complete, then the
exit status is 1 (partial failure); bad options or folders exit 2.

Under torchrun (``WORLD_SIZE`` > 1) each process evaluates a share of the batches and the merged
numbers equal a one-process run's; only rank 0 prints and writes. Nothing heavy is imported at
module level; the model comes from :func:`~mnv3cli.cli.options.open_model`, like every command's.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import PartialFailure, UserError
from ..printable import plain_lines
from .context import AppContext, pass_app
from .options import (
    backend_option,
    bad_rows_failure,
    batch_size_option,
    device_option,
    fast_decode_option,
    json_option,
    manifest_options,
    model_option,
    open_model,
    precision_option,
    report_bad_rows,
    tta_option,
    weights_option,
    workers_option,
)
from .wrapping import fill

if TYPE_CHECKING:
    from ..evaluation import EvaluationSummary

TABLE_ROWS = 10  # rows per table in the terminal summary; --json and --report hold everything


@click.command("evaluate")
@click.argument("folder", type=click.Path(path_type=Path), metavar="DATA")
@model_option()
@weights_option()
@click.option(
    "--labels",
    type=click.Path(dir_okay=False, path_type=Path),
    help="DATA holds images without class subfolders; FILE is a CSV of path,label rows "
    "(label = class name, WordNet id or class index; paths relative to DATA).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    metavar="N",
    help="Evaluate N images spread evenly over the folder (every class in proportion).",
)
@batch_size_option()
@workers_option()
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Write report.html (one self-contained page), summary.json, per_class.csv, "
    "predictions.csv, confusion.csv and the plots to DIR, replacing an older report there.",
)
@manifest_options("Rows of a manifest to evaluate [default: test if any, else val, else all].")
@json_option("Print the summary as one JSON object on stdout.")
@tta_option()
@backend_option()
@device_option()
@precision_option()
@fast_decode_option()
@pass_app
def command(
    app: AppContext,
    folder: Path,
    model: str | None,
    weights: str | None,
    labels: Path | None,
    limit: int | None,
    batch_size: int,
    workers: int | None,
    report_dir: Path | None,
    classes_file: Path | None,
    allow_absolute_paths: bool,
    split: str | None,
    as_json: bool,
    tta: str,
    backend: str,
    precision: str,
    fast_decode: bool,
) -> None:
    """Measure accuracy on DATA: one subfolder per class (WordNet ids such as n01440764, or the
    model's class names), flat with --labels, or a CSV/JSONL manifest of path,label[,split] rows.

    \b
    Examples:
      mnv3 evaluate imagenet/val -w model.tflite
      mnv3 evaluate data/val -w runs/ants/best.pt --report eval-report
      mnv3 evaluate data.csv --split val -w runs/ants/best.pt
      torchrun --nproc-per-node 4 -m mnv3cli evaluate imagenet/val --json

    Exit status 1 when some images could not be read (the report lists them) or
    manifest rows are bad (listed on stderr).
    """
    from .. import distributed
    from ..data.folders import match_classes
    from ..data.labelled import scan_labelled
    from ..evaluation import check_report_target, evaluate, summary, write_report
    from ..inference import with_tta
    from ..printable import printable_path

    if report_dir is not None:
        check_report_target(report_dir)
    if _multi_label_manifest(folder):  # a sigmoid-head evaluation: mAP, F1 at thresholds
        from .evaluate_multilabel import evaluate_manifest

        runtime = open_model(app, model, weights, backend, precision=precision, pipelined=True)
        options: dict[str, Any] = {"batch_size": batch_size, "workers": workers, "limit": limit, "as_json": as_json}
        options |= {"allow_absolute": allow_absolute_paths, "classes_file": classes_file}
        return evaluate_manifest(app, folder, runtime, options | {"report_dir": report_dir, "tta": tta})
    # a wrong folder or manifest fails before the slow model load
    scanned = scan_labelled(folder, labels, split=split, classes_file=classes_file, allow_absolute=allow_absolute_paths)
    for note in scanned.notes:
        app.info(note)
    report_bad_rows(scanned.problems)
    with distributed.process_group():
        main = distributed.is_main()
        runtime = open_model(
            app,
            model,
            weights,
            backend,
            device=distributed.rank_device(app.device),
            precision=precision,
            pipelined=True,
        )
        found = match_classes(scanned, runtime.card.class_names, runtime.card.wordnet_ids)
        count = min(limit or len(found.samples), len(found.samples))
        if main:
            shards = f" in {distributed.world_size()} processes" if distributed.is_distributed() else ""
            classes = f"{len(found.classes)} class{'es' if len(found.classes) != 1 else ''}"
            app.info(
                fill(
                    f"Evaluating {count} of {len(found.samples)} images ({classes}, "
                    f"{found.layout}) with {runtime.card.model_name} from {runtime.card.source} on "
                    f"{runtime.backend.name}{shards}" + (f", test-time augmentation {tta}" if tta != "none" else ""),
                    whole=(runtime.card.source,),
                )
            )
        with app.progress() if main else contextlib.nullcontext() as progress:
            task = progress.add_task("top-1", total=count) if progress is not None else None

            def on_batch(p) -> None:
                if progress is not None:  # always: on_batch is only passed with a progress display
                    progress.update(
                        task, completed=p.done * (count / max(p.total, 1)), description=f"top-1 {p.top1:5.1f} %"
                    )

            result = evaluate(
                with_tta(runtime.backend, tta),
                found.samples,
                len(runtime.card.class_names),
                runtime.card.preprocess,
                batch_size=batch_size,
                workers=workers,
                fast_decode=fast_decode,
                limit=limit,
                on_batch=on_batch if progress is not None else None,
                distributed=distributed.is_distributed(),
            )
    if not main:
        return
    obj = summary(
        result,
        runtime.card.class_names,
        runtime.card.wordnet_ids,
        temperature=runtime.card.temperature,
        model=runtime.card.model_name,
        weights=printable_path(str(runtime.card.source)),
        backend=runtime.backend.name,
        data=printable_path(folder),
        layout=found.layout,
        tta=tta if tta != "none" else None,
    )
    if as_json:
        app.emit_json(obj.to_dict())
    else:
        _print_summary(app, obj)
    if report_dir is not None:  # after the summary: an unwritable folder must not hide the results
        try:
            written, notes = write_report(report_dir, result, runtime.card.class_names, obj)
        except OSError as exc:  # WriteError says "cannot write DIR: reason"
            raise UserError(f"--report {report_dir}: cannot write the report ({exc.strerror or exc})") from None
        for note in notes:
            app.info(note)
        app.wrote(f"Report: {len(written)} files in {printable_path(report_dir)}", as_json)
    if scanned.problems and not result.errors:
        raise bad_rows_failure(scanned.problems)
    if result.errors:
        raise PartialFailure(
            f"{len(result.errors)} of {result.images + len(result.errors)} images could "
            "not be read (listed in the output" + (" and the report)" if report_dir else ")")
        )


def _multi_label_manifest(path: Path) -> bool:
    """Whether ``path`` is a manifest with a ``labels`` column (read again by the evaluation)."""
    from ..data.manifest import is_manifest, read_manifest
    from ..errors import UserError

    try:  # (absolute paths allowed here: only the columns matter; the real read applies the options)
        return is_manifest(path) and read_manifest(path, allow_absolute=True).multi_label
    except UserError:  # reported by the single-label reader, with the command's options
        return False


def _print_summary(app: AppContext, obj: EvaluationSummary) -> None:
    """Headline numbers, per-class scores (worst first when there are many), mistakes, failures."""
    from rich.table import Table

    from ..evaluation.results import headline

    out = app.out  # the results are the output: stdout, plain text when redirected
    _line(
        out,
        fill(f"{obj.model} ({obj.weights}) on {obj.data} ({obj.layout})", whole=(f"({obj.weights})", obj.data)),
    )  # paths whole
    head = Table(show_header=False)
    head.add_column(style="bold")
    head.add_column(justify="right")
    for name, value in headline(obj, "terminal"):
        head.add_row(name, value)
    out.print(head)

    rows = obj.per_class
    shown = rows if len(rows) <= 2 * TABLE_ROWS else sorted(rows, key=lambda r: (r["f1"], r["index"]))[:TABLE_ROWS]
    title = "Per class" if shown is rows else f"Per class: the {TABLE_ROWS} lowest F1 of {len(rows)}"
    table = Table(title=title)
    for col in ("class", "precision %", "recall %", "F1 %", "support"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for r in shown:
        table.add_row(r["label"], f"{r['precision']:.1f}", f"{r['recall']:.1f}", f"{r['f1']:.1f}", str(r["support"]))
    table.add_section()
    total = sum(r["support"] for r in rows)
    for kind, avg in obj.averages.items():
        table.add_row(
            f"{kind} average",
            f"{avg['precision']:.1f}",
            f"{avg['recall']:.1f}",
            f"{avg['f1']:.1f}",
            str(total),
            style="bold",
        )
    out.print(table)

    coverage = Table(title="Accuracy, most confident first")
    for col in ("answered", "top-1", "min probability"):
        coverage.add_column(col, justify="right")
    for p in obj.calibration["coverage"]:
        if p["coverage"] in (50, 80, 90, 100):
            coverage.add_row(f"{p['coverage']} %", f"{p['top1']:.2f} %", f"{p['min_confidence']:.3f}")
    out.print(coverage)

    if obj.most_confused:
        table = Table(title="Most confused (true -> predicted)")
        for col in ("true", "predicted", "images"):
            table.add_column(col, justify="right" if col == "images" else "left")
        for c in obj.most_confused[:TABLE_ROWS]:
            table.add_row(c["true_label"], c["predicted_label"], str(c["count"]))
        out.print(table)
    # Image paths have lines of their own, never folded into a table cell (copy them whole).
    if obj.confident_mistakes:
        _line(out, "Most confident mistakes (true -> predicted, probability)", "bold")
        for m in obj.confident_mistakes[:TABLE_ROWS]:
            _line(out, _relative(m["path"], obj.data or "."))
            _line(out, f"  {m['true_label']} -> {m['predicted_label']}, {100 * m['probability']:.1f} %")
    if obj.failed:
        _line(out, f"Unreadable images ({len(obj.failed)})", "bold")
        for f in obj.failed[: 2 * TABLE_ROWS]:
            _line(out, f["error"])
        if len(obj.failed) > 2 * TABLE_ROWS:
            _line(out, f"... and {len(obj.failed) - 2 * TABLE_ROWS} more (see --json or --report)")


def _line(out, text: str, style: str | None = None) -> None:
    """One line as it is: no markup, no highlighting, no folding at the terminal's width."""
    from rich.text import Text

    out.print(Text(plain_lines(text), style=style or ""), soft_wrap=True, highlight=False)


def _relative(path: str, folder: str) -> str:
    """Paths inside the evaluated folder are shown relative to it: shorter, still unambiguous."""
    rel = os.path.relpath(path, folder)
    return path if rel.startswith(os.pardir) else rel
