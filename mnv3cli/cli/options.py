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

from collections.abc import Callable

import click

from ..inference import (  # plain constants: importing them loads no backend
    BACKENDS,
    PRECISIONS,
)
from .context import AppContext

Decorator = Callable[[Callable], Callable]

MODEL_HELP = "Registry name or alias (default: the weights file's model, else the most accurate)."
WEIGHTS_HELP = ("imagenet (default), a registry tag, a weights file (.pt/.pth/.safetensors/.tflite), "
                "or a file written by mnv3 export (.onnx, OpenVINO .xml).")
JSON_HELP = "Print the result as one JSON object on stdout."


def model_option(help: str = MODEL_HELP, dest: str = "model") -> Decorator:
    """``--model/-m NAME``: a registry name or alias."""
    return click.option("--model", "-m", dest, metavar="NAME", help=help)


def weights_option(help: str = WEIGHTS_HELP, default: str | None = None) -> Decorator:
    """``--weights/-w W``: a registry tag or a weights file."""
    return click.option("--weights", "-w", metavar="W", default=default, show_default=default is not None,
                        help=help)


def json_option(help: str = JSON_HELP) -> Decorator:
    """``--json`` (parameter ``as_json``): machine-readable results on stdout."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def batch_size_option() -> Decorator:
    return click.option("--batch-size", "-b", type=click.IntRange(min=1), default=32, show_default=True)


def workers_option() -> Decorator:
    return click.option("--workers", "-j", type=click.IntRange(min=1), default=None,
                        help="Decoding threads [default: CPU cores, at most 8].")


def backend_option() -> Decorator:
    """``--backend``: the engines :func:`~mnv3cli.inference.open_runtime` knows."""
    return click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
                        help="Inference engine (auto: onnxruntime when installed, else torch; openvino needs "
                             "mnv3cli[openvino]).")


def precision_option() -> Decorator:
    """``--precision``: OpenVINO's inference precision; f32 unless asked (its CPU default is bf16)."""
    return click.option("--precision", type=click.Choice(PRECISIONS), default="f32", show_default=True,
                        help="Inference precision of --backend openvino (bf16/f16 are faster on some "
                             "CPUs and cost accuracy; the backend is then named openvino-bf16 ...).")


def fast_decode_option() -> Decorator:
    return click.option("--fast-decode/--no-fast-decode", default=True, show_default=True,
                        help="Decode large JPEGs at reduced size (draft mode) before the exact resize.")


def open_model(app: AppContext, model: str | None, weights: str | None, backend: str, *,
               device: str | None = None, pipelined: bool = False, precision: str = "f32"):
    """``--model``/``--weights``/``--backend`` -> a ready :class:`~mnv3cli.inference.Runtime`.

    With neither option: the registry's most accurate model and its default weights. A weights file
    names its own model (and, for ``mnv3 train`` checkpoints, its classes and preprocessing).
    ``device``: where to run (default: the global ``--device``); ``pipelined``: more than one batch
    will run, so decoding overlaps inference (tune for throughput). Notes go to stderr.
    """
    from ..inference import (
        open_runtime,  # onnxruntime with a warm cache: no torch import
    )

    runtime = open_runtime(weights, model, backend, device or app.device, notify=app.info,
                           pipelined=pipelined, precision=precision)
    app.debug(f"model {runtime.model_name} from {runtime.source} on {runtime.backend.name}")
    return runtime
