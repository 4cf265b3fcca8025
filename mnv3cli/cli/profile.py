"""``mnv3 profile``: parameters, MACs/FLOPs and latency of one or several models, side by side.

The numbers come from :mod:`mnv3cli.profiling.profile`; this module parses options and formats tables,
JSON and the optional plot. The tables (or the JSON) and the "wrote PLOT" line go to stdout; the
progress bar and notes on skipped backends go to stderr. torch is imported only when the command runs.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UserError
from ..rounding import format_significant
from .context import AppContext, pass_app
from .options import device_option, json_option, model_option, weights_option

BACKEND_CHOICES = ("auto", "torch", "eager", "channels_last", "torchscript", "onnxruntime")


def _batch_sizes(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[int, ...]:
    """``--batch-size 1 --batch-size 8`` and ``--batch-size 1,8,32`` alike; order kept, repeats dropped."""
    sizes: list[int] = []
    for value in values or ("1",):
        for part in value.split(","):
            try:
                size = int(part)
            except ValueError:
                raise click.BadParameter(f"{part!r} is not an integer") from None
            if size < 1:
                raise click.BadParameter(f"{size} is not a positive batch size")
            sizes.append(size)
    return tuple(dict.fromkeys(sizes))


def _check_plot_target(path: Path) -> None:
    """Fail before any measuring when the plot cannot be written at all."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UserError(
            f"--plot {path}: matplotlib is not installed; install the 'plot' extra: pip install 'mnv3cli[plot]'"
        ) from None
    from matplotlib.figure import Figure

    fmt = path.suffix.lstrip(".").lower()
    if fmt not in Figure().canvas.get_supported_filetypes():
        raise UserError(f"--plot {path}: unsupported image type {path.suffix or '(none)'!r}; use .png, .svg or .pdf")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--plot {path}: cannot write ({exc.strerror or exc})") from None


@click.command("profile")
@model_option("Registry name or alias (see `mnv3 models`). Default: the default model.", dest="model_name")
@click.option("--size", type=click.Choice(["small", "large"]), help="Shorthand for --model small / --model large.")
@click.option(
    "--width",
    type=click.FloatRange(min=0, max=4, min_open=True),
    help="Width multiplier overriding the registry's (applies to every profiled model); "
    "at most 4 (a Large of 80 M parameters): wider ones only exhaust memory.",
)
@weights_option(
    "Weights to profile: a weights file, or a graph written by mnv3 export (.onnx, "
    "OpenVINO .xml), timed as it is. [default: the registry model, random weights]"
)
@click.option(
    "--resolution",
    "-r",
    type=click.IntRange(16, 4096),
    help="Input height and width in pixels. [default: 224, or the weights' own]",
)
@click.option(
    "--batch-size",
    "-b",
    "batch_sizes",
    multiple=True,
    callback=_batch_sizes,
    metavar="N[,N...]",
    help="Batch size(s) to time; repeat or comma-separate. [default: 1]",
)
@device_option("Where to time the model [default: the global --device, else $MNV3_DEVICE, else auto].")
@click.option(
    "--threads", type=click.IntRange(min=1), help="CPU threads for torch and ONNX Runtime. [default: torch's default]"
)
@click.option(
    "--compare",
    "compare",
    multiple=True,
    metavar="NAME|FILE",
    help="Another model, or an exported .onnx/.xml file (an int8 export, say), to profile "
    "in the same tables; repeatable.",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Labelled image folder (as for evaluate): adds each row's top-1, measured on that "
    "very backend, for rows with real weights.",
)
@click.option(
    "--limit", type=click.IntRange(min=1), help="Measure top-1 on this many --data images (spread over the classes)."
)
@click.option(
    "--backend",
    "backends",
    multiple=True,
    type=click.Choice(BACKEND_CHOICES),
    help="Backend(s) to time; repeatable. auto: the one predict and evaluate pick; torch: "
    "eager. [default: every available one]",
)
@click.option(
    "--runs",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    help="Timed runs per backend and batch size (0: count only, no timing).",
)
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True, help="Untimed runs before timing.")
@click.option("--per-layer", is_flag=True, help="Also show (or include in JSON) every conv/linear layer.")
@json_option("Print JSON on stdout: an object, or a list of objects with --compare.")
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write latency and throughput against batch size to this image (needs matplotlib).",
)
@pass_app
def command(
    app: AppContext,
    model_name: str | None,
    size: str | None,
    weights: str | None,
    width: float | None,
    resolution: int | None,
    batch_sizes: tuple[int, ...],
    threads: int | None,
    compare: tuple[str, ...],
    data_dir: Path | None,
    limit: int | None,
    backends: tuple[str, ...],
    runs: int,
    warmup: int,
    per_layer: bool,
    as_json: bool,
    plot_path: Path | None,
) -> None:
    """Count parameters and MACs/FLOPs and time the model on every available backend.

    \b
    mnv3 profile --size small
    mnv3 profile --model large --batch-size 1,8,32 --threads 2
    mnv3 profile --size small --compare large --compare mobilenetv3_small_075 --runs 20
    mnv3 profile --size small --per-layer --runs 0 --json
    mnv3 profile --weights small.onnx --compare small-int8.onnx --data imagenet/val
    """
    from ..inference.exported import is_exported
    from ..registry import default_model, get_entry

    if model_name and size and get_entry(model_name) is not get_entry(size):
        raise UserError(f"--model {model_name} and --size {size} name different models; give one")
    first = model_name or size or (None if weights else default_model().name)
    items = [(get_entry(first).name if first else None, weights)]  # (registry name, weights)
    items += [(None, n) if is_exported(n) else (get_entry(n).name, None) for n in compare]
    items = list(dict.fromkeys(items))
    if data_dir is not None and runs == 0:
        raise UserError(f"--data {data_dir}: top-1 is measured per timed backend; --runs 0 times none")
    top1_on = _top1_on(data_dir, limit) if data_dir is not None else None
    if plot_path is not None:
        _check_plot_target(plot_path)
        if runs == 0:
            raise UserError(f"--plot {plot_path}: nothing to plot with --runs 0")

    from ..inference import choose_backend, resolve_device
    from ..profiling import backend_availability, profile_model

    auto = choose_backend("auto", app.device)  # what predict and evaluate would use
    aliases = {"torch": "eager", "auto": "eager" if auto == "torch" else auto}
    backends = tuple(dict.fromkeys(aliases.get(b, b) for b in backends))
    torch_device = resolve_device(app.device)
    steps = sum(
        len(backends)
        or sum(why is None for why in backend_availability(torch_device, Path(file) if file else None).values())
        for _, file in items
    ) * len(batch_sizes)
    profiles = []
    with app.progress() as progress:
        task = progress.add_task("profiling", total=steps if runs else 0)
        for name, file in items:

            def on_step(what: str, label: str = file or name) -> None:
                progress.update(task, description=f"{label}: {what}")
                progress.advance(task)

            profiles.append(
                profile_model(
                    name,
                    width=width,
                    resolution=resolution,
                    batch_sizes=batch_sizes,
                    device=torch_device,
                    backends=backends or None,
                    runs=runs,
                    warmup=warmup,
                    threads=threads,
                    on_step=on_step,
                    weights=file,
                    top1_on=top1_on,
                )
            )
    if plot_path is not None:
        try:
            _plot(profiles, plot_path)
        except OSError as exc:
            raise UserError(f"--plot {plot_path}: cannot write ({exc.strerror or exc})") from None
        app.wrote(f"wrote {plot_path}", as_json)
    if as_json:
        records = [p.to_dict(per_layer=per_layer) for p in profiles]
        app.emit_json(records if compare else records[0])
        return
    _print_tables(app, profiles, per_layer)


def _top1_on(data_dir: Path, limit: int | None):
    """``top1_on(runner, card)``: top-1 (percent) of a prepared backend on the --data images."""
    from ..data.folders import match_classes, scan_folder
    from ..evaluation import evaluate

    scanned = scan_folder(data_dir)  # a wrong folder fails before any model is loaded

    def top1_on(runner, card) -> float:
        found = match_classes(scanned, card.class_names, card.wordnet_ids)
        return evaluate(runner, found.samples, card.num_classes, card.preprocess, limit=limit).top1

    return top1_on


# ---------------------------------------------------------------------------------------- formatting
# Every table fits 80 columns with whole cells: model names head the columns of a transposed summary
# (as many models side by side as the terminal holds), and each model gets its own latency table.


def _label(p) -> str:
    """A row's model: its registry name, or the exported file it was timed from."""
    return Path(p.weights).name if p.weights else p.model


def _top1(top1: float | None) -> str:
    return "-" if top1 is None else f"{top1:.1f} %"


def _mib(n: int | None) -> str:
    return "-" if n is None else format_significant(n / 2**20)


def _print_tables(app: AppContext, profiles: list, per_layer: bool) -> None:
    from rich.table import Table

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
            app.info(f"{_label(p)}: skipped {backend}: {why}")


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


def _plot(profiles: list, path: Path) -> None:
    """Median latency and throughput against batch size, one line per model and backend."""
    from matplotlib.figure import Figure

    from ..fileio import atomic_write

    fig = Figure(figsize=(11, 4.5), layout="constrained")
    ax_lat, ax_tput = fig.subplots(1, 2)
    sizes: set[int] = set()
    for p, style in zip(profiles, ("-", "--", ":", "-.") * len(profiles), strict=False):  # style per model
        for backend in dict.fromkeys(s.backend for s in p.latency):  # colour per backend
            stats = sorted((s for s in p.latency if s.backend == backend), key=lambda s: s.batch_size)
            line = {
                "marker": "o",
                "linestyle": style,
                "color": f"C{BACKEND_CHOICES.index(backend)}",
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
