"""``mnv3 evaluate MANIFEST`` for a multi-label model: mAP, micro/macro F1, per-class AP, precision
and recall at the thresholds stored in the model's card (terminal tables, ``--json``, ``--report``).

Reached from :mod:`.evaluate` when the data is a manifest with a ``labels`` column. The rows of the
``test`` split are scored (else ``val``, else all). The manifest's classes are matched to the
model's by name; a class the model does not know is a user error (its AP could not be measured).
"""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import PartialFailure, UserError
from ..printable import plain, printable_path
from .context import AppContext


def manifest_samples(manifest, class_names) -> list[tuple[str, tuple[float, ...]]]:
    """``(path, multi-hot over the model's classes)`` of the rows to score."""
    index = {name: i for i, name in enumerate(class_names)}
    unknown = [c for c in manifest.classes if c not in index]
    if unknown:
        raise UserError(
            f"{plain(str(manifest.source))}: class(es) the model does not know: {', '.join(map(plain, unknown[:5]))}"
        )
    rows = manifest.split(manifest.default_eval_split())
    out = []
    for row in rows:
        hot = [0.0] * len(class_names)
        for label in row.labels:
            hot[index[label]] = 1.0
        out.append((str(row.path), tuple(hot)))
    return out


def evaluate_manifest(app: AppContext, data: Path, runtime, options: dict) -> None:
    """Score ``runtime`` (a sigmoid-head model) on manifest ``data`` and report."""
    from ..data.manifest import read_manifest
    from ..evaluation.multilabel_eval import evaluate_multilabel
    from ..evaluation.multilabel_report import multilabel_summary, write_multilabel_report
    from ..inference import with_tta

    manifest = read_manifest(
        data, classes_file=options.get("classes_file"), allow_absolute=options.get("allow_absolute", False)
    )
    for problem in manifest.problems:
        click.echo(f"mnv3: warning: {plain(problem)}", err=True)  # a bad row: partial failure, the rest goes on
    card = runtime.card
    if not card.multi_label:
        raise UserError(
            f"{plain(str(data))}: multi-label rows (`labels`), but {card.source} has a softmax (single-label) "
            "head; train one with `mnv3 train MANIFEST` (a `labels` manifest) or --multi-label"
        )
    samples = manifest_samples(manifest, card.class_names)
    app.info(f"Evaluating {len(samples)} images ({len(card.class_names)} labels, multi-label) from {card.source}")
    found = evaluate_multilabel(
        with_tta(runtime.backend, options.get("tta", "none")),
        samples,
        card.class_names,
        card.preprocess,
        thresholds=card.decision_thresholds(),
        batch_size=options["batch_size"],
        workers=options["workers"],
        limit=options["limit"],
    )
    summary = multilabel_summary(
        found,
        model=card.model_name,
        weights=printable_path(str(card.source)),
        backend=runtime.backend.name,
        data=printable_path(data),
    )
    if options["as_json"]:
        app.emit_json(summary)
    else:
        _print(app, summary)
    if options["report_dir"] is not None:
        written = write_multilabel_report(options["report_dir"], found, summary)
        app.wrote(f"Report: {len(written)} files in {printable_path(options['report_dir'])}", options["as_json"])
    if found.base.errors or manifest.bad_rows:
        raise PartialFailure(
            f"{len(found.base.errors)} image(s) could not be read and {manifest.bad_rows} manifest row(s) were bad"
        )


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _print(app: AppContext, s: dict) -> None:
    from rich.table import Table

    out = app.out
    head = Table(show_header=False)
    head.add_column(style="bold")
    head.add_column(justify="right")
    for name, key in (("mAP %", "map"), ("micro F1 %", "micro_f1"), ("macro F1 %", "macro_f1")):
        head.add_row(name, _pct(s[key]))
    head.add_row("images", str(s["images"]))
    out.print(head)
    table = Table(title="Per class (at the card's thresholds)")
    for col in ("class", "AP %", "prec. %", "recall %", "F1 %", "support", "threshold"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for r in s["per_class"]:
        table.add_row(
            plain(r["label"]),
            _pct(r["ap"]),
            _pct(r["precision"]),
            _pct(r["recall"]),
            _pct(r["f1"]),
            str(r["support"]),
            f"{r['threshold']:.3g}",
        )
    out.print(table)
    for f in s["failed"]:
        out.print(plain(f["error"]), markup=False, highlight=False, soft_wrap=True)
