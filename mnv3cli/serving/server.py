"""Run the app with uvicorn: listen, serve until SIGINT/SIGTERM, finish what is in flight, return.

The socket is bound here, before uvicorn starts, so that a port already in use or an address that
does not exist is a :class:`~mnv3cli.errors.UserError` naming it (uvicorn would log and exit 1), and
so that ``port=0`` (any free port) can be reported. uvicorn's own signal handling is kept (stop
accepting, let requests in flight finish, run the lifespan shutdown) except for its last step:
after a graceful shutdown it re-raises the signal, which would end the process with the signal's
status instead of 0.
"""

from __future__ import annotations

import contextlib
import importlib.util
import signal
import socket
import threading
from collections.abc import Callable

import uvicorn

from ..errors import UserError
from ..inference.runtime import Runtime
from .app import ServeSettings, create_app

GRACE_SECONDS = 30  # requests still running this long after a stop signal are cancelled
BACKLOG = 2048  # connections the kernel queues before the server accepts them (uvicorn's default)
# httptools' C parser and uvloop's event loop (the serve extra) cost less CPU per request than h11
# and asyncio's, CPU the decoding and the model need (benchmarks/serve_load.py); the pure-Python
# ones remain the fallback where the C extensions do not install.
HTTP = "httptools" if importlib.util.find_spec("httptools") else "h11"
LOOP = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"


class _Server(uvicorn.Server):
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
    config = uvicorn.Config(
        app,
        http=HTTP,
        loop=LOOP,
        log_level=log_level,
        access_log=access_log,
        lifespan="on",
        timeout_graceful_shutdown=GRACE_SECONDS,
        server_header=False,
    )
    server = _Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    if not server.started:
        raise UserError(f"mnv3 serve could not start on {url} (see the messages above)")
