"""``mnv3 serve``: classify images over HTTP, with a web page, until Ctrl-C or SIGTERM.

The service itself is :mod:`mnv3cli.serving` (FastAPI, uvicorn, dynamic batching, metrics); this
command checks that the ``serve`` extra is installed, opens the model the way every command does
(:func:`~mnv3cli.cli.options.open_model`: warm and torch-free from the ONNX cache) and prints the
address once the model has answered, on stdout, so that ``--port 0`` can be scripted. A stop
signal lets the requests in flight finish; the exit status is then 0.
"""

from __future__ import annotations

import importlib
import os

import click

from ..errors import UserError
from ..printable import plain
from ..serving import API_KEY_ENV as ENV_KEY
from .context import AppContext, pass_app
from .options import (
    backend_option,
    device_option,
    model_option,
    open_model,
    precision_option,
    top_k_option,
    tta_option,
    weights_option,
    workers_option,
)


@click.command("serve")
@model_option()
@weights_option()
@backend_option()
@click.option(
    "--host",
    metavar="ADDRESS",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (0.0.0.0: every network interface).",
)
@click.option(
    "--port",
    "-p",
    metavar="PORT",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="TCP port (0: any free port; the address is printed).",
)
@click.option(
    "--max-batch",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="Images from concurrent requests run through the model together, at most this many.",
)
@click.option(
    "--max-wait-ms",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="How long the first image of a batch waits for others.",
)
@click.option(
    "--max-upload-mb",
    type=click.FloatRange(min=0, min_open=True),
    default=20.0,
    show_default=True,
    help="Largest request body (413 beyond).",
)
@top_k_option("Labels per image when a request does not ask (?top_k=N).")
@click.option(
    "--api-key-file",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help=f"API keys, one a line: requests must send 'Authorization: Bearer KEY' (also ${ENV_KEY}).",
)
@click.option(
    "--protect-metrics",
    is_flag=True,
    help="/metrics needs the API key too (health checks never do).",
)
@click.option(
    "--header-timeout",
    metavar="SECONDS",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds a client has to send a request's headers (408 and closed beyond).",
)
@click.option(
    "--body-timeout",
    metavar="SECONDS",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds a client has to send a request's body, plus one per 64 KiB sent; also the longest pause (408).",
)
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Open connections at most (fewer if the open-files limit is low); more are refused (503).",
)
@workers_option()
@device_option()
@precision_option()
@tta_option()
@pass_app
def command(
    app: AppContext,
    model: str | None,
    weights: str | None,
    backend: str,
    host: str,
    port: int,
    max_batch: int,
    max_wait_ms: float,
    max_upload_mb: float,
    top_k: int,
    header_timeout: float,
    body_timeout: float,
    max_connections: int,
    workers: int | None,
    api_key_file: str | None,
    protect_metrics: bool,
    precision: str,
    tta: str,
) -> None:
    """Serve the model over HTTP: POST /v1/predict, GET /v1/model, /healthz, /metrics, a web page
    at / and the API's documentation at /docs; also the Open Inference Protocol (/v2, as Triton
    and KServe) and TorchServe's /predictions. SIGHUP reloads the weights without a pause.

    \b
    Examples:
      mnv3 serve --weights model.tflite
      curl -H 'Content-Type: image/jpeg' --data-binary @cat.jpg \\
           localhost:8000/v1/predict
      curl -F file=@cat.jpg -F file=@dog.png 'localhost:8000/v1/predict?top_k=3'

    Ctrl-C or SIGTERM: the requests in flight are answered, then exit status 0.
    """
    from ..serving import REQUIRED_MODULES

    missing = [dist for module, dist in REQUIRED_MODULES.items() if not _importable(module)]
    if missing:
        raise UserError(f"mnv3 serve needs {', '.join(missing)}: pip install 'mnv3cli[serve]'")
    from ..serving import ServeSettings, listen, serve
    from ..serving.auth import load_keys

    if protect_metrics and not (api_key_file or os.environ.get(ENV_KEY)):
        raise UserError(f"--protect-metrics needs an API key (--api-key-file or ${ENV_KEY})")

    settings = ServeSettings(
        host=host,
        port=port,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        max_upload_bytes=int(max_upload_mb * 2**20),
        top_k=top_k,
        workers=workers,
        api_keys=load_keys(api_key_file),
        protect_metrics=protect_metrics,
        reload=lambda: _open(app, model, weights, backend, precision, tta),
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        max_connections=max_connections,
    )
    listen(host, port).close()  # a busy port or a wrong host fails before the slow model load
    runtime = _open(app, model, weights, backend, precision, tta)

    def ready(url: str) -> None:
        click.echo(plain(f"serving {runtime.card.model_name} at {url} (Ctrl-C to stop)"))
        app.info(f"web page {url}/, API documentation {url}/docs")

    level = "info" if app.verbose else ("error" if app.quiet else "warning")
    serve(runtime, settings, on_ready=ready, log_level=level, access_log=app.verbose > 0)


def _open(app: AppContext, model, weights, backend: str, precision: str, tta: str):
    """The model as predict opens it, with ``--tta`` applied to every batch (and on SIGHUP reload)."""
    import dataclasses

    from ..inference import with_tta

    runtime = open_model(app, model, weights, backend, pipelined=True, precision=precision)
    return dataclasses.replace(runtime, backend=with_tta(runtime.backend, tta))


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)  # imported below anyway: checking costs nothing extra
    except ImportError:
        return False
    return True
