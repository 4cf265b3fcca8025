"""``mnv3 profile``: parameters, MACs/FLOPs and latency of one or several models, side by side.

The numbers come from :mod:`mnv3cli.profiling.profile` as one ``ProfileResult``; this module parses
options, :mod:`.profile_report` renders the result as tables or the optional plot, ``--json`` as its
``to_dict()``. The tables (or the JSON) and the "wrote PLOT" line go to stdout; the
progress bar and notes on skipped backends go to stderr. torch is imported only when the command runs.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UserError
from ..inference.backend_registry import profile_choices  # entries only: no engine is imported
from .context import AppContext, pass_app
from .options import (
    RegistryChoice,
    bad_rows_failure,
    device_option,
    json_option,
    manifest_options,
    model_option,
    report_bad_rows,
    weights_option,
)
from .profile_report import plot, print_tables


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
    from matplotlib.figure import Figure  # a dependency of mnv3cli itself

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
    type=click.Path(exists=True, path_type=Path),
    help="Labelled image folder or manifest (as for evaluate): adds each row's top-1, "
    "measured on that very backend, for rows with real weights.",
)
@click.option(
    "--limit", type=click.IntRange(min=1), help="Measure top-1 on this many --data images (spread over the classes)."
)
@click.option(
    "--backend",
    "backends",
    multiple=True,
    type=RegistryChoice(profile_choices),
    help="Backend(s) to time; repeatable. auto: the one predict and evaluate pick; a "
    "backend: its first row (torch: eager). [default: every available one]",
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
@manifest_options("Rows of a --data manifest [default: test if any, else val, else all].")
@json_option("Print JSON on stdout: an object, or a list of objects with --compare.")
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write latency and throughput against batch size to this image (.png, .svg or .pdf).",
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
    classes_file: Path | None,
    allow_absolute_paths: bool,
    split: str | None,
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
    manifest = {"split": split, "classes_file": classes_file, "allow_absolute": allow_absolute_paths}
    top1_on, problems = _top1_on(data_dir, limit, manifest) if data_dir is not None else (None, ())
    if plot_path is not None:
        _check_plot_target(plot_path)
        if runs == 0:
            raise UserError(f"--plot {plot_path}: nothing to plot with --runs 0")

    from ..inference import choose_backend, resolve_device
    from ..profiling import ProfileResult, backend_availability, profile_model

    auto = choose_backend("auto", app.device)  # what predict and evaluate would use
    backends = tuple(dict.fromkeys(_timing_row(auto if b == "auto" else b) for b in backends))
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

            def on_step(what: str, label: str | None = file or name) -> None:
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
    result = ProfileResult(profiles, compared=bool(compare), per_layer=per_layer)
    if plot_path is not None:
        try:
            plot(result, plot_path)
        except OSError as exc:
            raise UserError(f"--plot {plot_path}: cannot write ({exc.strerror or exc})") from None
        app.wrote(f"wrote {plot_path}", as_json)
    if as_json:
        app.emit_json(result.to_dict())
    else:
        print_tables(app, result)
    if problems:
        raise bad_rows_failure(problems)


def _timing_row(backend: str) -> str:
    """A backend named in ``--backend`` -> the profile row it stands for (torch -> eager)."""
    from ..inference.backend_registry import get_backend

    entry = get_backend(backend)
    return backend if backend in entry.rows else entry.rows[0]


def _top1_on(data_dir: Path, limit: int | None, manifest: dict):
    """``top1_on(runner, card)``: top-1 (percent) of a prepared backend on the --data images (the
    good rows of a manifest: bad ones are listed on stderr, and the top-1 is of the rest)."""
    from ..data.folders import match_classes
    from ..data.labelled import scan_labelled
    from ..evaluation import evaluate

    scanned = scan_labelled(data_dir, **manifest)  # a wrong folder fails before any model is loaded
    report_bad_rows(scanned.problems)

    def top1_on(runner, card) -> float:
        found = match_classes(scanned, card.class_names, card.wordnet_ids)
        return evaluate(runner, found.samples, card.num_classes, card.preprocess, limit=limit).top1

    return top1_on, scanned.problems
