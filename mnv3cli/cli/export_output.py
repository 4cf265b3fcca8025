"""What ``mnv3 export`` prints for its typed results (kept apart from the command so that each
file stays small; ``--json`` prints the results' ``to_dict()`` instead)."""

from __future__ import annotations

import click

from ..inference.results import Int8ExportResult
from .wrapping import fill


def print_export_result(result, what: str, difference: float) -> None:
    """The terminal's two lines for an :class:`~mnv3cli.inference.ExportResult`."""
    size = result.input_shape[-1]
    click.echo(
        fill(
            f"wrote {result.output} ({what}, {result.bytes / 1e6:.1f} MB): {result.model}, "
            f"input [batch, 3, {size}, {size}]",
            whole=(result.output,),
        )
    )
    click.echo(
        fill(
            f"largest logit difference from PyTorch on {result.verified_on} (batch of 2): "
            f"{difference:.2e} (tolerance {result.tolerance:g})",
            whole=(result.verified_on,),
        )
    )


def int8_lines(r: Int8ExportResult, what: str, runtime: str) -> list[str]:
    """The terminal's lines for an :class:`~mnv3cli.inference.Int8ExportResult`."""
    size = r.input_shape[-1]
    return [
        f"wrote {r.output} ({what}, int8, {r.bytes / 1e6:.1f} MB): {r.model}, input [batch, 3, {size}, {size}]",
        f"top-1 on {r.held_out_images} held-out images: fp32 {r.fp32_top1:.1f} %, int8 {r.int8_top1:.1f} %, "
        f"drop {r.drop:.2f} points; 95 % upper confidence bound {r.upper_bound:.2f} points "
        f"(score bound; they disagree on {r.discordant_images} images), within --max-drop {r.max_drop:g}",
        f"kept in float: {len(r.kept_in_float)} of {r.layers} layers: {', '.join(r.kept_in_float) or 'none'}",
        *(
            f"latency ({runtime}, batch {batch}): fp32 {r.latency_ms['fp32'][batch]:.2f} ms, "
            f"int8 {r.latency_ms['int8'][batch]:.2f} ms"
            for batch in sorted(r.latency_ms["fp32"], key=int)
        ),
    ]
