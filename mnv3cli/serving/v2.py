"""The Open Inference Protocol (KServe v2, spoken by Triton and OpenVINO Model Server) over HTTP.

Clients written for those servers (``tritonclient``, KServe's, OVMS's) use ``mnv3 serve`` unchanged.
The model takes one of two inputs: ``images``, a ``BYTES`` tensor ``[N]`` of encoded image files
(decoded and preprocessed as ``/v1/predict`` does), or ``pixels``, an ``FP32`` tensor
``[N, 3, H, W]`` already preprocessed. It answers ``probabilities``, ``FP32 [N, C]``, or with the
output parameter ``classification: k`` (Triton's classification extension) a ``BYTES [N, k]``
tensor of ``"probability:index:label"`` strings. Tensors travel as JSON or, with Triton's binary
tensor extension, as raw bytes after the JSON header (``Inference-Header-Content-Length``); JSON
``BYTES`` elements are base64 (image files are not text). Every refusal is ``{"error": ...}``, as
the protocol says. The tensor codecs are in :mod:`.tensors`.
"""

from __future__ import annotations

import asyncio

import numpy as np
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from .. import __version__
from ..data.images import EncodedImage
from .tensors import HEADER_LENGTH, Tensor, encode_bytes, parse_request
from .uploads import ClientError, read_body

IMAGES, PIXELS, PROBABILITIES = "images", "pixels", "probabilities"
EXTENSIONS = ["binary_tensor_data", "classification"]


def router(service) -> APIRouter:
    """The ``/v2`` routes around ``service`` (the app's :class:`~.app._Service`)."""
    api = APIRouter(tags=["Open Inference Protocol v2"])

    def check(name: str, version: str | None) -> None:
        served = service.slot.current
        if name != served.runtime.card.model_name:
            raise ClientError(
                404, f"model '{name}' is not served here (this server serves '{served.runtime.card.model_name}')"
            )
        if version is not None and version != served.version:
            raise ClientError(
                404, f"model '{name}' version '{version}' is not served (the version now is '{served.version}')"
            )

    @api.get("/v2", summary="Server metadata")
    async def server_metadata() -> JSONResponse:
        return JSONResponse({"name": "mnv3", "version": __version__, "extensions": EXTENSIONS})

    @api.get("/v2/health/live", summary="Live: the process answers")
    async def live() -> JSONResponse:
        return JSONResponse({"live": True})

    @api.get("/v2/health/ready", summary="Ready: the model answers (503 before)")
    async def ready() -> JSONResponse:
        return JSONResponse({"ready": service.ready}, status_code=200 if service.ready else 503)

    @api.get("/v2/models/{name}", summary="Model metadata: its inputs and outputs")
    @api.get("/v2/models/{name}/versions/{version}", summary="Model metadata for one version")
    async def metadata(name: str, version: str | None = None) -> JSONResponse:
        check(name, version)
        served = service.slot.current
        size = served.runtime.card.preprocess.input_size
        return JSONResponse(
            {
                "name": name,
                "versions": [served.version],
                "platform": f"mnv3_{served.runtime.backend.name}",
                "inputs": [
                    {"name": IMAGES, "datatype": "BYTES", "shape": [-1]},
                    {"name": PIXELS, "datatype": "FP32", "shape": [-1, 3, size, size]},
                ],
                "outputs": [
                    {"name": PROBABILITIES, "datatype": "FP32", "shape": [-1, len(served.runtime.card.class_names)]}
                ],
            }
        )

    @api.get("/v2/models/{name}/ready", summary="Model ready (503 before)")
    @api.get("/v2/models/{name}/versions/{version}/ready", summary="Model version ready")
    async def model_ready(name: str, version: str | None = None) -> JSONResponse:
        check(name, version)
        return JSONResponse({"name": name, "ready": service.ready}, status_code=200 if service.ready else 503)

    @api.post("/v2/models/{name}/infer", summary="Classify a BYTES tensor of image files or an FP32 tensor")
    @api.post("/v2/models/{name}/versions/{version}/infer", summary="Inference on one version")
    async def infer(name: str, request: Request, version: str | None = None) -> Response:
        try:
            check(name, version)
        except ClientError:
            raise
        body = await read_body(request, service.settings.max_upload_bytes, service.bodies)
        size = service.slot.current.runtime.card.preprocess.input_size
        inference = parse_request(
            body, request.headers.get(HEADER_LENGTH), {IMAGES: "BYTES", PIXELS: "FP32"}, service.settings.max_files
        )
        tensor = inference.input
        if tensor.name == IMAGES:
            decoded = await asyncio.gather(
                *(service.decode(EncodedImage(f"{IMAGES}[{i}]", data)) for i, data in enumerate(tensor.value)),
                return_exceptions=True,
            )
            failed = [result for result in decoded if isinstance(result, BaseException)]
            if failed:  # the images decoded will not be submitted: the batcher must not wait for them
                service.batcher.expect(len(failed) - len(decoded))
                raise failed[0]
            arrays = list(decoded)
        else:
            expected = (3, size, size)
            if tuple(tensor.value.shape[1:]) != expected:
                raise ClientError(400, f"{PIXELS}: shape {list(tensor.value.shape)}, expected [N, 3, {size}, {size}]")
            arrays = list(np.ascontiguousarray(tensor.value))
        if not arrays:
            raise ClientError(400, f"{tensor.name}: an empty batch (shape {tensor.shape})")
        answers = await asyncio.gather(*(service.infer(array, tensor.name == IMAGES) for array in arrays))
        probs = np.stack([row for row, _ in answers]).astype(np.float32, copy=False)
        served = answers[-1][1]
        outputs = []
        for wanted in inference.outputs or [inference.default_output(PROBABILITIES)]:
            if wanted.name != PROBABILITIES:
                raise ClientError(400, f"output '{wanted.name}': this model has one output, '{PROBABILITIES}'")
            outputs.append(_output(wanted, probs, served.runtime.card.class_names))
        return _response(inference.id, name, served.version, outputs)

    return api


def _output(wanted: Tensor, probs: np.ndarray, class_names: list[str]) -> Tensor:
    """The probabilities, or with ``classification: k`` the top-k as Triton's strings."""
    k = wanted.parameters.get("classification")
    if k is None:
        return Tensor(PROBABILITIES, "FP32", list(probs.shape), probs, wanted.binary)
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ClientError(400, f"output '{PROBABILITIES}': classification must be a positive integer, not {k!r}")
    k = min(k, probs.shape[1])
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    strings = [
        [f"{row[i]:.6f}:{i}:{class_names[i]}".encode() for i in indices]
        for row, indices in zip(probs, top, strict=True)
    ]
    return Tensor(PROBABILITIES, "BYTES", [len(probs), k], strings, wanted.binary)


def _response(request_id: str | None, name: str, version: str, outputs: list[Tensor]) -> Response:
    """JSON, or JSON then the binary outputs' bytes (``Inference-Header-Content-Length``)."""
    described, blobs = [], []
    for output in outputs:
        entry: dict = {"name": output.name, "datatype": output.datatype, "shape": output.shape}
        if output.datatype == "BYTES":
            flat = [item for row in output.value for item in row]
            if output.binary:
                blob = encode_bytes(flat)
            else:
                entry["data"] = [item.decode() for item in flat]
        else:
            if output.binary:
                blob = output.value.astype("<f4").tobytes()
            else:
                entry["data"] = output.value.ravel()
        if output.binary:
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        described.append(entry)
    header = {"model_name": name, "model_version": version, "outputs": described}
    if request_id is not None:
        header["id"] = request_id
    text = orjson.dumps(header, option=orjson.OPT_SERIALIZE_NUMPY)
    headers = {"X-Model-Version": version}
    if not blobs:
        return Response(text, media_type="application/json", headers=headers)
    headers[HEADER_LENGTH] = str(len(text))
    return Response(text + b"".join(blobs), media_type="application/octet-stream", headers=headers)
