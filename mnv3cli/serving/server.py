"""Run the app with uvicorn: listen, serve until SIGINT/SIGTERM, finish what is in flight, return.

The socket is bound here, before uvicorn starts, so that a port already in use or an address that
does not exist is a :class:`~mnv3cli.errors.UserError` naming it (uvicorn would log and exit 1), and
so that ``port=0`` (any free port) can be reported. uvicorn's own signal handling is kept (stop
accepting, let requests in flight finish, run the lifespan shutdown) except for its last step:
after a graceful shutdown it re-raises the signal, which would end the process with the signal's
status instead of 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import signal
import socket
import threading
from collections.abc import Callable

import uvicorn

from ..errors import UserError
from ..inference.runtime import Runtime
from .app import ServeSettings, create_app
from .guard import Drain
from .metrics import ServerMetrics
from .protocol import Notices, guarded_protocol, open_files_capacity

GRACE_SECONDS = 30  # requests still running this long after a stop signal are cancelled
BACKLOG = 2048  # connections the kernel queues before the server accepts them (uvicorn's default)
# httptools' C parser and uvloop's event loop (the serve extra) cost less CPU per request than h11
# and asyncio's, CPU the decoding and the model need (benchmarks/serve_load.py); the pure-Python
# ones remain the fallback where the C extensions do not install.
HTTP = "httptools" if importlib.util.find_spec("httptools") else "h11"
LOOP = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
# uvicorn's and python-multipart's warnings about one bad request each: counted, not printed.
PER_REQUEST_WARNINGS = {
    "Invalid HTTP request received.": "invalid_http",
    "Exceeded concurrency limit.": "over_limit",
    "Unsupported upgrade request.": None,
}


class _Server(uvicorn.Server):
    """uvicorn's server, telling the app when it begins to stop (so that answers carry
    ``Connection: close``) and condensing asyncio's per-accept tracebacks into notes."""

    def __init__(self, config: uvicorn.Config, drain: Drain, on_event: Callable[[str], None]) -> None:
        super().__init__(config)
        self.drain, self.on_event = drain, on_event

    def handle_exit(self, sig, frame) -> None:
        self.drain.begin()
        super().handle_exit(sig, frame)

    async def startup(self, sockets=None) -> None:
        loop = asyncio.get_running_loop()

        def exception_handler(loop, context: dict) -> None:
            if context.get("message") == "socket.accept() out of system resource":
                self.on_event("accept_failed")  # asyncio retries a second later; nothing is lost
            else:
                loop.default_exception_handler(context)

        loop.set_exception_handler(exception_handler)
        await super().startup(sockets)

    async def shutdown(self, sockets=None) -> None:
        """uvicorn's graceful stop, after taking in the connections the kernel has already
        completed: closing the listening socket would reset them, and their clients may have sent
        a whole request. Taken in now, they are answered like any other (``Connection: close``)."""
        loop = asyncio.get_running_loop()
        for sock in sockets or []:
            for conn in _waiting_connections(sock):
                await loop.connect_accepted_socket(lambda: self._protocol(loop), conn)
        await super().shutdown(sockets)

    def _protocol(self, loop: asyncio.AbstractEventLoop) -> asyncio.Protocol:
        """A connection's protocol, made as uvicorn's ``startup`` makes it."""
        return self.config.http_protocol_class(  # type: ignore[call-arg]
            config=self.config, server_state=self.server_state, app_state=self.lifespan.state, _loop=loop
        )

    @contextlib.contextmanager
    def capture_signals(self):
        """uvicorn's handlers (first signal: graceful stop; second SIGINT: stop now), restored
        afterwards, without re-raising the signal: a server stopped on request exits 0."""
        if threading.current_thread() is not threading.main_thread():
            yield  # signals reach only the main thread; an embedding program stops us itself
            return
        names = ("SIGINT", "SIGTERM", "SIGBREAK")
        previous = {
            sig: signal.signal(sig, self.handle_exit)
            for sig in (getattr(signal, name) for name in names if hasattr(signal, name))
        }
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _waiting_connections(sock: socket.socket) -> list[socket.socket]:
    """The connections in ``sock``'s accept queue, accepted without waiting."""
    sock.setblocking(False)
    waiting: list[socket.socket] = []
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:  # BlockingIOError: the queue is empty; EMFILE and the like: keep what we have
            return waiting
        conn.setblocking(False)
        waiting.append(conn)


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port`` 0: any free one)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise UserError(f"--host {host}: not an address of this machine ({exc.strerror})") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart at once after a stop
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise UserError(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc})") from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(
    runtime: Runtime,
    settings: ServeSettings,
    *,
    on_ready: Callable[[str], None] | None = None,
    log_level: str = "warning",
    access_log: bool = False,
) -> None:
    """Serve ``runtime`` until SIGINT/SIGTERM (or ``KeyboardInterrupt`` off the main thread's
    handlers), then return once every request in flight is answered.

    ``on_ready(url)`` is called when the model has answered its first call and connections to
    ``url`` are being queued (the socket listens before uvicorn starts).
    """
    sock = listen(settings.host, settings.port)
    url = url_of(sock)
    app = create_app(runtime, settings, on_ready=(lambda: on_ready(url)) if on_ready else None)
    capacity, open_files = open_files_capacity(settings.max_connections)
    config = uvicorn.Config(
        app,
        http=HTTP,
        loop=LOOP,
        log_level=log_level,
        access_log=access_log,
        lifespan="on",
        timeout_graceful_shutdown=GRACE_SECONDS,
        server_header=False,
        limit_concurrency=capacity + 1,  # a backstop: the protocol refuses connection capacity + 1 itself
    )
    config.load()  # after uvicorn's logging set-up, which the filter below must follow
    on_event = _events(app.state.service.metrics, capacity, open_files, verbose=log_level in ("debug", "info"))
    config.http_protocol_class = guarded_protocol(
        config.http_protocol_class, settings.header_timeout, capacity, on_event
    )
    server = _Server(config, app.state.drain, on_event)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    if not server.started:
        raise UserError(f"mnv3 serve could not start on {url} (see the messages above)")


def _events(metrics: ServerMetrics, capacity: int, open_files: int, verbose: bool) -> Callable[[str], None]:
    """``event(kind)``: count a connection-level event in ``metrics`` and note it (once a minute);
    also silences the per-request warnings of uvicorn and python-multipart unless ``verbose``."""
    notices = Notices()
    notes = {  # the limits an operator may want to raise; a client's mistakes are only counted
        "over_limit": f"refusing connections beyond {capacity} open ones (--max-connections; open files {open_files})",
        "accept_failed": f"out of open files ({open_files}): new connections wait in the kernel's queue",
    }

    def event(kind: str) -> None:
        metrics.connections.labels(kind).inc()
        if kind in notes:
            notices.note(kind, notes[kind])

    class PerRequest(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            if record.levelno != logging.WARNING or record.msg not in PER_REQUEST_WARNINGS:
                return True
            kind = PER_REQUEST_WARNINGS[record.msg]
            if kind == "over_limit":
                event(kind)  # the protocol counts its own refusals; this is uvicorn's backstop
            return verbose

    logging.getLogger("uvicorn.error").addFilter(PerRequest())
    if not verbose:
        logging.getLogger("python_multipart").setLevel(logging.ERROR)  # "Expected boundary character"
    return event
