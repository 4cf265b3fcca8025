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
from starlette.requests import ClientDisconnect, Request

from ..data.images import EncodedImage

RAW_BODY = "request body"  # how errors name the image of a raw-body request
MULTIPART = "multipart/form-data"
FILE_FIELD = "file"


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
    raise ClientError(415, f"{shown}: send one image with Content-Type image/* (e.g. image/jpeg), "
                           f"or {MULTIPART} with one or more '{FILE_FIELD}' fields")


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, at most ``limit`` bytes (413 beyond), read as it arrives."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ClientError(413, f"upload of {int(declared)} bytes is over the limit of {limit} bytes "
                               "(mnv3 serve --max-upload-mb)")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise ClientError(413, f"upload is over the limit of {limit} bytes (mnv3 serve --max-upload-mb)")
    except ClientDisconnect:
        raise ClientError(400, "the client disconnected before sending the whole body") from None
    return bytes(body)


async def multipart_images(request: Request, body: bytes, max_files: int) -> list[EncodedImage | ClientError]:
    """The ``file`` fields of a ``multipart/form-data`` ``body``, in upload order: their bytes, or an
    error for a field that is not a file. A body without any file field is a 400."""
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
        fields = form.getlist(FILE_FIELD)
        if not any(isinstance(field, UploadFile) for field in fields):
            others = sorted(set(form.keys()) - {FILE_FIELD})
            found = f"fields found: {', '.join(others)}" if others else "no fields found"
            raise ClientError(400, f"{MULTIPART} body without files: send each image as a file field "
                                   f"named '{FILE_FIELD}' ({found})")
        images: list[EncodedImage | ClientError] = []
        for number, field in enumerate(fields, 1):
            if isinstance(field, UploadFile):
                images.append(EncodedImage(field.filename or f"file {number}", await field.read()))
            else:
                images.append(ClientError(400, f"{FILE_FIELD} {number}: a text field, not a file upload"))
        return images
    finally:
        await form.close()
