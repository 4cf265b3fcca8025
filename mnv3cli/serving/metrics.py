"""The server's Prometheus metrics, and the ASGI middleware that counts every request.

Each app owns its :class:`~prometheus_client.CollectorRegistry` (not the process-wide default), so
two apps in one process (tests, an embedding program) never mix their counts. Request labels use
the route's path template and only for known routes: a scanner probing random URLs must not create
a new time series per URL.
"""

from __future__ import annotations

import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
DISCONNECTED = 499  # the status the app gives a request whose client went away (never sent)


class ServerMetrics:
    """Requests by route and status, requests in flight, request latency, batch sizes, model time,
    images by outcome."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mnv3_requests", "HTTP requests answered, by route and status.", ["route", "status"], registry=self.registry
        )
        self.in_flight = Gauge(
            "mnv3_requests_in_flight", "HTTP requests received and not yet answered.", registry=self.registry
        )
        self.latency = Histogram(
            "mnv3_request_seconds",
            "Time from request to response, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "mnv3_batch_size",
            "Images per model call (dynamic batching).",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.model_seconds = Histogram(
            "mnv3_model_seconds", "Time of one model call on a batch.", buckets=LATENCY_BUCKETS, registry=self.registry
        )
        self.images = Counter(
            "mnv3_images", "Images received, by outcome (classified or rejected).", ["outcome"], registry=self.registry
        )
        self.disconnects = Counter(
            "mnv3_client_disconnects",
            "Requests whose client went away before sending the whole body (not answered), by route.",
            ["route"],
            registry=self.registry,
        )
        self.connections = Counter(
            "mnv3_connections_closed",
            "Connections the server closed itself, by reason (header_timeout, invalid_http, over_limit).",
            ["reason"],
            registry=self.registry,
        )

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.model_seconds.observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class RequestMetrics:
    """Pure ASGI middleware (cheaper than ``BaseHTTPMiddleware`` on every request): counts each
    HTTP response by route and status and times it."""

    def __init__(self, app, metrics: ServerMetrics, routes: frozenset[str]) -> None:
        self.app, self.metrics, self.routes = app, metrics, routes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.in_flight.dec()
            route = scope["path"] if scope["path"] in self.routes else "other"
            if status == DISCONNECTED:
                self.metrics.disconnects.labels(route).inc()
            else:
                self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)
