"""``mnv3 explain``: where the model looked, as a Grad-CAM heatmap over each image.

For every IMAGE: the top-k (a table on stdout, or one JSON line with ``--json``) and
``OUT/<name>.gradcam.png``, the heatmap of the top-1 class (or ``--class``) over the image as the
model saw it. The maps come from :mod:`mnv3cli.inference.explain` (the pytorch-grad-cam library, an
optional extra); a missing extra, a bad ``--class`` or bad weights exit 2 before any image is read;
an unreadable image is reported and the others go on (exit 1).
"""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import PartialFailure, UserError
from ..printable import plain
from .context import AppContext, pass_app
from .options import (
    TORCH_WEIGHTS_HELP,
    device_option,
    fast_decode_option,
    json_option,
    model_option,
    top_k_option,
    weights_option,
)


@click.command("explain")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@model_option()
@weights_option(TORCH_WEIGHTS_HELP)
@click.option(
    "--class",
    "class_name",
    metavar="LABEL",
    help="Explain this class (name, WordNet id or index) instead of each image's top-1.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("gradcam"),
    show_default=True,
    help="Folder for the heatmaps (NAME.gradcam.png per image), made if missing.",
)
@top_k_option()
@json_option("One JSON line per image on stdout.")
@device_option()
@fast_decode_option()
@pass_app
def command(
    app: AppContext,
    images: tuple[Path, ...],
    model: str | None,
    weights: str | None,
    class_name: str | None,
    output: Path,
    top_k: int,
    as_json: bool,
    fast_decode: bool,
) -> None:
    """Grad-CAM heatmaps: where in each IMAGE the model found its top-1 class (or --class LABEL).

    \b
    Examples:
      mnv3 explain cat.jpg
      mnv3 explain photos/*.jpg -w runs/ants/best.pt --class bees -o cams --json

    Needs the explain extra: pip install 'mnv3cli[explain]'.
    """
    from ..data.folders import ClassMatcher
    from ..data.images import ImageDecodeError
    from ..fileio import atomic_write
    from ..inference.device import resolve_device
    from ..inference.explain import explain, require_grad_cam
    from ..printable import printable_path
    from ..weights.loader import load_model

    require_grad_cam()
    loaded = load_model(weights, model_name=model)
    target = None
    if class_name is not None:
        found = ClassMatcher(loaded.card.class_names, loaded.card.wordnet_ids).match(class_name, allow_index=True)
        if found is None:
            raise UserError(
                f"--class {class_name}: not a class of {loaded.card.model_name} "
                f"({loaded.card.num_classes} classes; a class name, WordNet id or index)"
            )
        target = found[0]
    device = resolve_device(app.device)
    failed, used = 0, set[str]()
    for image in images:
        try:
            result = explain(
                loaded.model,
                loaded.card.preprocess,
                image,
                target,
                temperature=loaded.card.temperature,
                device=device,
                top_k=top_k,
                fast_decode=fast_decode,
            )
        except ImageDecodeError as exc:
            failed += 1
            click.echo(f"mnv3: error: {plain(str(exc))}", err=True)
            continue
        path = _free_name(output, image, used)
        with atomic_write(path, "wb") as fh:
            result.overlay().save(fh, format="PNG")
        top5 = [{"index": c, "label": loaded.card.label(c), "probability": float(f"{p:.6g}")} for c, p in result.top5]
        if as_json:
            app.emit_json(
                {
                    "path": printable_path(image),
                    "class": loaded.card.label(result.target),
                    "index": result.target,
                    "heatmap": printable_path(path),
                    "predictions": top5,
                }
            )
            continue
        _print(app, printable_path(image), top5)
        app.wrote(f"wrote {printable_path(path)}: Grad-CAM of {loaded.card.label(result.target)!r}")
    if failed:
        raise PartialFailure(f"{failed} of {len(images)} image(s) could not be read")


def _free_name(folder: Path, image: Path, used: set) -> Path:
    """``NAME.gradcam.png``; images of the same name in one run get ``NAME-2.gradcam.png`` ..."""
    stem, n = image.stem, 1
    while (name := f"{stem}{'' if n == 1 else f'-{n}'}.gradcam.png") in used:
        n += 1
    used.add(name)
    return folder / name


def _print(app: AppContext, title: str, top5: list[dict]) -> None:
    """The image's path on a line of its own (a table title was padded with spaces to the table's
    width, and a long path folded inside it), then its top-5 table."""
    from rich.table import Table
    from rich.text import Text

    app.out.print(Text(title, style="bold"), soft_wrap=True)
    table = Table()
    for col in ("#", "label", "index", "probability"):
        table.add_column(col, justify="left" if col == "label" else "right")
    for rank, p in enumerate(top5, 1):
        table.add_row(str(rank), p["label"], str(p["index"]), f"{100 * p['probability']:.2f} %")
    app.out.print(table)
