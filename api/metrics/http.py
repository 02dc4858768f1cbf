"""Request latency: a pure ASGI middleware that times every HTTP request.

Labelled with the route template (``/stations/{station_id}``), never the raw path,
so that the number of series stays bounded whatever clients ask for. It passes
each message straight through, so streamed responses (SSE) are not buffered; their
duration is the stream's.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics.families import metric_name

# Methods outside this set are counted as "other": a client cannot add series.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"  # no route matched (404): the raw path is never a label


def request_histogram(registry: CollectorRegistry) -> Histogram:
    return Histogram(
        metric_name("http_request_duration_seconds"),
        "Time to answer an HTTP request, by method, route template and status code "
        "(a streamed response counts until its end).",
        ["method", "route", "status_code"],
        registry=registry,
    )


def route_template(scope: Scope) -> str:
    """The template of the route that answered (``/stations/{station_id}``)."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) else UNMATCHED_ROUTE


class LatencyMiddleware:
    """Pure ASGI: times each HTTP request without touching its body."""

    def __init__(self, app: ASGIApp, histogram: Histogram) -> None:
        self.app = app
        self.histogram = histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        # An exception before the response starts becomes a 500 further out.
        status = 500

        async def send_timed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_timed)
        finally:
            method = str(scope.get("method", "")).upper()
            # The router records the route it chose in the scope it was given.
            self.histogram.labels(
                method if method in HTTP_METHODS else "other", route_template(scope), str(status)
            ).observe(time.perf_counter() - start)
