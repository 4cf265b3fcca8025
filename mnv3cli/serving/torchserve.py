"""TorchServe's inference API, as its ``image_classifier`` handler answers it.

A client written for TorchServe (in limited maintenance) switches to ``mnv3 serve`` by changing the
address: ``POST`` or ``PUT /predictions/{model}[/{version}]`` with the image as the raw body (any
content type: ``curl -T cat.jpg`` sends none) or as the multipart field ``data``, answered by the
top 5 as one JSON object ``{label: probability}``, most probable first; ``GET /ping`` answers
``{"status": "Healthy"}``. Refusals carry TorchServe's fields (``code``, ``type``, ``message``)
and this server's ``error``. The model version is the ``X-Model-Version`` header (the body is the
label map, nothing else).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..data.images import EncodedImage
from .uploads import MULTIPART, RAW_BODY, ClientError, multipart_images, read_body

TOP_K = 5  # the image_classifier handler's topk
FIELD = "data"
TYPES = {
    400: "BadRequestException",
    404: "ModelNotFoundException",
    413: "RequestEntityTooLarge",
    503: "ServiceUnavailableException",
}


def router(service) -> APIRouter:
    """``/predictions`` and ``/ping`` around ``service`` (the app's :class:`~.app._Service`)."""
    api = APIRouter(tags=["TorchServe"])

    @api.get("/ping", summary="TorchServe's health check")
    async def ping() -> JSONResponse:
        healthy = service.ready
        return JSONResponse({"status": "Healthy" if healthy else "Unhealthy"}, status_code=200 if healthy else 500)

    @api.post("/predictions/{model}", summary="Classify one image, TorchServe style")
    @api.post("/predictions/{model}/{version}", summary="The same, for a version")
    @api.put("/predictions/{model}", include_in_schema=False)  # curl -T
    @api.put("/predictions/{model}/{version}", include_in_schema=False)
    async def predictions(model: str, request: Request, version: str | None = None) -> JSONResponse:
        try:
            image = await _image(service, model, request)
            record, served = await service.classify(image, TOP_K)
            predictions = record["predictions"]
        except ClientError as exc:
            kind = TYPES.get(exc.status, "BadRequestException")
            return JSONResponse(
                {"code": exc.status, "type": kind, "message": exc.message, "error": exc.message}, status_code=exc.status
            )
        return JSONResponse({p["label"]: p["probability"] for p in predictions}, headers={"X-Model-Version": served})

    return api


async def _image(service, model: str, request: Request) -> EncodedImage:
    served = service.slot.current.runtime.card.model_name
    if model != served:
        raise ClientError(404, f"Model not found: {model} (this server serves {served})")
    body = await read_body(request, service.settings.max_upload_bytes, service.bodies)
    if request.headers.get("content-type", "").split(";", 1)[0].strip().lower() != MULTIPART:
        return EncodedImage(RAW_BODY, body)
    uploads = await multipart_images(request, body, service.settings.max_files, name=FIELD)
    if isinstance(uploads[0], ClientError):
        raise uploads[0]
    return uploads[0]
