"""The API's /metrics (Prometheus text format): requests by route and status, their latency,
and usage events by result. One registry per app, so two apps in one process never collide."""
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.routing import Match

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("billing_api_requests", "HTTP requests answered, by route and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("billing_api_request_seconds", "time to answer, by route", ["method", "route"],
                                 registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20))
        self.usage_events = Counter("billing_usage_events", "usage events received, by result "
                                    "(accepted, duplicate, refused)", ["result"], registry=self.registry)

    def install(self, app: FastAPI) -> None:
        @app.middleware("http")
        async def measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
            started = time.perf_counter()
            method = request.method if request.method in METHODS else "other"  # callers cannot add series
            status = "500"  # unless an answer comes: an error escaping the app is a 500 to the caller
            try:
                response = await call_next(request)
                status = str(response.status_code)
                return response
            finally:
                route = _route_of(app, request)
                self.requests.labels(method, route, status).inc()
                self.latency.labels(method, route).observe(time.perf_counter() - started)

        @app.get("/metrics", include_in_schema=False)
        def metrics() -> Response:
            return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def _route_of(app: FastAPI, request: Request) -> str:
    """The route's template (/v1/clients/{client_id}), never the raw path: ids would make a
    series per client."""
    matched = request.scope.get("route")
    if matched is not None and hasattr(matched, "path"):
        return str(matched.path)
    for route in app.router.routes:
        match, _ = route.matches(request.scope)
        if match is Match.FULL:
            return str(getattr(route, "path", "other"))
    return "unmatched"
