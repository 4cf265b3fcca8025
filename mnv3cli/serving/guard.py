"""What a request may cost the server while its body arrives, and how a connection ends.

uvicorn hands the app a request once its headers are in; from then on the body arrives at the
client's pace, and a client that stops sending would hold its connection, its task and the part
of the body already read for as long as it likes. :class:`ConnectionGuard` (pure ASGI middleware,
so it works whatever HTTP implementation uvicorn runs) bounds that and settles how each exchange
ends:

- **Body deadline**: the body must arrive within ``body_timeout`` seconds plus one second per
  ``MIN_RATE`` bytes received (Apache's ``mod_reqtimeout`` rule: a slow but steady upload of a
  large photo passes, a trickle does not), and never pause for ``body_timeout`` seconds (a
  client that sent most of a large body quickly and stopped would otherwise keep it in memory for
  the credit it earned); past either the request is answered 408 and the connection closed.
  Once the server is stopping, a body still arriving gets ``STOP_GRACE`` seconds more, then 503:
  a stalled upload never holds a shutdown for the whole grace period.
- **Refusals before the body**: a response that starts before the body was read to its end (413
  on ``Content-Length``, 415, 408) carries ``Connection: close``, since what the client still
  sends is not a request. The response is sent at once, then the rest of the body is read and
  dropped (at most ``LINGER_BYTES`` for ``LINGER_SECONDS``, ``LINGER_IDLE`` without data at
  most, like nginx's lingering close) so that a client still uploading reads the refusal
  instead of a reset; a client that sent
  ``Expect: 100-continue`` has sent nothing and is not waited for.
- **Stopping**: every response that starts after the stop signal carries ``Connection: close``,
  so a keep-alive client learns from the answer itself not to reuse the connection.
"""

from __future__ import annotations

import asyncio
import time

from .uploads import ClientError

MIN_RATE = 64 * 1024  # bytes/s a body must average, beyond its first body_timeout seconds
STOP_GRACE = 2.0  # seconds a body still arriving when the server stops may take to finish
LINGER_BYTES = 64 * 2**20  # of a refused body, read and dropped so the client sees the refusal
LINGER_SECONDS = 5.0  # ... for at most this long
LINGER_IDLE = 1.0  # ... and no longer than this without receiving anything
POLL = 0.25  # how often a wait for body data looks at the stop signal
CLOSE = (b"connection", b"close")


class Drain:
    """The server's stop signal as the app sees it: set once, when the server begins to stop."""

    def __init__(self) -> None:
        self.since: float | None = None

    @property
    def stopping(self) -> bool:
        return self.since is not None

    def begin(self) -> None:
        if self.since is None:
            self.since = time.monotonic()


class ConnectionGuard:
    """ASGI middleware enforcing the body deadline and closing connections as described above."""

    def __init__(self, app, drain: Drain, body_timeout: float) -> None:
        self.app, self.drain, self.body_timeout = app, drain, body_timeout

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = _Exchange(scope, receive, send, self.drain, self.body_timeout)
        await self.app(scope, exchange.receive, exchange.send)


class _Exchange:
    """One request and its response, as seen through the guard."""

    def __init__(self, scope, receive, send, drain: Drain, body_timeout: float) -> None:
        self._receive, self._send, self.drain = receive, send, drain
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"").strip()
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        self.body_done = not chunked and (not length or length == b"0")
        self.expects_continue = b"100-continue" in headers.get(b"expect", b"").lower()
        self.body_timeout = body_timeout
        self.deadline = time.monotonic() + body_timeout  # the rate rule's; see _deadline
        self.last_data = time.monotonic()
        self.gone = False  # the client disconnected or its body timed out: nothing to linger for
        self.linger = False

    async def receive(self) -> dict:
        if self.body_done:
            return await self._receive()
        waiting = asyncio.ensure_future(self._receive())
        while True:
            left = self._deadline() - time.monotonic()
            if left <= 0:
                waiting.cancel()
                self.gone = True
                if self.drain.stopping:
                    raise ClientError(503, "the server is stopping and the request body did not arrive in time")
                raise ClientError(408, "the request body did not arrive in time (mnv3 serve --body-timeout)")
            done, _ = await asyncio.wait({waiting}, timeout=min(left, POLL))
            if done:
                break
        message = waiting.result()
        if message["type"] == "http.request":
            self.deadline += len(message.get("body", b"")) / MIN_RATE
            self.last_data = time.monotonic()
            self.body_done = not message.get("more_body", False)
        else:
            self.gone = True
        return message

    def _deadline(self) -> float:
        deadline = min(self.deadline, self.last_data + self.body_timeout)
        if self.drain.since is None:
            return deadline
        return min(deadline, self.drain.since + STOP_GRACE)

    async def send(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            early = not self.body_done
            if early or self.drain.stopping:
                headers = list(message.get("headers", []))
                if CLOSE not in headers:
                    headers.append(CLOSE)
                message = {**message, "headers": headers}
            self.linger = early and not self.gone and not self.expects_continue
        elif message["type"] == "http.response.body" and self.linger and not message.get("more_body", False):
            await self._send({**message, "more_body": True})  # the whole answer: the client can read it now
            await self._drop_rest()
            message = {"type": "http.response.body", "body": b"", "more_body": False}  # then the close
        await self._send(message)

    async def _drop_rest(self) -> None:
        """Read and drop what the client still sends of a refused body, within the linger bounds."""
        dropped = 0
        try:
            async with asyncio.timeout(LINGER_SECONDS):
                while dropped <= LINGER_BYTES:
                    message = await asyncio.wait_for(self._receive(), LINGER_IDLE)
                    if message["type"] != "http.request" or not message.get("more_body", False):
                        return
                    dropped += len(message.get("body", b""))
        except TimeoutError:
            return
