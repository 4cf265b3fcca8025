"""``mnv3 convert IN OUT``: any weights the loader reads -> a self-contained project checkpoint.

The output carries the architecture, class names and preprocessing, so ``--weights OUT`` needs no
other option afterwards. ``.pt``/``.pth`` is a ``torch.save`` checkpoint (loadable with
``weights_only=True``); ``.safetensors`` keeps the same fields as JSON metadata. Training state of an
input checkpoint (optimizer, RNG) is not copied: the result is weights for using, not resuming.

The output depends on nothing but the input's content and the options: it names its input by file
name (with the input's sha256), not by the path it was given, and the writers add no times, so
converting again gives the same bytes (and the same sha256, and ONNX cache entry). That is how the
bundled model is re-derived and checked (``tests/unit/test_bundled.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..errors import UserError
from .context import AppContext, pass_app
from .options import json_option, model_option
from .wrapping import fill

OUTPUT_SUFFIXES = (".pt", ".pth", ".safetensors")
DTYPES = ("float32", "float16")  # mnv3cli.weights.checkpoint.DTYPES (which imports torch)


def _notes(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    """``--meta KEY=VALUE`` options as a dict (the last of a repeated key wins)."""
    notes = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{value!r} is not KEY=VALUE")
        notes[key.strip()] = text
    return notes


@click.command("convert")
@click.argument("source", metavar="WEIGHTS")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Checkpoint to write: .pt, .pth or .safetensors.",
)
@model_option("Registry name or alias [default: inferred from the tensor shapes or metadata].")
@click.option(
    "--dtype",
    type=click.Choice(DTYPES),
    default="float32",
    show_default=True,
    help="Precision the weights are stored in (float16: half the size; computed in float32).",
)
@click.option(
    "--meta",
    "notes",
    metavar="KEY=VALUE",
    multiple=True,
    callback=_notes,
    help="Add a note (licence, source ...) to the output's metadata; repeatable.",
)
@json_option()
@pass_app
def command(
    app: AppContext, source: str, output: Path, model: str | None, dtype: str, notes: dict[str, str], as_json: bool
) -> None:
    """Convert WEIGHTS (a weights file or registry tag) to a .pt or .safetensors checkpoint.

    WEIGHTS: .pt/.pth/.bin (an mnv3, torchvision or timm checkpoint), .safetensors, .tflite, or a
    tag such as imagenet or torchvision:IMAGENET1K_V1 (downloaded into torch.hub's cache).

    \b
    Examples:
      mnv3 convert mobilenet_v3_small_1.0_224_int8.tflite -o small-int8.pt
      mnv3 convert mobilenet_v3_small-047dcff4.pth -o small.safetensors --json
      mnv3 convert imagenet --model small -o small.pt
      mnv3 convert small.pt -o small-fp16.safetensors --dtype float16 \\
          --meta license=Apache-2.0
    """
    if output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise UserError(
            f"{output}: unknown output format {output.suffix or '(none)'!r}; use {', '.join(OUTPUT_SUFFIXES)}"
        )
    from ..weights.checkpoint import save_checkpoint
    from ..weights.download import sha256_file
    from ..weights.loader import load_model

    loaded = load_model(source, model_name=model)
    source_format = loaded.meta.get("format")
    extra = {k: v for k, v in loaded.meta.items() if k != "format"}
    origin = Path(loaded.card.source).name if Path(source).expanduser().is_file() else loaded.card.source
    extra |= {"converted_from": origin, "source_format": source_format, "source_sha256": loaded.card.sha256, **notes}
    try:
        save_checkpoint(
            output, loaded.model, card=loaded.card, extra=extra, dtype=None if dtype == "float32" else dtype
        )
    except OSError as exc:
        raise UserError(f"{output}: cannot write ({exc.strerror or exc})") from None

    kind = "safetensors" if output.suffix.lower() == ".safetensors" else "pt"
    result: dict[str, Any] = {
        "input": source,
        "output": str(output),
        "format": kind,
        "bytes": output.stat().st_size,
        "sha256": sha256_file(output),
        "model": loaded.card.model_name,
        "arch": loaded.card.arch,
        "num_classes": loaded.model.num_classes,
        "source_format": source_format,
        "dtype": dtype,
        "preprocess": loaded.card.preprocess.to_dict(),
    }
    if as_json:
        app.emit_json(result)
        return
    arch = loaded.card.arch
    shape = f"{arch['size']}, width {arch['width']}{', minimalistic' if arch['minimal'] else ''}"
    click.echo(
        fill(
            f"wrote {output} ({kind}, {result['bytes'] / 1e6:.1f} MB): {loaded.card.model_name} "
            f"({shape}), {loaded.model.num_classes} classes, from {source} ({source_format})",
            whole=(output, source, f"({shape})"),
        )
    )
