"""From an HTTP request to named image bytes, refusing everything that is the client's mistake.

A bad request must cost the server little and tell the client exactly what was wrong: the body is
read in chunks and abandoned as soon as it passes the upload limit (a ``Content-Length`` over it is
refused before reading anything), the content type is checked before the body is read, and
decoding reuses :mod:`mnv3cli.data.images`, which already turns empty, truncated, unreadable and
decompression-bomb files into one-line reasons. Each problem becomes a :class:`ClientError`
carrying its HTTP status; the app answers it as ``{"error": ...}``.
"""

from __future__ import annotations

import re

from python_multipart.multipart import parse_options_header
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from ..data.images import EncodedImage
from .metrics import DISCONNECTED

RAW_BODY = "request body"  # how errors name the image of a raw-body request
MULTIPART = "multipart/form-data"
FILE_FIELD = "file"
# RFC 5987's filename*=: multipart/form-data does not use it (RFC 7578 4.2), so the parser sees no
# file name and hence a text field; say why rather than "a text field".
FILENAME_STAR = re.compile(rb"content-disposition:[^\r\n]*;\s*filename\*\s*=", re.I)
FILENAME_STAR_ONLY = (
    "its file name is given only as filename*=..., which multipart/form-data does not use "
    '(RFC 7578): send filename="..."'
)


class ClientError(Exception):
    """A request the server refuses: ``status`` (4xx) and a message naming the problem."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class ClientDisconnected(ClientError):
    """The client went away before sending the whole body: nobody to answer; the metrics count
    it apart (as nginx's 499, "client closed request", never sent)."""

    def __init__(self) -> None:
        super().__init__(DISCONNECTED, "the client disconnected before sending the whole body")


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


class BodyBudget:
    """Bytes of request bodies held in memory while they arrive, all requests together: each
    body is bounded by the upload limit and its time by :mod:`.guard`, but many slow uploads at
    once would still add up. Beyond ``limit`` a request is refused (503) rather than read."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0  # the event loop's thread only: no lock

    def take(self, size: int) -> None:
        if self.used + size > self.limit:
            raise ClientError(503, "the server is receiving too many uploads at once; retry later")
        self.used += size

    def give(self, size: int) -> None:
        self.used -= size


async def read_body(request: Request, limit: int, budget: BodyBudget | None = None) -> bytes:
    """The whole body, at most ``limit`` bytes (413 beyond), read as it arrives and never kept
    past the limit; while it arrives its bytes count against ``budget``. A ``Content-Length`` over
    the limit is refused before reading anything; what the client still sends is then dropped by
    :mod:`.guard`, which also closes the connection."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ClientError(
            413, f"upload of {int(declared)} bytes is over the limit of {limit} bytes (mnv3 serve --max-upload-mb)"
        )
    budget = budget or BodyBudget(limit)
    body = bytearray()
    try:
        while True:  # ASGI messages rather than request.stream(): we must know whether more is coming
            message = await request.receive()
            if message["type"] != "http.request":
                raise ClientDisconnected()
            chunk = message.get("body", b"")
            if len(body) + len(chunk) > limit:
                raise ClientError(413, f"upload is over the limit of {limit} bytes (mnv3 serve --max-upload-mb)")
            budget.take(len(chunk))
            body += chunk
            if not message.get("more_body", False):
                return bytes(body)
    finally:
        budget.give(len(body))


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

    _check_delimited(request, body)
    try:
        form = await Request(request.scope, replay).form(max_files=max_files, max_fields=max_files)
    except HTTPException as exc:  # starlette's MultiPartException, as a 400
        raise ClientError(400, f"malformed {MULTIPART} body: {exc.detail}") from None
    try:
        fields = form.getlist(name)
        if not any(isinstance(field, UploadFile) for field in fields):
            if FILENAME_STAR.search(body):
                raise ClientError(400, f"{MULTIPART} body without files: a part's {FILENAME_STAR_ONLY}")
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


def _check_delimited(request: Request, body: bytes) -> None:
    """A multipart body must hold a part opened by the declared boundary and end with the closing
    one: otherwise the parser finds no fields (or only the complete ones of an upload cut short),
    and the client would hear "no fields found" instead of what is wrong."""
    _, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if not boundary:
        return  # the parser says so
    shown = boundary.decode("latin-1")
    opening = b"--" + boundary + b"\r\n"
    if not body.startswith(opening) and b"\r\n" + opening not in body:
        raise ClientError(400, f"malformed {MULTIPART} body: no part begins with its boundary '--{shown}'")
    if b"--" + boundary + b"--" not in body[-(len(boundary) + 1024) :]:
        raise ClientError(
            400, f"malformed {MULTIPART} body: it ends before its closing boundary '--{shown}--' (an upload cut short?)"
        )
