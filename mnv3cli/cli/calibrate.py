"""``mnv3 calibrate``: temperature scaling for any weights, on a labelled folder.

Fits one temperature (the logits are divided by it) that minimises the negative log-likelihood of
the folder's labels, and writes a checkpoint that carries it; predict, evaluate, export and the ONNX
cache apply it. Top-1 never changes. The work is :mod:`mnv3cli.training.calibrate`'s; this module
parses options and prints the result (stdout), progress and notes on stderr.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import PartialFailure
from .context import AppContext, pass_app
from .options import (
    TORCH_WEIGHTS_HELP,
    bad_rows_failure,
    batch_size_option,
    device_option,
    fast_decode_option,
    json_option,
    manifest_options,
    model_option,
    report_bad_rows,
    weights_option,
    workers_option,
)


@click.command("calibrate")
@click.argument("folder", type=click.Path(path_type=Path), metavar="DATA")
@model_option()
@weights_option(TORCH_WEIGHTS_HELP)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Checkpoint to write (.pt, .pth or .safetensors) with the fitted temperature.",
)
@click.option(
    "--labels",
    type=click.Path(dir_okay=False, path_type=Path),
    help="DATA holds images without class subfolders; CSV rows are path,label (as for evaluate).",
)
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="Fit on N images spread evenly over the folder.")
@batch_size_option()
@workers_option()
@manifest_options("Rows of a manifest to fit on [default: val if any, else test, else all].")
@json_option()
@device_option()
@fast_decode_option()
@pass_app
def command(
    app: AppContext,
    folder: Path,
    model: str | None,
    weights: str | None,
    output: Path,
    labels: Path | None,
    limit: int | None,
    batch_size: int,
    workers: int | None,
    classes_file: Path | None,
    allow_absolute_paths: bool,
    split: str | None,
    as_json: bool,
    fast_decode: bool,
) -> None:
    """Fit a temperature for the weights on DATA (a folder or manifest, as for `mnv3 evaluate`) and write -o FILE.

    \b
    Examples:
      mnv3 calibrate data/val -w model.tflite -o calibrated.pt
      mnv3 evaluate data/test -w calibrated.pt

    Use images the model was not trained on (a validation split). Exit status 1 when some images
    could not be read (the others are used).
    """
    from ..data.folders import match_classes
    from ..data.labelled import FITTING_SPLITS, scan_labelled
    from ..errors import UserError
    from ..evaluation import spread_subset
    from ..inference.device import resolve_device
    from ..training.calibrate import calibrate_loaded
    from ..weights.loader import load_model
    from .convert import OUTPUT_SUFFIXES

    if output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise UserError(
            f"--output {output}: unknown checkpoint format {output.suffix or '(none)'!r}; "
            f"use {', '.join(OUTPUT_SUFFIXES)}"
        )
    from .evaluate import _multi_label_manifest

    if _multi_label_manifest(folder):  # a sigmoid head: a temperature per class
        return _calibrate_multilabel(app, folder, load_model(weights, model_name=model), output, as_json, limit)
    scanned = scan_labelled(
        folder,
        labels,
        split=split,
        prefer=FITTING_SPLITS,
        classes_file=classes_file,
        allow_absolute=allow_absolute_paths,
    )
    for note in scanned.notes:
        app.info(note)
    report_bad_rows(scanned.problems)
    loaded = load_model(weights, model_name=model)
    found = match_classes(scanned, loaded.card.class_names, loaded.card.wordnet_ids)
    samples = spread_subset(found.samples, limit)
    app.info(
        f"Calibrating {loaded.card.model_name} from {loaded.card.source} on {len(samples)} images "
        f"({len({target for _, target in samples})} classes)"
    )
    with app.progress() as progress:
        task = progress.add_task("fitting", total=len(samples))
        fit = calibrate_loaded(
            loaded,
            samples,
            output,
            batch_size=batch_size,
            workers=workers,
            device=resolve_device(app.device),
            extra={"calibrated_on": str(folder), "calibrated_from": loaded.card.source},
            on_batch=lambda p: progress.update(task, completed=p.done),
            fast_decode=fast_decode,
        )
    obj = {"weights": loaded.card.source, "output": str(output), "data": str(folder)} | fit.to_dict()
    if as_json:
        app.emit_json(obj)
    else:
        click.echo(f"temperature {fit.temperature:.4f} on {fit.images} images (top-1 {fit.top1:.2f} %, unchanged)")
        click.echo(
            f"ECE {100 * fit.ece_before:.2f} % -> {100 * fit.ece_after:.2f} %, "
            f"NLL {fit.nll_before:.4f} -> {fit.nll_after:.4f}"
        )
    app.wrote(f"wrote {output}", as_json)
    unread = len(samples) - fit.images
    if scanned.problems and not unread:
        raise bad_rows_failure(scanned.problems)
    if unread:
        raise PartialFailure(f"{unread} of {len(samples)} images could not be read (fitted on the rest)")


def _calibrate_multilabel(app: AppContext, data: Path, loaded, output: Path, as_json: bool, limit: int | None) -> None:
    """Per-class temperatures of a multi-label model on a ``labels`` manifest's val/test rows."""
    from ..data.manifest import read_manifest
    from ..errors import UserError
    from ..evaluation import spread_subset
    from ..inference.device import resolve_device
    from ..training.multilabel import calibrate_multilabel
    from .evaluate_multilabel import manifest_samples

    if not loaded.card.multi_label:
        raise UserError(f"{data}: multi-label rows (`labels`), but {loaded.card.source} has a softmax head")
    samples = spread_subset(manifest_samples(read_manifest(data), loaded.card.class_names), limit)
    app.info(f"Calibrating {loaded.card.source} on {len(samples)} images (a temperature per class)")
    fit = calibrate_multilabel(
        loaded,
        samples,
        output,
        device=resolve_device(app.device),
        extra={"calibrated_on": str(data), "calibrated_from": loaded.card.source},
    )
    if as_json:
        app.emit_json({"weights": loaded.card.source, "output": str(output), "data": str(data)} | fit)
    else:
        shown = ", ".join(f"{name} {t:.3g}" for name, t in fit["class_temperatures"].items())
        click.echo(f"temperatures on {fit['images']} images (labels unchanged): {shown}")
        click.echo(f"binary cross-entropy {fit['bce_before']:.4f} -> {fit['bce_after']:.4f}")
    app.wrote(f"wrote {output}", as_json)
