"""uvicorn's HTTP protocol with the limits a public server needs and uvicorn lacks.

uvicorn times out idle keep-alive connections but not a client that sends its headers slowly (a
slowloris), nor a connection that sends nothing at all; it keeps accepting connections until the
process runs out of file descriptors (and asyncio then logs a traceback per failed accept, thousands
a second); on shutdown it closes idle keep-alive connections at once, resetting a request that was
already on its way; its protocol-level 400 is an empty ``text/plain``. :func:`guarded_protocol`
subclasses whichever protocol class uvicorn would use (h11 or httptools: only attributes both
have are used) to add:

- a **header timeout**: from the connection's first byte (or its opening) to the end of a
  request's headers; past it the client gets a JSON 408 (nothing, when it sent nothing) and the
  connection is closed;
- a **connection cap**: a connection beyond it gets a JSON 503 and is closed at once, so open
  connections stay well under the open-files limit (see :func:`open_files_capacity`);
- a **drain**: on shutdown an idle connection stays open ``DRAIN_IDLE`` seconds more, so a request
  already sent is answered (with ``Connection: close``, see :mod:`.guard`) rather than reset
  (the connections still in the accept queue are taken in first, see :mod:`.server`);
- **JSON** for the 400 uvicorn sends for unparsable HTTP.

Events are counted (``mnv3_connections_closed_total``) and noted on stderr at most once a minute
each (:class:`Notices`), never once per event.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import time
from collections.abc import Callable
from http import HTTPStatus

DRAIN_IDLE = 1.0  # seconds an idle connection stays open once the server stops
NOTICE_INTERVAL = 60.0  # seconds between two notes on stderr about the same kind of event
FD_RESERVE = 32  # descriptors kept for the process itself beyond those open at start
MAX_OPEN_FILES = 65536  # the soft open-files limit is raised to the hard one, at most this


def raw_response(status: int, error: str) -> bytes:
    """A whole HTTP/1.1 response ``{"error": ...}`` that closes the connection, for answers sent
    below the app (the protocol's own)."""
    body = json.dumps({"error": error}).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class Notices:
    """One stderr line per kind of event per ``NOTICE_INTERVAL``, through uvicorn's logger."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("uvicorn.error")
        self.last: dict[str, float] = {}

    def note(self, kind: str, message: str) -> None:
        now = time.monotonic()
        if now - self.last.get(kind, -NOTICE_INTERVAL) >= NOTICE_INTERVAL:
            self.last[kind] = now
            self.logger.warning("%s (noted once a minute; counted in /metrics)", message)


class _GuardedMixin:
    """See the module docstring; configured by :func:`guarded_protocol`."""

    header_timeout: float
    capacity: int
    event: Callable[[str], None]  # counts and notes an event by kind
    # ... and what uvicorn's protocol classes provide:
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    connections: set
    _header_timer: asyncio.TimerHandle | None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._header_timer = None
        self._draining = False
        self._got_bytes = False
        if len(self.connections) > self.capacity:
            self.event("over_limit")
            transport.write(raw_response(503, "the server has too many connections open; retry later"))
            transport.close()
            return
        self._arm()

    def data_received(self, data: bytes) -> None:
        self._got_bytes = True
        if self._header_timer is None and not self._busy():
            self._arm()  # the first byte of the next request on a keep-alive connection
        super().data_received(data)  # type: ignore[misc]

    def on_response_complete(self) -> None:
        self._disarm()
        super().on_response_complete()  # type: ignore[misc]
        if self._draining and not self.transport.is_closing():
            self.loop.call_later(DRAIN_IDLE, self._close_if_idle)

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def send_400_response(self, msg: str) -> None:
        self.event("invalid_http")
        self.transport.write(raw_response(400, "not a valid HTTP/1.1 request"))  # msg: h11's, says no more
        self.transport.close()

    def shutdown(self) -> None:
        """uvicorn's graceful stop, per connection: a request not yet answered is answered (the
        guard adds ``Connection: close``); an idle connection gets ``DRAIN_IDLE`` seconds for a
        request already on its way."""
        self._draining = True
        if not self._busy():
            self.loop.call_later(DRAIN_IDLE, self._close_if_idle)
        # busy: on_response_complete schedules the same once the answer is out

    def _busy(self) -> bool:
        cycle = getattr(self, "cycle", None)
        return cycle is not None and not cycle.response_complete

    def _arm(self) -> None:
        self._disarm()
        self._got_bytes = False
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self._busy() or self.transport.is_closing():
            return  # the headers came; the body has its own deadline (see .guard)
        self.event("header_timeout")
        if self._got_bytes:
            self.transport.write(raw_response(408, "the request headers did not arrive in time"))
        self.transport.close()

    def _close_if_idle(self) -> None:
        if not self._busy() and not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(base: type, header_timeout: float, capacity: int, event: Callable[[str], None]) -> type:
    """``base`` (a uvicorn HTTP protocol class) with the header timeout, connection cap, drain and
    JSON 400 described in the module docstring."""
    return type(
        f"Guarded{base.__name__}",
        (_GuardedMixin, base),
        {"header_timeout": header_timeout, "capacity": capacity, "event": staticmethod(event)},
    )


def open_files_capacity(wanted: int) -> tuple[int, int]:
    """Raise the soft open-files limit to the hard one and return ``(connections, limit)``: at most
    ``wanted`` connections, fewer when the limit leaves less room beside the descriptors already
    open and a reserve for the process (decoding threads, logs, the model's files)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = MAX_OPEN_FILES if hard == resource.RLIM_INFINITY else min(hard, MAX_OPEN_FILES)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass  # keep the limit we have
    try:
        in_use = len(os.listdir("/proc/self/fd"))
    except OSError:
        in_use = 64
    return max(1, min(wanted, soft - in_use - min(FD_RESERVE, soft // 4))), soft
