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

from pathlib import Path

import click

from ..errors import PartialFailure, UserError
from ..inference import DEFAULT_OPSET
from .context import AppContext, pass_app
from .options import json_option, model_option, weights_option

FORMATS = {"onnx": ".onnx", "openvino": ".xml", "torchscript": ".pt"}
DESCRIPTIONS = {"onnx": "ONNX opset {opset}", "openvino": "OpenVINO IR, f32",
                "torchscript": "TorchScript (frozen)"}
MIN_OPSET, MAX_OPSET = 14, 20  # HardSwish needs 14; torch's TorchScript-based exporter stops at 20


@click.command("export")
@click.option("--format", "-f", "fmt", type=click.Choice(sorted(FORMATS)), default="onnx",
              show_default=True, help="ONNX (ONNX Runtime and other engines), OpenVINO IR (NAME.xml + "
                                      "NAME.bin; needs mnv3cli[openvino]) or TorchScript.")
@model_option()
@weights_option("A registry tag or a weights file (.pt/.pth/.safetensors/.tflite).", default="imagenet")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="File to write [default: MODEL.onnx, MODEL.xml or MODEL.pt in the current "
                   "directory].")
@click.option("--opset", type=click.IntRange(MIN_OPSET, MAX_OPSET), default=DEFAULT_OPSET,
              show_default=True, help="ONNX opset version.")
@click.option("--resolution", "-r", type=click.IntRange(32, 4096),
              help="Input height and width [default: the weights' own, usually 224]. The batch axis "
                   "is dynamic; ONNX fixes the spatial size.")
@click.option("--image", type=click.Path(dir_okay=False, path_type=Path),
              help="Photo to verify the export on [default: a generated photo-like image].")
@json_option()
@pass_app
def command(app: AppContext, fmt: str, model: str | None, weights: str, output: Path | None,
            opset: int, resolution: int | None, image: Path | None, as_json: bool) -> None:
    """Export a model to ONNX, OpenVINO IR or TorchScript and verify it against PyTorch.

    \b
      mnv3 export --model small --weights imagenet
      mnv3 export --weights mobilenet_v3_small_1.0_224_int8.tflite -o small.onnx --image cat.jpg
      mnv3 export --format openvino --weights imagenet --model small -o small.xml
      mnv3 export --format torchscript --model large -o large.pt
    Exit status 1 when the file's logits differ from PyTorch's by more than 1e-4 (the file is kept
    for inspection), 2 for bad options, weights or --image.
    """
    from ..data import open_rgb
    from ..inference import TOLERANCE, export_verified
    from ..weights.loader import load_model

    if image is not None:
        open_rgb(image)  # a bad --image is a UserError before any work
    if fmt == "openvino":
        from ..inference import openvino_backend

        if not openvino_backend.available():
            raise UserError(f"--format openvino: OpenVINO is not installed ({openvino_backend.INSTALL})")
    loaded = load_model(weights, model_name=model)
    preprocess = loaded.preprocess.at_resolution(resolution)  # keeps the weights' crop ratio
    output = output or Path(loaded.model_name + FORMATS[fmt])

    try:
        difference = export_verified(loaded.model, output, preprocess, fmt, opset=opset, image=image,
                                     card=loaded.card)
    except OSError as exc:
        raise UserError(f"{output}: cannot write ({exc.strerror or exc})") from None

    files = [output, output.with_suffix(".bin")] if fmt == "openvino" else [output]
    result = {"format": fmt, "output": str(output), "bytes": sum(f.stat().st_size for f in files),
              "model": loaded.model_name, "weights": weights, "source": loaded.source,
              "opset": opset if fmt != "torchscript" else None,
              "input_shape": ["batch", 3, preprocess.input_size, preprocess.input_size],
              "preprocess": preprocess.to_dict(), "verified_on": str(image) if image else "generated image",
              "max_abs_diff": difference, "tolerance": TOLERANCE, "ok": difference <= TOLERANCE}
    if as_json:
        app.emit_json(result)
    else:
        what = DESCRIPTIONS[fmt].format(opset=opset)
        click.echo(f"wrote {output} ({what}, {result['bytes'] / 1e6:.1f} MB): {loaded.model_name}, "
                   f"input [batch, 3, {preprocess.input_size}, {preprocess.input_size}]")
        click.echo(f"largest logit difference from PyTorch on {result['verified_on']} (batch of 2): "
                   f"{difference:.2e} (tolerance {TOLERANCE:g})")
    if difference > TOLERANCE:
        raise PartialFailure(f"{output}: differs from PyTorch by {difference:.3g} > {TOLERANCE:g}; "
                             "the file is kept for inspection but should not be used")
