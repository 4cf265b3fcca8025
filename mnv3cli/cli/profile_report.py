"""How ``mnv3 profile`` shows a :class:`~mnv3cli.profiling.ProfileResult`: tables and the ``--plot`` image.

Every table fits 80 columns with whole cells: model names head the columns of a transposed summary
(as many models side by side as the terminal holds), and each model gets its own latency table.
"""

from __future__ import annotations

from pathlib import Path

from ..rounding import format_significant
from .context import AppContext


def _label(p) -> str:
    """A row's model: its registry name, or the exported file it was timed from."""
    return Path(p.weights).name if p.weights else p.model


def _top1(top1: float | None) -> str:
    return "-" if top1 is None else f"{top1:.1f} %"


def _mib(n: int | None) -> str:
    return "-" if n is None else format_significant(n / 2**20)


def print_tables(app: AppContext, result) -> None:
    """The summary, per-stage (and per-layer) and latency tables on stdout; skipped backends as notes."""
    from rich.table import Table

    profiles, per_layer = result.profiles, result.per_layer
    res = profiles[0].resolution
    app.out.print(f"Parameters and compute at {res}x{res}, one image", highlight=False)
    for chunk in _side_by_side(profiles, app.out.width):
        app.print_whole(_summary(chunk))
    app.out.print(profiles[0].compute.convention, style="dim")
    for p in profiles:
        stages = Table(title=f"{_label(p)}: per stage")
        for col in ("stage", "params", "MACs", "% MACs"):
            stages.add_column(col, justify="left" if col == "stage" else "right")
        for stage, n_params in p.params.per_stage.items():
            macs = p.compute.per_stage.get(stage, 0)
            if n_params or macs:
                stages.add_row(stage, f"{n_params:,}", f"{macs:,}", f"{100 * macs / p.compute.macs:.1f}")
        app.print_whole(stages)
        if per_layer:
            app.print_whole(_layers(p))
    timed = [p for p in profiles if p.latency]
    if timed:
        first = timed[0].latency[0]
        app.out.print(
            f"Latency on {first.device}, {first.threads} thread(s): ms per batch over "
            f"{first.runs} runs after {first.warmup} warm-up",
            highlight=False,
        )
        for p in timed:
            app.print_whole(_latency(p, titled=len(profiles) > 1))
        app.out.print(
            "peak MiB: growth of peak RSS (CPU) or max allocated (CUDA) during warm-up and timed runs",
            style="dim",
            highlight=False,
        )
    for p in profiles:
        for backend, why in p.skipped_backends.items():
            app.info(f"{_label(p)}: skipped {backend}: {why.partition(' (')[0]}")


SUMMARY_ROWS = (
    ("width", lambda p: f"{p.width:g}"),
    ("params", lambda p: f"{p.params.total:,}"),
    ("trainable", lambda p: f"{p.params.trainable:,}"),
    ("fp32 MiB", lambda p: f"{p.params.bytes_fp32 / 2**20:.1f}"),
    ("fp16 MiB", lambda p: f"{p.params.bytes_fp16 / 2**20:.1f}"),
    ("MACs (M)", lambda p: f"{p.compute.macs / 1e6:,.2f}"),
    ("FLOPs (M)", lambda p: f"{p.compute.flops / 1e6:,.2f}"),
    ("eltwise (M)", lambda p: f"{p.compute.elementwise_total / 1e6:,.2f}"),
)


def _side_by_side(profiles: list, width: int) -> list[list]:
    """Consecutive groups of models whose summary columns fit ``width`` together (one at least)."""
    label = max(len(name) for name, _ in SUMMARY_ROWS) + 3  # a cell's padding and border
    chunks: list[list] = []
    used = width
    for p in profiles:
        column = max(len(_label(p)), *(len(cell(p)) for _, cell in SUMMARY_ROWS)) + 3
        if used + column > width:
            chunks.append([])
            used = 1 + label
        chunks[-1].append(p)
        used += column
    return chunks


def _summary(profiles: list):
    """Quantities down, models across: a model's name is a column header, never folded."""
    from rich.table import Table

    table = Table()
    table.add_column("")
    for p in profiles:
        table.add_column(_label(p), justify="right", no_wrap=True)
    for name, cell in SUMMARY_ROWS:
        table.add_row(name, *(cell(p) for p in profiles))
    return table


def _compact(title: str | None):
    """A table without vertical rules, 2 spaces between columns: the wide ones (latency, layers)
    fit 80 columns this way."""
    from rich import box
    from rich.table import Table

    return Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)


def _layers(p):
    """Every Conv2d and Linear layer; MACs in millions (3 significant digits; --json has them exact)."""
    table = _compact(f"{_label(p)}: per layer (Conv2d and Linear; %: share of the MACs)")
    for col in ("layer", "kind", "output", "params", "MACs (M)", "%"):
        table.add_column(col, justify="left" if col in ("layer", "kind") else "right", no_wrap=True)
    for layer in p.compute.layers:
        table.add_row(
            layer.name,
            layer.kind,
            "x".join(map(str, layer.output_shape)),
            f"{layer.params:,}",
            format_significant(layer.macs / 1e6),
            f"{100 * layer.macs / p.compute.macs:.1f}",
        )
    return table


def _latency(p, titled: bool):
    """One row per backend and batch size; times in ms (3 significant digits). With top-1 (--data),
    p90, mean ± std and peak memory give way to it (they stay in --json), so rows fit 80 columns."""
    accuracy = any(s.top1 is not None for s in p.latency)
    table = _compact(_label(p) if titled else None)  # 80 columns even at 5-digit latencies
    columns = (
        "backend",
        "batch",
        "min",
        "median",
        *(() if accuracy else ("p90", "mean ± std")),
        "images/s",
        "top-1" if accuracy else "peak MiB",
    )
    for col in columns:
        table.add_column(col, justify="left" if col == "backend" else "right", no_wrap=True)
    for s in p.latency:
        spread = () if accuracy else (format_significant(s.p90), format_significant(s.mean, plus_minus=s.std))
        table.add_row(
            s.backend,
            str(s.batch_size),
            *map(format_significant, (s.min, s.median)),
            *spread,
            format_significant(s.images_per_s),
            _top1(s.top1) if accuracy else _mib(s.peak_memory_bytes),
        )
    return table


def plot(result, path: Path) -> None:
    """Median latency and throughput against batch size, one line per model and backend; a
    backend's colour is its row's place in the registry, the same in every plot."""
    from matplotlib.figure import Figure

    from ..fileio import atomic_write
    from ..inference.backend_registry import timing_rows

    profiles, rows = result.profiles, timing_rows()
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    ax_lat, ax_tput = fig.subplots(1, 2)
    sizes: set[int] = set()
    for p, style in zip(profiles, ("-", "--", ":", "-.") * len(profiles), strict=False):  # style per model
        for backend in dict.fromkeys(s.backend for s in p.latency):  # colour per backend
            stats = sorted((s for s in p.latency if s.backend == backend), key=lambda s: s.batch_size)
            line = {
                "marker": "o",
                "linestyle": style,
                "color": f"C{rows.index(backend) % 10}",
                "label": f"{_label(p)} {backend}" if len(profiles) > 1 else backend,
            }
            sizes.update(s.batch_size for s in stats)
            ax_lat.plot([s.batch_size for s in stats], [s.median for s in stats], **line)
            ax_tput.plot([s.batch_size for s in stats], [s.images_per_s for s in stats], **line)
    device = profiles[0].latency[0].device
    for ax, ylabel in ((ax_lat, "median latency (ms per batch)"), (ax_tput, "throughput (images/s)")):
        ax.set_xlabel("batch size")
        ax.set_ylabel(ylabel)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(sizes), [str(n) for n in sorted(sizes)])
        ax.minorticks_off()
        ax.grid(True, alpha=0.3)
    ax_lat.set_yscale("log")
    ax_tput.legend(fontsize="small")
    fig.suptitle(f"{', '.join(_label(p) for p in profiles)} at {profiles[0].resolution}px on {device}")
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format=path.suffix.lstrip(".").lower())
