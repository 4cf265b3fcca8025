"""The HTTP API of ``mnv3 serve``: a FastAPI app around one warm :class:`~mnv3cli.inference.Runtime`.

``POST /v1/predict`` takes one image as the raw body (``Content-Type: image/*``) or several as
``multipart/form-data`` ``file`` fields; images are decoded on a thread pool (Pillow releases the
GIL) and classified by the :class:`~.batcher.Batcher`, which runs concurrent requests through the
model together. ``GET /v1/model`` is the model card, ``/healthz`` says whether the model answers,
``/metrics`` is Prometheus text and ``GET /`` a self-contained page for people. Every client
mistake is a 4xx ``{"error": ...}`` (see :mod:`.uploads`), never a 500.

The thread pool and the batcher start with the app's lifespan (after a first model call, which
makes ``/healthz`` ready) and stop after the last request in flight is answered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException

from .. import __version__
from ..data.batches import default_workers
from ..data.images import EncodedImage, ImageDecodeError
from ..data.preprocess import Normalizer, load_and_preprocess
from ..inference.runtime import Runtime
from ..prediction import top_labels
from .batcher import Batcher
from .metrics import RequestMetrics, ServerMetrics
from .uploads import (
    RAW_BODY,
    ClientError,
    discard_body,
    media_type,
    multipart_images,
    read_body,
)

ROUTES = frozenset({"/", "/healthz", "/metrics", "/v1/model", "/v1/predict"})
PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "array", "items": {"type": "string", "format": "binary"}}},
                }
            },
        },
    }
}


@dataclass(frozen=True)
class ServeSettings:
    """What ``mnv3 serve``'s options set; the defaults are the command's."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_batch: int = 32  # images per model call, at most
    max_wait_ms: float = 5.0  # how long the first image of a batch waits for company
    max_upload_bytes: int = 20 * 2**20  # one request's body
    top_k: int = 5  # labels per image when a request does not say
    workers: int | None = None  # decoding threads (default: CPU cores, at most 8)
    max_files: int = 64  # file fields in one multipart request


class _Service:
    """What the routes share: the runtime, the decoding pool, the batcher, the metrics."""

    def __init__(self, runtime: Runtime, settings: ServeSettings) -> None:
        self.runtime, self.settings = runtime, settings
        self.metrics = ServerMetrics()
        self.normalizer = Normalizer(runtime.card.preprocess)
        self.pool: ThreadPoolExecutor | None = None
        self.batcher: Batcher | None = None
        self.ready = False

    async def start(self) -> None:
        size = self.runtime.card.preprocess.input_size
        await asyncio.to_thread(self.runtime.backend, np.zeros((1, 3, size, size), np.float32))
        self.pool = ThreadPoolExecutor(self.settings.workers or default_workers(), "mnv3-decode")
        self.batcher = Batcher(
            self.runtime.backend, self.settings.max_batch, self.settings.max_wait_ms / 1000, self.metrics.observe_batch
        )
        self.ready = True

    def stop(self) -> None:
        self.ready = False
        if self.batcher is not None:
            self.batcher.close()
        if self.pool is not None:
            self.pool.shutdown(wait=True)

    async def classify(self, image: EncodedImage, top_k: int) -> list[dict]:
        """Decode (thread pool), batch, and return the top-k labels as JSON-ready dicts."""
        if self.batcher is None or self.pool is None:
            raise ClientError(503, "the model is not loaded yet; retry when /healthz says ready")
        loop = asyncio.get_running_loop()
        try:
            array = await loop.run_in_executor(
                self.pool, load_and_preprocess, image, self.runtime.card.preprocess, True, self.normalizer
            )
        except ImageDecodeError as exc:
            self.metrics.images.labels("rejected").inc()
            raise ClientError(400, str(exc)) from None
        probs = await asyncio.wrap_future(self.batcher.submit(array))
        self.metrics.images.labels("classified").inc()
        labels = top_labels(probs[None], top_k, self.runtime.card.class_names)[0]
        return [label.to_dict() for label in labels]


def create_app(
    runtime: Runtime, settings: ServeSettings | None = None, *, on_ready: Callable[[], None] | None = None
) -> FastAPI:
    """The app serving ``runtime``; run it with uvicorn (see :func:`~.server.serve`) or test it with
    ``fastapi.testclient.TestClient`` used as a context manager (which runs the lifespan).
    ``on_ready()`` is called once the model has answered its first call."""
    settings = settings or ServeSettings()
    service = _Service(runtime, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await service.start()
        if on_ready is not None:
            on_ready()
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(
        title="mnv3",
        version=__version__,
        lifespan=lifespan,
        description=f"MobileNetV3 image classification: {runtime.card.model_name}.",
    )
    app.state.service = service
    app.add_middleware(RequestMetrics, metrics=service.metrics, routes=ROUTES)
    _add_error_handlers(app)
    page = resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")
    model_name, num_classes = runtime.card.model_name, len(runtime.card.class_names)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/healthz", summary="Ready once the model answers (503 before and while stopping)")
    async def healthz() -> JSONResponse:
        if not service.ready:
            return JSONResponse({"status": "unavailable", "model": model_name}, status_code=503)
        return JSONResponse({"status": "ready", "model": model_name})

    @app.get("/metrics", summary="Prometheus metrics (text exposition format)")
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type=service.metrics.content_type)

    @app.get("/v1/model", summary="The model card: name, classes, preprocessing, weights, backend")
    async def model_card() -> JSONResponse:
        card = runtime.card.to_dict()
        return JSONResponse(
            {
                **card,
                "num_classes": num_classes,
                "backend": runtime.backend.name,
                "max_batch": settings.max_batch,
                "top_k": settings.top_k,
                "max_upload_bytes": settings.max_upload_bytes,
            }
        )

    @app.post(
        "/v1/predict",
        openapi_extra=PREDICT_BODY,
        summary="Classify one image (raw body, Content-Type image/*) or several (multipart 'file' fields)",
    )
    async def predict(
        request: Request,
        top_k: int | None = Query(None, ge=1, description=f"Labels per image (default {settings.top_k})."),
    ) -> JSONResponse:
        k = min(top_k or settings.top_k, num_classes)
        try:
            kind = media_type(request)  # 415 before keeping a byte of the body
        except ClientError:
            await discard_body(request)
            raise
        body = await read_body(request, settings.max_upload_bytes)
        if kind == "image":
            predictions = await service.classify(EncodedImage(RAW_BODY, body), k)
            return JSONResponse({"predictions": predictions, "model": model_name})
        uploads = await multipart_images(request, body, settings.max_files)
        results = await asyncio.gather(*(_file_result(service, upload, k) for upload in uploads))
        if all("error" in result for result in results):
            summary = (
                results[0]["error"]
                if len(results) == 1
                else f"none of the {len(results)} files could be classified ({results[0]['error']}; ...)"
            )
            return JSONResponse({"error": summary, "results": results, "model": model_name}, status_code=400)
        return JSONResponse({"results": results, "model": model_name})

    return app


async def _file_result(service: _Service, upload: EncodedImage | ClientError, top_k: int) -> dict:
    """One multipart file's entry: its predictions, or its error (the others still run)."""
    if isinstance(upload, ClientError):
        return {"filename": None, "error": upload.message}
    try:
        return {"filename": upload.name, "predictions": await service.classify(upload, top_k)}
    except ClientError as exc:
        return {"filename": upload.name, "error": exc.message}


def _add_error_handlers(app: FastAPI) -> None:
    """Every refusal, ours or the framework's (404, 405, a bad ``top_k``), as ``{"error": ...}``."""

    @app.exception_handler(ClientError)
    async def client_error(request: Request, exc: ClientError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg')}" for e in exc.errors()
        )
        return JSONResponse({"error": problems}, status_code=422)
