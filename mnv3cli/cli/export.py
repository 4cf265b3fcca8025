"""``mnv3 export``: write a model as ONNX, OpenVINO IR or TorchScript, then prove the file computes
the same logits.

ONNX and IR graphs are static for the resolution (every padding computed at export, the batch axis
dynamic) and carry the weights' class names and preprocessing, so they work as ``--weights``.

The export is run once on a real, preprocessed image (``--image``, or a generated photo-like
picture) through both the written file and PyTorch; the largest logit difference is printed.
Exit status: 0 when it is at most 1e-4; 1 when it is larger (the file is kept for inspection but
should not be trusted); 2 for bad options or weights.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from ..errors import PartialFailure, UserError
from ..inference import DEFAULT_OPSET
from ..inference.backend_registry import export_formats, get_export_format  # entries only: no engine
from ..inference.results import ExportResult, Int8ExportResult
from ..rounding import significant
from .context import AppContext, pass_app
from .export_checks import check_export_output, check_int8
from .export_output import int8_lines, print_export_result
from .options import (
    TORCH_WEIGHTS_HELP,
    RegistryChoice,
    bad_rows_failure,
    device_option,
    json_option,
    manifest_options,
    model_option,
    report_bad_rows,
    weights_option,
)
from .wrapping import fill

DEFAULT_CALIBRATION = 300  # the same as mnv3cli.inference.int8's, without importing it for --help
MIN_OPSET, MAX_OPSET = 14, 20  # HardSwish needs 14; torch's TorchScript-based exporter stops at 20


@click.command("export")
@click.option(
    "--format",
    "-f",
    "fmt",
    type=RegistryChoice(lambda: sorted(export_formats())),
    default="onnx",
    show_default=True,
    help="ONNX (ONNX Runtime and other engines), OpenVINO IR (NAME.xml + "
    "NAME.bin; needs mnv3cli[openvino]) or TorchScript.",
)
@model_option()
@weights_option(TORCH_WEIGHTS_HELP)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write [default: MODEL.onnx, MODEL.xml or MODEL.pt in the current directory].",
)
@click.option(
    "--opset",
    type=click.IntRange(MIN_OPSET, MAX_OPSET),
    default=DEFAULT_OPSET,
    show_default=True,
    help="ONNX opset version.",
)
@click.option(
    "--resolution",
    "-r",
    type=click.IntRange(32, 4096),
    help="Input height and width [default: the weights' own, usually 224]. The batch axis "
    "is dynamic; ONNX fixes the spatial size.",
)
@click.option(
    "--image",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Photo to verify the export on [default: a generated photo-like image].",
)
@device_option(
    "Accepted like every command's; the export and its check run on the CPU (the file does not depend on the device)."
)
@click.option(
    "--int8",
    is_flag=True,
    help="Quantize to int8 (onnx, openvino; needs mnv3cli[int8]); written only when a 95 % upper "
    "confidence bound of its top-1 drop on the held-out labelled images is within --max-drop.",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(exists=True, path_type=Path),
    help="--int8: labelled image folder or manifest (as for evaluate) to calibrate on; "
    "without --val, half of it (class by class) is held out to measure top-1.",
)
@click.option(
    "--val",
    "val_dir",
    type=click.Path(exists=True, path_type=Path),
    help="--int8: labelled folder or manifest to measure top-1 on (never calibrated on); a 1-point "
    "certificate needs at least 595 images.",
)
@click.option(
    "--max-drop",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="--int8: the most top-1 points int8 may lose against fp32 (95 % upper confidence "
    "bound on the held-out images).",
)
@click.option(
    "--calibration",
    type=click.IntRange(min=1),
    default=DEFAULT_CALIBRATION,
    show_default=True,
    help="--int8: calibration images (class-balanced) from --data.",
)
@manifest_options("Rows of a --data manifest [default: train if any, else all]; a --val one reads test, else val.")
@json_option()
@pass_app
def command(
    app: AppContext,
    fmt: str,
    model: str | None,
    weights: str,
    output: Path | None,
    opset: int,
    resolution: int | None,
    image: Path | None,
    int8: bool,
    data_dir: Path | None,
    val_dir: Path | None,
    max_drop: float,
    calibration: int,
    classes_file: Path | None,
    allow_absolute_paths: bool,
    split: str | None,
    as_json: bool,
) -> None:
    """Export a model to ONNX, OpenVINO IR or TorchScript and verify it against PyTorch.

    \b
    Examples:
      mnv3 export --model small --weights imagenet
      mnv3 export -w mobilenet_v3_small_1.0_224_int8.tflite -o small.onnx \\
          --image cat.jpg
      mnv3 export --format openvino --weights imagenet --model small -o small.xml
      mnv3 export --format torchscript --model large -o large.pt
      mnv3 export -f openvino --int8 --data imagenet/train-sample \\
          --val imagenet/val -o small-int8.xml

    Exit status 1 when the file's logits differ from PyTorch's by more than 1e-4 (the file is kept
    for inspection), or when --int8 cannot be certified within --max-drop (nothing is written);
    2 for bad options, weights or --image.
    """
    from ..data import open_rgb
    from ..inference import TOLERANCE, export_verified
    from ..model import with_temperature
    from ..registry import default_weights
    from ..weights.loader import load_model

    if app.device not in ("auto", "cpu"):
        app.info(f"--device {app.device}: the export and its check run on the CPU; the file runs anywhere")
    if image is not None:
        open_rgb(image)  # a bad --image is a UserError before any work
    runner, export = get_export_format(fmt)
    if runner.unavailable() is not None:  # the file is run once to verify it
        raise UserError(f"--format {fmt}: {runner.unavailable()}")
    if int8:
        check_int8(fmt, data_dir)
    elif data_dir or val_dir:
        raise UserError(f"--{'data' if data_dir else 'val'}: only used with --int8")
    loaded = load_model(weights, model_name=model)
    preprocess = loaded.card.preprocess.at_resolution(resolution)  # keeps the weights' crop ratio
    output = output or Path(loaded.card.model_name + ("-int8" if int8 else "") + export.suffix)
    check_export_output(output, fmt, export.suffix, export.companions, {"--weights": weights, "--image": image})
    if int8 and data_dir is not None:  # always both: _check_int8 required --data
        return _export_int8(
            app,
            loaded,
            replace(loaded.card, preprocess=preprocess),
            fmt,
            output,
            data_dir,
            val_dir,
            max_drop,
            calibration,
            opset,
            as_json,
            {"classes_file": classes_file, "allow_absolute": allow_absolute_paths, "split": split},
        )

    try:
        difference = export_verified(
            with_temperature(loaded.model, loaded.card.temperature, loaded.card.class_temperatures),
            output,
            preprocess,
            fmt,
            opset=opset,
            image=image,
            card=loaded.card,
        )
    except OSError as exc:
        raise UserError(f"{output}: cannot write ({exc.strerror or exc})") from None

    result = ExportResult(
        format=fmt,
        output=str(output),
        bytes=_bytes(output, export),
        model=loaded.card.model_name,
        weights=weights or default_weights(model),
        source=loaded.card.source,
        opset=opset if export.opset else None,
        input_shape=["batch", 3, preprocess.input_size, preprocess.input_size],
        preprocess=preprocess.to_dict(),
        temperature=loaded.card.temperature,
        verified_on=str(image) if image else "generated image",
        max_abs_diff=significant(difference),
        tolerance=TOLERANCE,
        ok=difference <= TOLERANCE,
    )
    if as_json:
        app.emit_json(result.to_dict())
    else:
        print_export_result(result, export.description.format(opset=opset), difference)
    if difference > TOLERANCE:
        raise PartialFailure(
            f"{output}: differs from PyTorch by {difference:.3g} > {TOLERANCE:g}; "
            "the file is kept for inspection but should not be used"
        )


def _bytes(output: Path, export) -> int:
    """The size of the written file and of its companions (IR's .bin)."""
    return sum(f.stat().st_size for f in (output, *(output.with_suffix(s) for s in export.companions)))


def _export_int8(
    app: AppContext,
    loaded,
    card,
    fmt: str,
    output: Path,
    data_dir: Path,
    val_dir: Path | None,
    max_drop: float,
    calibration: int,
    opset: int,
    as_json: bool,
    manifest: dict,
) -> None:
    """Quantize, certify on held-out images, report; exit 1 (nothing written) when not certified.
    A --data manifest gives its train rows (else all), a --val one its test (else val) rows."""
    from ..data.labelled import labelled_samples
    from ..inference.int8 import export_int8, split

    names, ids = card.class_names, card.wordnet_ids
    samples, problems = labelled_samples(data_dir, names, ids, prefer=("train",), **manifest)
    val, bad_val = labelled_samples(val_dir, names, ids, **(manifest | {"split": None})) if val_dir else (None, ())
    problems += bad_val
    report_bad_rows(problems)
    cal, held_out = split(samples, calibration, val)
    if not cal or not held_out:
        raise UserError(
            f"--data {data_dir}: too few images to calibrate on and hold out "
            f"({len(samples)} found; give more, or --val)"
        )
    try:
        result = export_int8(
            loaded.model,
            card,
            output,
            fmt,
            cal,
            held_out,
            max_drop=max_drop,
            opset=opset,
            on_step=lambda step: app.info(fill(step)),
        )
    except OSError as exc:
        raise UserError(f"{output}: cannot write ({exc.strerror or exc})") from None
    m = result.measured
    runner, export = get_export_format(fmt)
    record = Int8ExportResult(
        format=fmt,
        output=str(output),
        bytes=_bytes(output, export),
        model=loaded.card.model_name,
        source=loaded.card.source,
        input_shape=["batch", 3, card.preprocess.input_size, card.preprocess.input_size],
        preprocess=card.preprocess.to_dict(),
        calibration_images=result.calibration_images,
        held_out_images=m.n,
        fp32_top1=m.fp32_top1,
        int8_top1=m.int8_top1,
        drop=m.drop,
        upper_bound=m.upper_bound(result.confidence),
        confidence=0.95,
        step_confidence=result.confidence,
        discordant_images=m.discordant,
        max_drop=max_drop,
        opset=opset,
        steps=result.steps,
        layers=result.layers,
        kept_in_float=[layer.label for layer in result.kept],
        latency_ms={k: {str(b): v for b, v in d.items()} for k, d in result.latency_ms.items()},
    )
    if as_json:
        app.emit_json(record.to_dict())
    else:
        for line in int8_lines(record, export.title, runner.title):
            click.echo(fill(line, whole=(output,)))
    if problems:
        raise bad_rows_failure(problems)
