"""API keys: ``Authorization: Bearer KEY`` on every route that classifies or describes the model.

Keys come from ``--api-key-file`` (one per line) and ``MNV3_API_KEY``. Health checks stay open so
that a load balancer or an orchestrator needs no secret, and so do the page (it asks for the key)
and the API's description; ``/metrics`` is open unless ``--protect-metrics``. The key a client
sends is compared with every key in constant time (:func:`hmac.compare_digest`, no early exit), so
the answer's timing says nothing about how much of a guess was right. A refusal is a 401
``{"error": ...}`` with ``WWW-Authenticate: Bearer``, sent before the body is read: the connection
guard outside this middleware closes the connection and drains a bounded rest (see :mod:`.guard`).
"""

from __future__ import annotations

import hmac
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

from ..errors import UserError
from . import API_KEY_ENV

ENV_KEY = API_KEY_ENV
MIN_KEY_CHARS = 16
DOCS_ASSETS = "/docs/assets"  # where /docs's script, style and icon are served from (fastapi-offline)
OPEN_PATHS = frozenset(
    {"/", "/favicon.ico", "/healthz", "/ping", "/v2/health/live", "/v2/health/ready", "/docs", "/openapi.json"}
    | {f"{DOCS_ASSETS}/{name}" for name in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png")}
)
_MODEL_READY = re.compile(r"^/v2/models/[^/]+(/versions/[^/]+)?/ready$")
_KEY_CHARS = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII without spaces: what a header carries


def load_keys(key_file: str | None, environ: dict | None = None) -> tuple[str, ...]:
    """The keys of ``key_file`` (one a line; blank lines and ``#`` comments skipped) and of
    ``$MNV3_API_KEY``; each must be printable ASCII without spaces, at least 16 characters."""
    sources: list[tuple[str, str]] = []
    if key_file is not None:
        try:
            text = Path(key_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise UserError(f"--api-key-file {key_file}: cannot read it ({reason})") from None
        lines = [line.strip() for line in text.splitlines()]
        found = [
            (f"--api-key-file {key_file} line {n}", line) for n, line in enumerate(lines, 1) if line and line[0] != "#"
        ]
        if not found:
            raise UserError(f"--api-key-file {key_file}: no key in it (one key a line)")
        sources += found
    env_key = (os.environ if environ is None else environ).get(ENV_KEY)
    if env_key is not None:
        sources.append((f"${ENV_KEY}", env_key.strip()))
    for where, key in sources:
        if len(key) < MIN_KEY_CHARS or not _KEY_CHARS.match(key):
            raise UserError(
                f"{where}: not a usable API key (at least {MIN_KEY_CHARS} printable ASCII characters, no spaces; "
                'e.g. python -c "import secrets; print(secrets.token_urlsafe(32))")'
            )
    return tuple(dict.fromkeys(key for _, key in sources))


def is_open(path: str, protect_metrics: bool) -> bool:
    """Whether ``path`` answers without a key."""
    if path == "/metrics":
        return not protect_metrics
    return path in OPEN_PATHS or bool(_MODEL_READY.match(path))


def key_matches(header: str | None, keys: Iterable[bytes]) -> bool:
    """Whether an ``Authorization`` header value is ``Bearer KEY`` with one of ``keys``."""
    scheme, _, given = (header or "").strip().partition(" ")
    candidate = given.strip().encode("latin-1", "replace")
    matched = False
    for key in keys:  # every key compared, whatever matched: the time does not depend on which
        matched |= hmac.compare_digest(candidate, key)
    return matched and scheme.lower() == "bearer"


class ApiKeys:
    """Pure ASGI middleware: a 401 for a request to a protected path without a valid key."""

    def __init__(self, app, keys: tuple[str, ...], protect_metrics: bool = False) -> None:
        self.app, self.keys, self.protect_metrics = app, tuple(k.encode() for k in keys), protect_metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not self.keys or is_open(scope["path"], self.protect_metrics):
            await self.app(scope, receive, send)
            return
        header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
        if key_matches(header, self.keys):
            await self.app(scope, receive, send)
            return
        headers = [
            (b"content-type", b"application/json"),
            (b"www-authenticate", b'Bearer realm="mnv3"'),
        ]
        problem = "wrong API key" if header else "this server needs an API key"
        body = json.dumps({"error": f"{problem}: send the header 'Authorization: Bearer KEY'"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [*headers, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
