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
from dataclasses import dataclass, field
from importlib import resources

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException

from .. import __version__
from ..data.batches import default_workers
from ..data.images import EncodedImage, ImageDecodeError
from ..data.preprocess import Normalizer
from ..inference.runtime import Runtime
from ..prediction import top_labels
from ..prediction.predict import Label
from . import torchserve, v2
from .auth import DOCS_ASSETS, ApiKeys
from .batcher import Batcher
from .decode import decode_budgeted
from .guard import ConnectionGuard, Drain
from .metrics import RequestMetrics, ServerMetrics
from .reload import ModelSlot, Served, admin_router, reload_on_sighup
from .uploads import (
    RAW_BODY,
    BodyBudget,
    ClientDisconnected,
    ClientError,
    media_type,
    multipart_images,
    read_body,
)

ROUTES = frozenset(
    {"/", "/favicon.ico", "/healthz", "/metrics", "/v1/model", "/v1/predict", "/v1/admin/reload", "/ping", "/v2"}
)
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
    max_files: int = 64  # file fields in one multipart request (images in one v2 request)
    api_keys: tuple[str, ...] = ()  # none: no key needed (see .auth)
    protect_metrics: bool = False  # /metrics behind the key too
    reload: Callable[[], Runtime] | None = field(default=None, compare=False)  # opens the weights again (.reload)
    header_timeout: float = 10.0  # seconds a client has to send a request's headers
    body_timeout: float = 30.0  # seconds (plus one per 64 KiB received) to send its body
    max_connections: int = 1000  # open connections at most (fewer when open files are limited)
    max_decoded_mb: float = 128.0  # one image decoded (width x height x bytes per pixel), at most
    max_buffered_mb: float = 256.0  # request bodies held in memory while they arrive, all together


class _Service:
    """What the routes share: the runtime, the decoding pool, the batcher, the metrics."""

    def __init__(self, runtime: Runtime, settings: ServeSettings, load: Callable[[], Runtime] | None = None) -> None:
        self.slot, self.settings = ModelSlot(runtime, load), settings
        self.metrics = ServerMetrics()
        self.bodies = BodyBudget(int(settings.max_buffered_mb * 2**20))
        self.normalizer = Normalizer(runtime.card.preprocess)
        self.pool: ThreadPoolExecutor | None = None
        self.batcher: Batcher | None = None
        self.ready = False

    async def start(self) -> None:
        size = self.runtime.card.preprocess.input_size
        await asyncio.to_thread(self.runtime.backend, np.zeros((1, 3, size, size), np.float32))
        self.pool = ThreadPoolExecutor(self.settings.workers or default_workers(), "mnv3-decode")
        self.batcher = batcher = Batcher(
            self.runtime.backend,
            self.settings.max_batch,
            self.settings.max_wait_ms / 1000,
            self.metrics.observe_batch,
            tag=self.slot.current,
            announced=True,
        )
        self.slot.on_swap = lambda served: batcher.swap(served.runtime.backend, served)
        self.ready = True

    @property
    def runtime(self) -> Runtime:
        """The model serving now (hot reload replaces it)."""
        return self.slot.current.runtime

    def stop(self) -> None:
        self.ready = False
        if self.batcher is not None:
            self.batcher.close()
        if self.pool is not None:
            self.pool.shutdown(wait=True)

    async def classify(self, image: EncodedImage, top_k: int) -> tuple[dict, str]:
        """Decode (thread pool), batch, and return ``{"predictions": top-k labels}`` (JSON-ready;
        a multi-label model adds ``labels``: every class at or above its threshold, best first),
        and the version of the model that gave them."""
        probs, served = await self.infer(await self.decode(image))
        card = served.runtime.card
        labels = top_labels(probs[None], top_k, card.class_names)[0]
        record: dict = {"predictions": [label.to_dict() for label in labels]}
        if card.multi_label:
            limits = card.decision_thresholds()
            above = [int(i) for i in np.argsort(-probs, kind="stable") if probs[i] >= limits[i]]
            record = {"labels": [Label(i, card.label(i), float(probs[i])).to_dict() for i in above]} | record
        return record, served.version

    async def decode(self, image: EncodedImage) -> np.ndarray:
        """The preprocessed ``[3, H, W]`` image (decoded on the thread pool); 400 if it cannot be."""
        if self.batcher is None or self.pool is None:
            raise ClientError(503, "the model is not loaded yet; retry when /healthz says ready")
        loop = asyncio.get_running_loop()
        self.batcher.expect()  # a batch forming now waits for this image (see Batcher.expect)
        try:
            array = await loop.run_in_executor(
                self.pool,
                decode_budgeted,
                image,
                self.runtime.card.preprocess,
                self.normalizer,
                int(self.settings.max_decoded_mb * 1e6),
            )
        except ImageDecodeError as exc:
            self.batcher.expect(-1)
            self.metrics.images.labels("rejected").inc()
            raise ClientError(400, str(exc)) from None
        except BaseException:  # cancelled (the client left), or a bug: the batcher must not wait for it
            self.batcher.expect(-1)
            raise
        return array

    async def infer(self, array: np.ndarray, decoded: bool = True) -> tuple[np.ndarray, Served]:
        """One preprocessed image's probabilities, batched with others, and the model that ran it
        (``decoded``: ``array`` comes from :meth:`decode`, which announced it to the batcher)."""
        if self.batcher is None:
            raise ClientError(503, "the model is not loaded yet; retry when /healthz says ready")
        future = self.batcher.submit(array, expected=decoded)
        probs = await asyncio.wrap_future(future)
        self.metrics.images.labels("classified").inc()
        served = future.tag
        assert isinstance(served, Served)  # the batcher's tags are the slot's Served
        return probs, served


def create_app(
    runtime: Runtime,
    settings: ServeSettings | None = None,
    *,
    on_ready: Callable[[], None] | None = None,
) -> FastAPI:
    """The app serving ``runtime``; run it with uvicorn (see :func:`~.server.serve`) or test it with
    ``fastapi.testclient.TestClient`` used as a context manager (which runs the lifespan).
    ``on_ready()`` is called once the model has answered its first call; ``settings.reload()``
    opens the weights again for a hot reload (SIGHUP, ``POST /v1/admin/reload``; see :mod:`.reload`)."""
    settings = settings or ServeSettings()
    service = _Service(runtime, settings, settings.reload)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await service.start()
        if on_ready is not None:
            on_ready()
        try:
            with reload_on_sighup(service.slot, asyncio.get_running_loop().call_soon_threadsafe):
                yield
        finally:
            service.stop()

    # FastAPI's /docs page loads Swagger UI from a CDN: blank offline, where mnv3 serve is meant to
    # run. fastapi-offline (the serve extra) serves the same files from its package, under DOCS_ASSETS.
    app = FastAPIOffline(
        title="mnv3",
        version=__version__,
        lifespan=lifespan,
        description=f"MobileNetV3 image classification: {runtime.card.model_name}.",
        redoc_url=None,
        static_url=DOCS_ASSETS,
    )
    app.state.service = service
    app.state.drain = Drain()  # the server sets it on a stop signal; see .guard
    app.add_middleware(ApiKeys, keys=settings.api_keys, protect_metrics=settings.protect_metrics)
    # outside the keys' check, so a 401 sent before the body is read closes the connection too
    app.add_middleware(ConnectionGuard, drain=app.state.drain, body_timeout=settings.body_timeout)
    # outermost: counts all
    app.add_middleware(RequestMetrics, metrics=service.metrics, routes=ROUTES | _model_routes(runtime.card.model_name))
    _add_error_handlers(app)
    for router in (v2.router(service), torchserve.router(service), admin_router(service.slot)):
        app.include_router(router)
    page = resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(status_code=204)  # browsers ask on every page load; no icon, no 404

    @app.get("/healthz", summary="Ready once the model answers (503 before and while stopping)")
    async def healthz() -> JSONResponse:
        if not service.ready:
            return JSONResponse({"status": "unavailable", "model": service.runtime.card.model_name}, status_code=503)
        return JSONResponse({"status": "ready", "model": service.runtime.card.model_name})

    @app.get("/metrics", summary="Prometheus metrics (text exposition format)")
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type=service.metrics.content_type)

    @app.get("/v1/model", summary="The model card: name, classes, preprocessing, weights, backend")
    async def model_card() -> JSONResponse:
        served = service.slot.current
        return JSONResponse(
            {
                **served.runtime.card.to_dict(),
                "num_classes": len(served.runtime.card.class_names),
                "model_version": served.version,
                "reload": service.slot.status,
                "backend": served.runtime.backend.name,
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
        model_name = service.runtime.card.model_name
        k = min(top_k or settings.top_k, len(service.runtime.card.class_names))
        kind = media_type(request)  # 415 before reading a byte of the body (and no 100 Continue)
        body = await read_body(request, settings.max_upload_bytes, service.bodies)
        if kind == "image":
            record, version = await service.classify(EncodedImage(RAW_BODY, body), k)
            return JSONResponse(record | {"model": model_name, "model_version": version})
        uploads = await multipart_images(request, body, settings.max_files)
        results = await asyncio.gather(*(_file_result(service, upload, k) for upload in uploads))
        if all("error" in result for result in results):
            summary = (
                results[0]["error"]
                if len(results) == 1
                else f"none of the {len(results)} files could be classified ({results[0]['error']}; ...)"
            )
            return JSONResponse({"error": summary, "results": results, "model": model_name}, status_code=400)
        versions = [result.pop("model_version", None) for result in results]
        first = next((v for v in versions if v is not None), None)  # the same, unless a reload came between
        return JSONResponse({"results": results, "model": model_name, "model_version": first})

    return app


async def _file_result(service: _Service, upload: EncodedImage | ClientError, top_k: int) -> dict:
    """One multipart file's entry: its predictions, or its error (the others still run)."""
    if isinstance(upload, ClientError):
        return {"filename": None, "error": upload.message}
    try:
        record, version = await service.classify(upload, top_k)
        return {"filename": upload.name} | record | {"model_version": version}
    except ClientError as exc:
        return {"filename": upload.name, "error": exc.message}


def _model_routes(name: str) -> frozenset[str]:
    """The protocol routes naming the model, as metrics labels (other names are ``other``)."""
    return frozenset(
        {f"/v2/models/{name}", f"/v2/models/{name}/ready", f"/v2/models/{name}/infer", f"/predictions/{name}"}
    )


def _add_error_handlers(app: FastAPI) -> None:
    """Every refusal, ours or the framework's (404, 405, a bad ``top_k``), as ``{"error": ...}``."""

    @app.exception_handler(ClientError)
    async def client_error(request: Request, exc: ClientError) -> Response:
        if isinstance(exc, ClientDisconnected):
            return Response(status_code=exc.status)  # nobody reads it; the metrics count a disconnect
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # Starlette still logs the traceback; the client gets the same shape as every other error.
        return JSONResponse({"error": f"internal server error ({type(exc).__name__})"}, status_code=500)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg')}" for e in exc.errors()
        )
        return JSONResponse({"error": problems}, status_code=422)
