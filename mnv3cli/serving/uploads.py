"""From an HTTP request to named image bytes, refusing everything that is the client's mistake.

A bad request must cost the server little and tell the client exactly what was wrong: the body is
read in chunks and abandoned as soon as it passes the upload limit (a ``Content-Length`` over it is
refused before reading anything), the content type is checked before the body is read, and
decoding reuses :mod:`mnv3cli.data.images`, which already turns empty, truncated, unreadable and
decompression-bomb files into one-line reasons. Each problem becomes a :class:`ClientError`
carrying its HTTP status; the app answers it as ``{"error": ...}``.
"""

from __future__ import annotations

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from ..data.images import EncodedImage

RAW_BODY = "request body"  # how errors name the image of a raw-body request
MULTIPART = "multipart/form-data"
FILE_FIELD = "file"
DISCARD_MAX = 64 * 2**20  # bytes of a refused body read (and dropped) so the client sees the refusal


class ClientError(Exception):
    """A request the server refuses: ``status`` (4xx) and a message naming the problem."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def media_type(request: Request) -> str:
    """``image`` for ``image/*``, ``multipart`` for ``multipart/form-data``; anything else is a 415."""
    value = request.headers.get("content-type", "")
    main = value.split(";", 1)[0].strip().lower()
    if main.startswith("image/"):
        return "image"
    if main == MULTIPART:
        return "multipart"
    shown = f"Content-Type {main!r}" if main else "no Content-Type"
    raise ClientError(
        415,
        f"{shown}: send one image with Content-Type image/* (e.g. image/jpeg), "
        f"or {MULTIPART} with one or more '{FILE_FIELD}' fields",
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, at most ``limit`` bytes (413 beyond), read as it arrives; what comes beyond
    the limit is read and dropped (see :func:`discard_body`), never kept."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        if "100-continue" not in request.headers.get("expect", "").lower():  # it is sending anyway
            await discard_body(request)
        raise ClientError(
            413, f"upload of {int(declared)} bytes is over the limit of {limit} bytes (mnv3 serve --max-upload-mb)"
        )
    body = bytearray()
    while True:  # ASGI messages rather than request.stream(): we must know whether more is coming
        message = await request.receive()
        if message["type"] != "http.request":
            raise ClientError(400, "the client disconnected before sending the whole body")
        body += message.get("body", b"")
        more = message.get("more_body", False)
        if len(body) > limit:
            body.clear()
            if more:
                await discard_body(request)
            raise ClientError(413, f"upload is over the limit of {limit} bytes (mnv3 serve --max-upload-mb)")
        if not more:
            return bytes(body)


async def discard_body(request: Request) -> None:
    """Read and drop the rest of a body the server refuses (at most ``DISCARD_MAX`` bytes): a
    connection closed while the client is still sending is reset, and the client may never read
    the refusal. Only for a body not yet read to its end (``receive`` would then wait forever)."""
    seen = 0
    while seen <= DISCARD_MAX:
        message = await request.receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def multipart_images(
    request: Request, body: bytes, max_files: int, name: str = FILE_FIELD
) -> list[EncodedImage | ClientError]:
    """The fields called ``name`` of a ``multipart/form-data`` ``body``, in upload order: their bytes,
    or an error for a field that is not a file. A body without any such file field is a 400."""
    sent = False

    async def replay() -> dict:  # the body was already read (with its limit): parse it from memory
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=max_files, max_fields=max_files)
    except HTTPException as exc:  # starlette's MultiPartException, as a 400
        raise ClientError(400, f"malformed {MULTIPART} body: {exc.detail}") from None
    try:
        fields = form.getlist(name)
        if not any(isinstance(field, UploadFile) for field in fields):
            others = sorted(set(form.keys()) - {name})
            found = f"fields found: {', '.join(others)}" if others else "no fields found"
            raise ClientError(
                400, f"{MULTIPART} body without files: send each image as a file field named '{name}' ({found})"
            )
        images: list[EncodedImage | ClientError] = []
        for number, field in enumerate(fields, 1):
            if isinstance(field, UploadFile):
                images.append(EncodedImage(field.filename or f"file {number}", await field.read()))
            else:
                images.append(ClientError(400, f"{name} {number}: a text field, not a file upload"))
        return images
    finally:
        await form.close()
