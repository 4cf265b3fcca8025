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
from ..rounding import significant
from .context import AppContext, pass_app
from .export_checks import check_export_output
from .options import TORCH_WEIGHTS_HELP, device_option, json_option, model_option, weights_option
from .wrapping import fill

FORMATS = {"onnx": ".onnx", "openvino": ".xml", "torchscript": ".pt"}
DEFAULT_CALIBRATION = 300  # the same as mnv3cli.inference.int8's, without importing it for --help
DESCRIPTIONS = {"onnx": "ONNX opset {opset}", "openvino": "OpenVINO IR, f32", "torchscript": "TorchScript (frozen)"}
MIN_OPSET, MAX_OPSET = 14, 20  # HardSwish needs 14; torch's TorchScript-based exporter stops at 20


@click.command("export")
@click.option(
    "--format",
    "-f",
    "fmt",
    type=click.Choice(sorted(FORMATS)),
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
    help="Quantize to int8 (onnx, openvino; needs mnv3cli[int8]), certified on labelled "
    "images to lose at most --max-drop points of top-1.",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="--int8: labelled image folder (as for evaluate) to calibrate on; without --val, "
    "half of it (class by class) is held out to measure top-1.",
)
@click.option(
    "--val",
    "val_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="--int8: labelled folder to measure top-1 on (never calibrated on).",
)
@click.option(
    "--max-drop",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="--int8: the most top-1 points int8 may lose against fp32.",
)
@click.option(
    "--calibration",
    type=click.IntRange(min=1),
    default=DEFAULT_CALIBRATION,
    show_default=True,
    help="--int8: calibration images (class-balanced) from --data.",
)
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
    as_json: bool,
) -> None:
    """Export a model to ONNX, OpenVINO IR or TorchScript and verify it against PyTorch.

    \b
      mnv3 export --model small --weights imagenet
      mnv3 export --weights mobilenet_v3_small_1.0_224_int8.tflite -o small.onnx --image cat.jpg
      mnv3 export --format openvino --weights imagenet --model small -o small.xml
      mnv3 export --format torchscript --model large -o large.pt
      mnv3 export -f openvino --int8 --data imagenet/train-sample --val imagenet/val -o small-int8.xml
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
    if fmt == "openvino":
        from ..inference import openvino_backend

        if not openvino_backend.available():
            raise UserError(f"--format openvino: OpenVINO is not installed ({openvino_backend.INSTALL})")
    if int8:
        _check_int8(fmt, data_dir)
    elif data_dir or val_dir:
        raise UserError(f"--{'data' if data_dir else 'val'}: only used with --int8")
    loaded = load_model(weights, model_name=model)
    preprocess = loaded.preprocess.at_resolution(resolution)  # keeps the weights' crop ratio
    output = output or Path(loaded.model_name + ("-int8" if int8 else "") + FORMATS[fmt])
    check_export_output(output, fmt, FORMATS[fmt], {"--weights": weights, "--image": image})
    if int8:
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
        )

    try:
        difference = export_verified(
            with_temperature(loaded.model, loaded.temperature),
            output,
            preprocess,
            fmt,
            opset=opset,
            image=image,
            card=loaded.card,
        )
    except OSError as exc:
        raise UserError(f"{output}: cannot write ({exc.strerror or exc})") from None

    files = [output, output.with_suffix(".bin")] if fmt == "openvino" else [output]
    result = {
        "format": fmt,
        "output": str(output),
        "bytes": sum(f.stat().st_size for f in files),
        "model": loaded.model_name,
        "weights": weights or default_weights(model),
        "source": loaded.source,
        "opset": opset if fmt != "torchscript" else None,
        "input_shape": ["batch", 3, preprocess.input_size, preprocess.input_size],
        "preprocess": preprocess.to_dict(),
        "temperature": loaded.temperature,
        "verified_on": str(image) if image else "generated image",
        "max_abs_diff": significant(difference),
        "tolerance": TOLERANCE,
        "ok": difference <= TOLERANCE,
    }
    if as_json:
        app.emit_json(result)
    else:
        what = DESCRIPTIONS[fmt].format(opset=opset)
        click.echo(
            fill(
                f"wrote {output} ({what}, {result['bytes'] / 1e6:.1f} MB): {loaded.model_name}, "
                f"input [batch, 3, {preprocess.input_size}, {preprocess.input_size}]",
                whole=(output,),
            )
        )
        click.echo(
            fill(
                f"largest logit difference from PyTorch on {result['verified_on']} (batch of 2): "
                f"{difference:.2e} (tolerance {TOLERANCE:g})",
                whole=(result["verified_on"],),
            )
        )
    if difference > TOLERANCE:
        raise PartialFailure(
            f"{output}: differs from PyTorch by {difference:.3g} > {TOLERANCE:g}; "
            "the file is kept for inspection but should not be used"
        )


def _check_int8(fmt: str, data_dir: Path | None) -> None:
    from importlib.util import find_spec

    if fmt == "torchscript":
        raise UserError("--int8: only for --format onnx or openvino")
    if data_dir is None:
        raise UserError(
            "--int8: needs --data DIR, labelled images to calibrate on (and to measure top-1 on, without --val)"
        )
    if find_spec("nncf") is None:
        raise UserError("--int8: NNCF is not installed (pip install 'mnv3cli[int8]')")


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
) -> None:
    """Quantize, certify on held-out images, report; exit 1 (nothing written) when not certified."""
    from ..data.folders import find_samples
    from ..inference.int8 import PairedDrop, export_int8, split

    samples = find_samples(data_dir, card.class_names, card.wordnet_ids).samples
    val = find_samples(val_dir, card.class_names, card.wordnet_ids).samples if val_dir else None
    cal, held_out = split(samples, calibration, val)
    if not cal or not held_out:
        raise UserError(
            f"--data {data_dir}: too few images to calibrate on and hold out "
            f"({len(samples)} found; give more, or --val)"
        )
    need = PairedDrop.min_images(max_drop)
    if len(held_out) < need:
        raise UserError(
            f"--{'val' if val_dir else 'data'} {val_dir or data_dir}: {len(held_out)} held-out image(s) cannot "
            f"certify --max-drop {max_drop:g}: "
            + (f"it needs at least {need} (one image is 100/N points of top-1)" if max_drop else "no number can")
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
    files = [output, output.with_suffix(".bin")] if fmt == "openvino" else [output]
    record = {
        "format": fmt,
        "int8": True,
        "output": str(output),
        "bytes": sum(f.stat().st_size for f in files),
        "model": loaded.model_name,
        "source": loaded.source,
        "input_shape": ["batch", 3, card.preprocess.input_size, card.preprocess.input_size],
        "preprocess": card.preprocess.to_dict(),
        "calibration_images": result.calibration_images,
        "held_out_images": m.n,
        "fp32_top1": m.fp32_top1,
        "int8_top1": m.int8_top1,
        "drop": m.drop,
        "noise": m.noise,
        "images_needed": m.images_needed(max_drop),
        "max_drop": max_drop,
        "opset": opset,
        "steps": result.steps,
        "layers": result.layers,
        "kept_in_float": [layer.label for layer in result.kept],
        "latency_ms": {k: {str(b): v for b, v in d.items()} for k, d in result.latency_ms.items()},
    }
    if as_json:
        app.emit_json(record)
        return
    what = "OpenVINO IR" if fmt == "openvino" else "ONNX"
    size = card.preprocess.input_size
    lines = [
        f"wrote {output} ({what}, int8, {record['bytes'] / 1e6:.1f} MB): {loaded.model_name}, "
        f"input [batch, 3, {size}, {size}]",
        f"top-1 on {m.n} held-out images: fp32 {m.fp32_top1:.1f} %, int8 {m.int8_top1:.1f} %, "
        f"drop {m.drop:.2f} ± {m.noise:.2f} points (budget {max_drop:g}; the noise needs "
        f"{record['images_needed']} images)",
        f"kept in float: {len(result.kept)} of {result.layers} layers: {', '.join(record['kept_in_float']) or 'none'}",
    ]
    runtime = "OpenVINO" if fmt == "openvino" else "ONNX Runtime"
    lines += [
        f"latency ({runtime}, batch {batch}): fp32 {result.latency_ms['fp32'][batch]:.2f} ms, "
        f"int8 {result.latency_ms['int8'][batch]:.2f} ms"
        for batch in sorted(result.latency_ms["fp32"])
    ]
    for line in lines:
        click.echo(fill(line, whole=(output,)))
