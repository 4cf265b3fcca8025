"""``mnv3 models``: the registry as a table or JSON (reads registry data only: no torch).

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
        rows.append({
            "name": m.name, "aliases": list(m.aliases), "size": m.size, "width": m.width,
            "minimal": m.minimal, "params": m.params, "macs": m.macs,
            "top1": max((w.top1 for w in m.weights if w.top1 is not None), default=None),
            "default_weights": m.default_weights.tag if m.default_weights else None,
            "weights": [{"tag": w.tag, "url": w.url, "top1": w.top1, "top5": w.top5,
                         "preprocess": w.preprocess.to_dict(), "bundled": _bundled(w)} for w in m.weights],
        })
    return rows


def _bundled(weights) -> dict | None:
    b = weights.bundled
    return b and {"file": b.file, "sha256": b.sha256, "made_from": b.made_from,
                  "made_from_sha256": b.made_from_sha256, "recipe": b.recipe}


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
    from rich.table import Table

    table = Table(title="MobileNetV3 models (MACs at 224x224; top-1 = best published ImageNet-1k)")
    for col, kw in (("name", {}), ("params", {"justify": "right"}), ("MACs", {"justify": "right"}),
                    ("top-1 %", {"justify": "right"}),
                    ("weights (first = imagenet)", {"overflow": "fold"})):
        table.add_column(col, **kw)
    for r in rows:
        name = r["name"] + (f" ({', '.join(r['aliases'])})" if r["aliases"] else "")
        top1 = f"{r['top1']:.2f}" if r["top1"] is not None else "-"
        tags = "\n".join(w["tag"] + (" (built in: the default)" if w["bundled"] else "") for w in r["weights"])
        table.add_row(name, f"{r['params'] / 1e6:.2f} M", f"{r['macs'] / 1e6:.1f} M", top1, tags)
    app.out.print(table)
