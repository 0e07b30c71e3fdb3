"""Request metrics of the API in Prometheus format, served at `/metrics`.

Each app gets its own registry, so several apps in one process (tests, `journeys dev`) never
collide. Requests are labelled by route *template* (`/v1/flows/{flow_id}`), never by raw
path, so the number of series stays bounded whatever clients send.
"""

from __future__ import annotations

import time

from fastapi import FastAPI, Request, Response
from fastapi.routing import iter_route_contexts
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "unmatched"  # label of requests no route matched (404s from scanners, typos)

# Latency buckets for an API whose handlers are a query and a Temporal call or two.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RequestMetrics:
    """The counters of one app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "journeys_http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "journeys_http_request_duration_seconds",
            "Time from request to the end of the response, by method and route template.",
            ["method", "route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.in_progress = Gauge(
            "journeys_http_requests_in_progress",
            "HTTP requests being handled right now.",
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.duration.labels(method, route).observe(seconds)


class _RouteTemplates:
    """Full path templates (`/v1/flows/{flow_id}`) of the routes the router matched.

    The router leaves the matched route (or, for plain Starlette routes, its endpoint) in the
    request scope, but a route of an included router only knows its path *within* that
    router; the full template comes from FastAPI's public `iter_route_contexts`.
    """

    def __init__(self) -> None:
        self._by_id: dict[int, str] = {}

    def __call__(self, scope: Scope) -> str:
        matched = scope.get("route") or scope.get("endpoint")
        if matched is None:
            return UNMATCHED
        template = self._by_id.get(id(matched))
        if template is None:
            # First request, or routes were added since: index them all again.
            self._index(scope["app"].routes)
            template = self._by_id.get(id(matched), UNMATCHED)
        return template

    def _index(self, routes: list[BaseRoute]) -> None:
        for context in iter_route_contexts(routes):
            template = context.path_format or UNMATCHED
            self._by_id.setdefault(id(context.original_route), template)
            endpoint = getattr(context.original_route, "endpoint", None)
            if endpoint is not None:
                self._by_id.setdefault(id(endpoint), template)


class MetricsMiddleware:
    """Pure ASGI middleware (no BaseHTTPMiddleware: it would buffer streaming responses)."""

    def __init__(self, app: ASGIApp, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self.templates = _RouteTemplates()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client gets if the app raises before answering
        started = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_progress.inc()
        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.in_progress.dec()
            self.metrics.observe(
                scope["method"], self.templates(scope), status, time.perf_counter() - started
            )


def install(app: FastAPI) -> RequestMetrics:
    """Counts every request of `app` and serves the counts at `GET /metrics` (no API key).

    `/metrics` says which routes exist and how busy they are: keep it off the public
    internet (scrape it on the internal network, or block it at the load balancer).
    """
    metrics = RequestMetrics()
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(metrics.registry), media_type=content_type)

    return metrics
