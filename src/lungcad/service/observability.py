"""Request ids, access logs, health and readiness probes and ``/metrics`` -- ``install_observability(app)``.

* Every HTTP request gets an id: the caller's ``X-Request-ID`` when it is 1-128 characters of
  ``[A-Za-z0-9._-]``, else a new uuid4 hex.  It is returned in the ``X-Request-ID`` response header and bound
  into structlog's context variables while the request runs, so every log line of the request carries
  ``request_id``.
* One JSON access event per request (``event: "request"``, logger ``lungcad.access``): method, route
  template, status, duration_ms, request_id and the API key's prefix when the caller authenticated -- never
  the raw path, the query string or a body (ids and patient data live there).  Probe routes (``/healthz``,
  ``/readyz``, ``/metrics``) log at DEBUG: an orchestrator polls them every few seconds.
* ``GET /healthz``: the process answers (touches nothing).  ``GET /readyz``: database, queue, storage
  writable, free disk and the active model file, JSON ``{status, checks: {name: {ok, detail}}}``, 503 when a
  check fails.  ``GET /metrics``: Prometheus text (``lungcad.service.observability_metrics``).  All three are
  unauthenticated (the probe and scrape convention) and say nothing about studies or patients; outside a
  trusted network, restrict ``/metrics`` at the reverse proxy.

The middleware is plain ASGI (``BaseHTTPMiddleware`` would buffer streamed responses and costs a task per
request); its work per request is a header scan, two clock reads, a histogram observation and one log call.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import TYPE_CHECKING, Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from lungcad.log import get_logger
from lungcad.service.observability_health import Readiness
from lungcad.service.observability_metrics import ServiceMetrics

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from lungcad.service.settings import ServiceSettings

REQUEST_ID_HEADER = "X-Request-ID"
_HEADER_KEY = REQUEST_ID_HEADER.lower().encode("latin-1")
_VALID_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_INTERNAL_ERROR_BODY = json.dumps(
    {"error": "internal_error", "message": "internal server error", "fix": "retry; report the X-Request-ID"}
).encode()
_INTERNAL_ERROR: dict[str, Any] = {
    "type": "http.response.start",
    "status": 500,
    "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_INTERNAL_ERROR_BODY)).encode()),
    ],
}
UNMATCHED = "unmatched"  # the route label of a request no route matched (scanners: unbounded raw paths)


def request_id_from(scope: Scope) -> str:
    """The caller's valid ``X-Request-ID`` or a new uuid4 hex (a bad one is replaced, not refused)."""
    for name, value in scope.get("headers", ()):
        if name == _HEADER_KEY:
            candidate = value.decode("latin-1")
            if _VALID_ID.fullmatch(candidate):
                return candidate
            break
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """``/api/v1/studies/{study_id}`` for a request that matched that route; ``"unmatched"`` otherwise."""
    # FastAPI >= 0.16x keeps included routers nested: scope["route"] is the router's own route (path without
    # the include prefix) and the full template is on the effective route context it records in the scope.
    # tests/service/test_observability.py pins the full template, so an internals change fails a test.
    effective = (scope.get("fastapi") or {}).get("effective_route_context")
    template = getattr(effective, "path_format", None)
    if template:
        return str(template)
    route = scope.get("route")
    if route is None:
        return UNMATCHED
    return str(getattr(route, "path_format", None) or getattr(route, "path", UNMATCHED))


class RequestContextMiddleware:
    """Request id, access log and request metrics around every HTTP request (pure ASGI)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope)
        header = (_HEADER_KEY, request_id.encode("latin-1"))
        status = 500  # what an exception before the response started ends as
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        metrics = self.metrics
        if metrics is not None:
            metrics.in_flight.inc()
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # a bug: answer the 500 here, with the request id the caller can quote (Starlette's own 500 page
            # would come from outside this middleware, without it); re-raised so the server logs the traceback
            if not started:
                await send_with_id(_INTERNAL_ERROR)
                await send({"type": "http.response.body", "body": _INTERNAL_ERROR_BODY})
            raise
        finally:
            seconds = time.perf_counter() - start
            route = route_template(scope)
            if metrics is not None:
                metrics.in_flight.dec()
                metrics.observe_request(scope["method"], route, status, seconds)
            _access_log(scope, route, status, seconds, request_id)
            structlog.contextvars.reset_contextvars(**tokens)


def _access_log(scope: Scope, route: str, status: int, seconds: float, request_id: str) -> None:
    fields: dict[str, Any] = {
        "method": scope["method"],
        "route": route,
        "status": status,
        "duration_ms": round(seconds * 1000.0, 2),
        "request_id": request_id,
    }
    principal = (scope.get("state") or {}).get("principal")  # set by deps.require for a verified key
    if principal is not None:
        fields["key_prefix"] = principal.prefix
    log = get_logger("lungcad.access")
    if status >= 500:
        log.error("request", **fields)
    elif route in PROBE_PATHS and status < 400:
        log.debug("request", **fields)
    else:
        log.info("request", **fields)


def install_observability(app: FastAPI, settings: ServiceSettings | None = None) -> ServiceMetrics:
    """Add the request middleware and the ``/healthz``, ``/readyz`` and ``/metrics`` routes to ``app``.

    Call it after the other middleware so that it is the outermost one (it then times and ids everything,
    gzip included).  An unhandled exception is answered here with a JSON 500 carrying the request id, so an
    ``exception_handler(Exception)`` of the app would not be reached.  The context is read from
    ``app.state.ctx`` at request time (the lifespan opens it).
    ``settings`` is accepted for symmetry with ``create_app``; the probes read the context's settings.
    """
    del settings  # the context's settings are the ones in force

    def get_ctx() -> Any:
        return app.state.ctx

    readiness = Readiness(get_ctx)
    metrics = ServiceMetrics(get_ctx, readiness=readiness.report)
    app.state.metrics = metrics
    app.state.readiness = readiness
    app.add_middleware(RequestContextMiddleware, metrics=metrics)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz(_request: Request) -> JSONResponse:
        report = readiness.report()
        return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics(_request: Request) -> Response:
        metrics.refresh()
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return metrics
