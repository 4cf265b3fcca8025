"""``mnv3 models``: the registry as two tables (models, then weight tags) or JSON; no torch.

The weights shipped inside the package (tag ``bundled``, what predict uses without --model and
--weights) are marked, with how they were made and their sha256.
"""

from __future__ import annotations

import click

from ..registry import MODELS, default_weights, resolve_weights
from .context import AppContext, pass_app
from .options import json_option


def registry_rows() -> list[dict]:
    rows = []
    for m in MODELS:
        rows.append(
            {
                "name": m.name,
                "aliases": list(m.aliases),
                "size": m.size,
                "width": m.width,
                "minimal": m.minimal,
                "params": m.params,
                "macs": m.macs,
                "top1": max((w.top1 for w in m.weights if w.top1 is not None), default=None),
                "default_weights": m.default_weights.tag if m.default_weights else None,
                "weights": [
                    {
                        "tag": w.tag,
                        "url": w.url,
                        "top1": w.top1,
                        "top5": w.top5,
                        "preprocess": w.preprocess.to_dict(),
                        "bundled": _bundled(w),
                    }
                    for w in m.weights
                ],
            }
        )
    return rows


def _bundled(weights) -> dict | None:
    b = weights.bundled
    return b and {
        "file": b.file,
        "sha256": b.sha256,
        "made_from": b.made_from,
        "made_from_sha256": b.made_from_sha256,
        "recipe": b.recipe,
    }


def default_choice() -> dict:
    """What predict, evaluate and export use with neither --model nor --weights."""
    entry, source = resolve_weights(default_weights())
    return {"model": entry.name, "weights": source.tag}


@click.command("models")
@json_option("Print the registry as one JSON object.")
@pass_app
def command(app: AppContext, as_json: bool) -> None:
    """List the registered models and their pretrained weights."""
    rows = registry_rows()
    if as_json:
        app.emit_json({"default": default_choice(), "models": rows})
        return
    app.print_whole(_models_table(rows))
    app.print_whole(_weights_table(rows))


# Two tables, so that each fits 80 columns with whole cells: a tag (up to 46 characters) and a model
# name (29) side by side would not, and a folded tag cannot be copied.


def _models_table(rows: list[dict]):
    from rich.table import Table

    table = Table(title="MobileNetV3 models (MACs at 224x224, best published top-1)")
    for col in ("name", "alias", "params", "MACs", "top-1 %"):
        table.add_column(col, justify="left" if col in ("name", "alias") else "right", no_wrap=True)
    for r in rows:
        top1 = f"{r['top1']:.2f}" if r["top1"] is not None else "-"
        table.add_row(
            r["name"], ", ".join(r["aliases"]), f"{r['params'] / 1e6:.2f} M", f"{r['macs'] / 1e6:.1f} M", top1
        )
    return table


def _weights_table(rows: list[dict]):
    """Each model's name, then its weight tags (the first is the default), published accuracy."""
    from rich.table import Table

    table = Table(title="Weight tags for --weights (each model's first is its default)")
    for col in ("model, then its weight tags", "top-1 %", "top-5 %"):
        table.add_column(col, justify="right" if "%" in col else "left", no_wrap=True)
    for i, r in enumerate(rows):
        if i:
            table.add_section()
        table.add_row(r["name"], style="bold")
        for w in r["weights"]:
            published = (f"{w[k]:.2f}" if w[k] is not None else "-" for k in ("top1", "top5"))
            bundled = " (built in: the default)" if w["bundled"] else ""
            table.add_row(f"  {w['tag']}{bundled}", *published)
    return table
