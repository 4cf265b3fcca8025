"""The Click options that several commands share, each defined once, and the one way they open a model.

``predict`` and ``evaluate`` take the same model, data-loading and backend options; ``export``,
``convert``, ``profile`` and ``models`` repeat ``--model``/``--json``. Defining them here keeps
their flags, defaults and metavars from drifting apart. Where a command's help genuinely says
something else (``--json`` prints lines in one command and one object in another), it passes its
own ``help`` and keeps everything else. ``mnv3 train`` builds its options from its config table.

:func:`open_model` is the only place a command turns ``--model``/``--weights``/``--backend`` into a
:class:`~mnv3cli.inference.Runtime`. Nothing here imports torch: ``mnv3 CMD --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import click

from ..inference import (  # plain constants: importing them loads no backend
    DEVICE_CHOICES,
    PRECISIONS,
    TTA_MODES,
)
from ..inference.backend_registry import backend_names  # entries only: no engine is imported
from .context import AppContext

Decorator = Callable[[Callable], Callable]

MODEL_HELP = "Registry name or alias (default: the model of the weights)."
WEIGHTS_HELP = (
    "bundled (default: the model inside mnv3; with --model: imagenet), a registry tag, a "
    "weights file (.pt/.pth/.bin/.safetensors/.tflite), or a file written by mnv3 export "
    "(.onnx, OpenVINO .xml)."
)
# for the commands that need the PyTorch model itself (calibrate, explain, export), which an
# exported graph is not: their help must not offer what the loader then refuses
TORCH_WEIGHTS_HELP = (
    "bundled (default: the model inside mnv3; with --model: imagenet), a registry tag, or a "
    "weights file (.pt/.pth/.bin/.safetensors/.tflite); not an exported .onnx/.xml."
)
JSON_HELP = "Print the result as one JSON object on stdout."


def model_option(help: str = MODEL_HELP, dest: str = "model") -> Decorator:
    """``--model/-m NAME``: a registry name or alias (metavar: :data:`METAVAR_BY_FLAG`)."""
    return click.option("--model", "-m", dest, help=help)


def weights_option(help: str = WEIGHTS_HELP, default: str | None = None) -> Decorator:
    """``--weights/-w WEIGHTS``: a registry tag or a weights file."""
    return click.option("--weights", "-w", default=default, show_default=default is not None, help=help)


def json_option(help: str = JSON_HELP) -> Decorator:
    """``--json`` (parameter ``as_json``): machine-readable results on stdout."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def top_k_option(help: str = "Labels per image.") -> Decorator:
    """``--top-k/-k N``: how many labels (with probabilities) each image gets."""
    return click.option("--top-k", "-k", type=click.IntRange(min=1), default=5, show_default=True, help=help)


def batch_size_option() -> Decorator:
    return click.option(
        "--batch-size",
        "-b",
        type=click.IntRange(min=1),
        default=32,
        show_default=True,
        help="Images per model call (more: faster, more memory).",
    )


def workers_option() -> Decorator:
    return click.option(
        "--workers",
        "-j",
        type=click.IntRange(min=1),
        default=None,
        help="Decoding threads [default: CPU cores, at most 8].",
    )


class RegistryChoice(click.Choice):
    """A :class:`click.Choice` whose choices are read from a registry whenever Click reads them
    (help, completion, validation), so a backend registered after the command was built is offered."""

    def __init__(self, names: Callable[[], Sequence[str]]) -> None:
        self._names = names
        self.case_sensitive = True

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(self._names())

    @choices.setter
    def choices(self, value: Sequence[str]) -> None:  # click.Choice.__init__'s assignment: ignored
        pass


def backend_option() -> Decorator:
    """``--backend``: ``auto`` and every registered backend (:mod:`mnv3cli.inference.backend_registry`)."""
    return click.option(
        "--backend",
        type=RegistryChoice(backend_names),
        default="auto",
        show_default=True,
        help="Inference engine (auto: onnxruntime when installed, else torch; openvino needs mnv3cli[openvino]).",
    )


def precision_option() -> Decorator:
    """``--precision``: OpenVINO's inference precision; f32 unless asked (its CPU default is bf16)."""
    return click.option(
        "--precision",
        type=click.Choice(PRECISIONS),
        default="f32",
        show_default=True,
        help="Inference precision of --backend openvino (bf16/f16 are faster on some "
        "CPUs and cost accuracy; the backend is then named openvino-bf16 ...).",
    )


def tta_option() -> Decorator:
    """``--tta none|flip``: test-time augmentation, the same for predict and evaluate."""
    return click.option(
        "--tta",
        type=click.Choice(TTA_MODES),
        default="none",
        show_default=True,
        help="Test-time augmentation: flip = mean of the logits of each image and its mirror (twice the work).",
    )


def fast_decode_option() -> Decorator:
    return click.option(
        "--fast-decode/--no-fast-decode",
        default=True,
        show_default=True,
        help="Decode large JPEGs at reduced size (draft mode) before the exact resize.",
    )


SPLIT_CHOICES = ("train", "val", "test", "all")


def allow_absolute_paths_option() -> Decorator:
    """``--allow-absolute-paths``: a manifest may name images outside its own folder."""
    return click.option(
        "--allow-absolute-paths",
        is_flag=True,
        help="Let a manifest name images outside its own folder (absolute or ../ paths).",
    )


def manifest_options(split_help: str | None = None) -> Decorator:
    """``--classes FILE`` and ``--allow-absolute-paths`` (and ``--split`` when ``split_help`` says
    which rows a command reads unless told): how a CSV/JSONL manifest given as the data is read,
    the same in every command (:mod:`mnv3cli.data.manifest`)."""
    options: list[Decorator] = [
        click.option(
            "--classes",
            "classes_file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="For a manifest: the class names, one a line; sets their order (else first appearance).",
        ),
        allow_absolute_paths_option(),
    ]
    if split_help is not None:
        options.append(click.option("--split", type=click.Choice(SPLIT_CHOICES), default=None, help=split_help))

    def decorate(func: Callable) -> Callable:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


DEVICE_HELP = "Where the model runs [default: the global --device, else $MNV3_DEVICE, else auto]."


def _set_device(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(AppContext).device = value


def device_option(help: str = DEVICE_HELP) -> Decorator:
    """``--device`` after the command (``mnv3 predict x.jpg --device cpu``), as well as before it
    (``mnv3 --device cpu predict x.jpg``): given here it overrides the global one by setting
    ``app.device``, so a command reads one value and takes no parameter for it."""
    return click.option(
        "--device", type=click.Choice(DEVICE_CHOICES), default=None, expose_value=False, callback=_set_device, help=help
    )


# One metavar per kind of value, whatever the command ("one name per idea"): N for a count, FLOAT,
# FILE, DIR, NAME for a model, WEIGHTS for a tag or weights file, PIXELS. Options that say more keep their
# own (RUN, N[,N...]); the rest get theirs from this table by flag, else by type. Applied to every
# command as it is loaded (:meth:`~mnv3cli.cli.app.Mnv3Group.get_command`), train's generated ones too.
METAVAR_BY_FLAG = {
    "--model": "NAME",
    "--weights": "WEIGHTS",
    "--resolution": "PIXELS",
    "--data": "DATA",  # labelled images, the same idea as evaluate's DATA argument
    "--val": "DATA",
}


def _metavar_by_type(param: click.Parameter) -> str | None:
    kind = param.type
    if isinstance(kind, click.Path):
        return "DIR" if not kind.file_okay else "FILE" if not kind.dir_okay else "PATH"
    if isinstance(kind, click.types.IntParamType):
        return "N"
    if isinstance(kind, click.types.FloatParamType):
        return "FLOAT"
    return None


def _set_quiet(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(AppContext).quiet = True


def _add_verbose(ctx: click.Context, param: click.Parameter, value: int) -> None:
    ctx.ensure_object(AppContext).verbose += value or 0


def with_global_options(command: click.Command) -> click.Command:
    """``-q``/``-v`` after the command as well as before it (``mnv3 evaluate DIR -q``), added to
    every command as it is loaded; they update the one :class:`AppContext` the command reads."""
    names = {opt for param in command.params for opt in getattr(param, "opts", ())}
    if "--quiet" not in names and "-q" not in names:
        command.params.append(
            click.Option(
                ["-q", "--quiet"],
                is_flag=True,
                expose_value=False,
                callback=_set_quiet,
                help="Only results and errors.",
            )
        )
    if "--verbose" not in names and "-v" not in names:
        command.params.append(
            click.Option(
                ["-v", "--verbose"],
                count=True,
                expose_value=False,
                callback=_add_verbose,
                help="More output; tracebacks on errors.",
            )
        )
    return command


def conventional_metavars(command: click.Command) -> click.Command:
    """Give every option (and path argument) of ``command`` the project's metavar for its kind of
    value, unless the command chose one: ``-b N``, ``-o FILE``/``-o DIR``, ``--weights WEIGHTS``."""
    for param in command.params:
        chosen = param.metavar is not None or getattr(param, "is_flag", False) or getattr(param, "count", False)
        if chosen or isinstance(param.type, click.Choice):  # a Choice shows its choices
            continue
        if isinstance(param, click.Option):
            flag = next((f for f in param.opts if f.startswith("--")), None)
            param.metavar = (METAVAR_BY_FLAG.get(flag) if flag else None) or _metavar_by_type(param)
        elif isinstance(param.type, click.Path):  # an argument: the usage line shows it
            metavar = _metavar_by_type(param)
            if metavar == "DIR":
                param.metavar = metavar if param.required else f"[{metavar}]"
    return command


def open_model(
    app: AppContext,
    model: str | None,
    weights: str | None,
    backend: str,
    *,
    device: str | None = None,
    pipelined: bool = False,
    precision: str = "f32",
    threads: int | None = None,
):
    """``--model``/``--weights``/``--backend`` -> a ready :class:`~mnv3cli.inference.Runtime`.

        With neither option: the model shipped inside the package (``bundled``: nothing is downloaded);
        with ``--model`` only: that model's default published weights. A weights file names its own model
        (and, for ``mnv3 train`` checkpoints, its classes and preprocessing).
        ``device``: where to run (default: the global ``--device``); ``pipelined``: more than one batch
        will run, so decoding overlaps inference (tune for throughput); ``threads``: the engine's threads
    (default: one per core). Notes go to stderr.
    """
    from ..inference import (
        open_runtime,  # onnxruntime with a warm cache: no torch import
    )

    runtime = open_runtime(
        weights,
        model,
        backend,
        device or app.device,
        notify=app.info,
        pipelined=pipelined,
        precision=precision,
        threads=threads,
    )
    app.debug(f"model {runtime.card.model_name} from {runtime.card.source} on {runtime.backend.name}")
    return runtime


def report_bad_rows(problems: Sequence[str]) -> None:
    """A manifest's bad rows, one ``mnv3: warning: FILE:LINE: what`` line each on stderr (also under
    ``-q``: they need acting on); the command goes on and ends with :func:`bad_rows_failure`."""
    from ..printable import plain

    for problem in problems:
        click.echo(f"mnv3: warning: {plain(problem)}", err=True)


def bad_rows_failure(problems: Sequence[str]):
    """The exit-1 :class:`~mnv3cli.errors.PartialFailure` of a run that skipped bad manifest rows."""
    from ..errors import PartialFailure

    counted = sum(1 for p in problems if "more bad rows" not in p)
    return PartialFailure(f"the manifest has bad rows (left out, listed above; {counted} shown)")
