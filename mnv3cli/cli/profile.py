"""``mnv3 profile``: parameters, MACs/FLOPs and latency of one or several models, side by side.

The numbers come from :mod:`mnv3cli.profiling.profile`; this module parses options and formats tables,
JSON and the optional plot. The tables (or the JSON) and the "wrote PLOT" line go to stdout; the
progress bar and notes on skipped backends go to stderr. torch is imported only when the command runs.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UserError
from .context import AppContext, pass_app
from .options import json_option, model_option, weights_option

BACKEND_CHOICES = ("auto", "torch", "eager", "channels_last", "torchscript", "onnxruntime", "openvino")


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
        raise UserError(f"--plot {path}: matplotlib is not installed; "
                        "install the 'plot' extra: pip install 'mnv3cli[plot]'") from None
    from matplotlib.figure import Figure

    fmt = path.suffix.lstrip(".").lower()
    if fmt not in Figure().canvas.get_supported_filetypes():
        raise UserError(f"--plot {path}: unsupported image type {path.suffix or '(none)'!r}; use .png, "
                        ".svg or .pdf")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--plot {path}: cannot write ({exc.strerror or exc})") from None


@click.command("profile")
@model_option("Registry name or alias (see `mnv3 models`). Default: the default model.", dest="model_name")
@click.option("--size", type=click.Choice(["small", "large"]),
              help="Shorthand for --model small / --model large.")
@click.option("--width", type=click.FloatRange(min=0, max=4, min_open=True),
              help="Width multiplier overriding the registry's (applies to every profiled model); "
                   "at most 4 (a Large of 80 M parameters): wider ones only exhaust memory.")
@weights_option("Weights to profile: a weights file, or a graph written by mnv3 export (.onnx, "
                "OpenVINO .xml), timed as it is. [default: the registry model, random weights]")
@click.option("--resolution", "-r", type=click.IntRange(16, 4096),
              help="Input height and width in pixels. [default: 224, or the weights' own]")
@click.option("--batch-size", "-b", "batch_sizes", multiple=True, callback=_batch_sizes,
              metavar="N[,N...]", help="Batch size(s) to time; repeat or comma-separate. [default: 1]")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default=None,
              help="Where to time the model. [default: the global --device, auto]")
@click.option("--threads", type=click.IntRange(min=1),
              help="CPU threads for torch and ONNX Runtime. [default: torch's default]")
@click.option("--compare", "compare", multiple=True, metavar="NAME|FILE",
              help="Another model, or an exported .onnx/.xml file (an int8 export, say), to profile "
                   "in the same tables; repeatable.")
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Labelled image folder (as for evaluate): adds each row's top-1, measured on that "
                   "very backend, for rows with real weights.")
@click.option("--limit", type=click.IntRange(min=1),
              help="Measure top-1 on this many --data images (spread over the classes).")
@click.option("--backend", "backends", multiple=True, type=click.Choice(BACKEND_CHOICES),
              help="Backend(s) to time; repeatable. auto: the one predict and evaluate pick; torch: "
                   "eager. [default: every available one]")
@click.option("--runs", type=click.IntRange(min=0), default=50, show_default=True,
              help="Timed runs per backend and batch size (0: count only, no timing).")
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True,
              help="Untimed runs before timing.")
@click.option("--per-layer", is_flag=True, help="Also show (or include in JSON) every conv/linear layer.")
@json_option("Print JSON on stdout: an object, or a list of objects with --compare.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write latency and throughput against batch size to this image (needs matplotlib).")
@pass_app
def command(app: AppContext, model_name: str | None, size: str | None, weights: str | None,
            width: float | None, resolution: int | None, batch_sizes: tuple[int, ...],
            device: str | None, threads: int | None, compare: tuple[str, ...],
            data_dir: Path | None, limit: int | None, backends: tuple[str, ...], runs: int,
            warmup: int, per_layer: bool, as_json: bool, plot_path: Path | None) -> None:
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

    auto = choose_backend("auto", device or app.device)  # what predict and evaluate would use
    aliases = {"torch": "eager", "auto": "eager" if auto == "torch" else auto}
    backends = tuple(dict.fromkeys(aliases.get(b, b) for b in backends))
    torch_device = resolve_device(device or app.device)
    steps = sum(len(backends) or sum(why is None for why in backend_availability(
        torch_device, Path(file) if file else None).values()) for _, file in items) * len(batch_sizes)
    profiles = []
    with app.progress() as progress:
        task = progress.add_task("profiling", total=steps if runs else 0)
        for name, file in items:
            def on_step(what: str, label: str = file or name) -> None:
                progress.update(task, description=f"{label}: {what}")
                progress.advance(task)

            profiles.append(profile_model(name, width=width, resolution=resolution,
                                          batch_sizes=batch_sizes, device=torch_device,
                                          backends=backends or None, runs=runs, warmup=warmup,
                                          threads=threads, on_step=on_step, weights=file,
                                          top1_on=top1_on))
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

def _label(p) -> str:
    """A row's model: its registry name, or the exported file it was timed from."""
    return Path(p.weights).name if p.weights else p.model


def _top1(top1: float | None) -> str:
    return "-" if top1 is None else f"{top1:.1f} %"


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:,.1f} MiB"


def _print_tables(app: AppContext, profiles: list, per_layer: bool) -> None:
    from rich.table import Table

    console = app.out  # the tables are the result: stdout, and -q keeps them
    res = profiles[0].resolution
    all_trainable = all(p.params.trainable == p.params.total for p in profiles)
    summary = Table(title=f"Parameters and compute at {res}x{res}, one image"
                          + (" (all parameters trainable)" if all_trainable else ""))
    rows = [[_label(p), f"{p.width:g}", f"{p.params.total:,}",
             *(() if all_trainable else (f"{p.params.trainable:,}",)),
             f"{p.params.bytes_fp32 / 2**20:.1f}", f"{p.params.bytes_fp16 / 2**20:.1f}",
             f"{p.compute.macs / 1e6:,.2f}", f"{p.compute.flops / 1e6:,.2f}",
             f"{p.compute.elementwise_total / 1e6:,.2f}"] for p in profiles]
    _add_columns(summary, ["model", "width", "params", *(() if all_trainable else ("trainable",)),
                           "fp32 MiB", "fp16 MiB", "MACs (M)", "FLOPs (M)", "eltwise (M)"], rows)
    for row in rows:
        summary.add_row(*row)
    console.print(summary)
    console.print(profiles[0].compute.convention, style="dim")

    for p in profiles:
        stages = Table(title=f"{_label(p)}: per stage")
        for col in ("stage", "params", "MACs", "% MACs"):
            stages.add_column(col, justify="left" if col == "stage" else "right")
        for stage, n_params in p.params.per_stage.items():
            macs = p.compute.per_stage.get(stage, 0)
            if n_params or macs:
                stages.add_row(stage, f"{n_params:,}", f"{macs:,}", f"{100 * macs / p.compute.macs:.1f}")
        console.print(stages)
        if per_layer:
            layers = Table(title=f"{_label(p)}: per layer (Conv2d and Linear)")
            for col in ("layer", "kind", "output", "params", "MACs", "% MACs"):
                layers.add_column(col, justify="left" if col in ("layer", "kind") else "right")
            for layer in p.compute.layers:
                layers.add_row(layer.name, layer.kind, "x".join(map(str, layer.output_shape)),
                               f"{layer.params:,}", f"{layer.macs:,}",
                               f"{100 * layer.macs / p.compute.macs:.1f}")
            console.print(layers)

    timed = [(p, s) for p in profiles for s in p.latency]
    if timed:
        first = timed[0][1]
        # with top-1, p90, mean±std and peak memory give way (they stay in --json): rows fit 80 columns
        accuracy = any(s.top1 is not None for _, s in timed)
        table = Table(title=f"Latency on {first.device}, {first.threads} thread(s): ms per batch over "
                            f"{first.runs} runs after {first.warmup} warm-up"
                            + (", and top-1 of each row's own backend" if accuracy else ""),
                      caption=None if accuracy else "peak memory: growth of peak RSS (CPU) or max "
                                                    "allocated (CUDA) during warm-up and timed runs")
        columns = (["model"] if len(profiles) > 1 else []) + [
            "backend", "batch", "min", "median", *([] if accuracy else ["p90", "mean±std"]),
            "images/s", *(["top-1"] if accuracy else ["peak memory"])]
        rows, sections = [], []
        for i, (p, s) in enumerate(timed):
            new_model = i == 0 or timed[i - 1][0] is not p
            sections.append(new_model and i > 0)
            rows.append(([_label(p) if new_model else ""] if len(profiles) > 1 else []) + [
                s.backend, str(s.batch_size), f"{s.min:.2f}", f"{s.median:.2f}",
                *([] if accuracy else [f"{s.p90:.2f}", f"{s.mean:.2f} ± {s.std:.2f}"]),
                f"{s.images_per_s:,.1f}",
                _top1(s.top1) if accuracy else _mib(s.peak_memory_bytes)])
        _add_columns(table, columns, rows, text=("model",), words=("backend",))
        for row, section in zip(rows, sections):
            if section:
                table.add_section()
            table.add_row(*row)
        console.print(table)
    for p in profiles:
        reasons: dict[str, list[str]] = {}
        for backend, why in p.skipped_backends.items():
            reasons.setdefault(why, []).append(backend)
        for why, skipped in reasons.items():  # one line per reason
            app.info(f"{_label(p)}: skipped {', '.join(skipped)}: {why}")


def _add_columns(table, names: list[str], rows: list[list[str]], text=("model",), words=()) -> None:
    """Text columns may fold; number columns and ``words`` (names such as ``onnxruntime``) are at
    least as wide as their widest cell, so a narrow terminal (or a pipe, 80 columns) folds names
    and headers but never splits digits or a backend's name."""
    for i, name in enumerate(names):
        widest = max((len(r[i]) for r in rows), default=0)
        if name in text:
            table.add_column(name, justify="left", overflow="fold")
        elif name in words:
            table.add_column(name, justify="left", min_width=widest)
        else:
            table.add_column(name, justify="right", min_width=widest)


def _plot(profiles: list, path: Path) -> None:
    """Median latency and throughput against batch size, one line per model and backend."""
    from matplotlib.figure import Figure

    from ..fileio import atomic_write

    fig = Figure(figsize=(11, 4.5), layout="constrained")
    ax_lat, ax_tput = fig.subplots(1, 2)
    sizes: set[int] = set()
    for p, style in zip(profiles, ("-", "--", ":", "-.") * len(profiles)):  # style per model
        for backend in dict.fromkeys(s.backend for s in p.latency):  # colour per backend
            stats = sorted((s for s in p.latency if s.backend == backend), key=lambda s: s.batch_size)
            line = {"marker": "o", "linestyle": style, "color": f"C{BACKEND_CHOICES.index(backend)}",
                    "label": f"{_label(p)} {backend}" if len(profiles) > 1 else backend}
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
