"""``create_app(settings)``: the FastAPI application -- routers under ``/api/v1``, error handlers that give
every error the JSON body of ``lungcad.service.errors``, gzip for large responses.

The app opens its ``ServiceContext`` in the lifespan (database migrated, storage created, a model active),
so importing this module creates nothing; ``uvicorn`` gets the app from :func:`create_app`.
"""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from lungcad import __version__
from lungcad.errors import LungcadError
from lungcad.log import get_logger
from lungcad.service.context import ServiceContext, open_context
from lungcad.service.errors import ApiError
from lungcad.service.http_security import install_http_security
from lungcad.service.observability import install_observability
from lungcad.service.settings import ServiceSettings, check_serving

API_PREFIX = "/api/v1"
DB_RETRY_AFTER_S = 5  # Retry-After of a 503 for a database that is down, unreachable or locked
# a database that cannot answer now (down, unreachable, locked past the busy timeout, pool exhausted); an
# IntegrityError or a ProgrammingError is a bug and stays a 500
_DB_UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def _routers() -> list:
    from lungcad.service.api import ROUTERS

    return ROUTERS


def _error(status: int, body: dict, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.body(), exc.headers)

    @app.exception_handler(LungcadError)
    async def _lungcad_error(_request: Request, exc: LungcadError) -> JSONResponse:
        status = int(getattr(exc, "status_code", 422))
        body = {
            "error": getattr(exc, "code", "invalid_input"),
            "message": str(exc.args[0]) if exc.args else "",
        }
        # the message without the "Fix: ..." tail, which goes in its own field
        body["message"] = str(exc).split(" Fix: ")[0]
        if exc.fix:
            body["fix"] = exc.fix
        return _error(status, body)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        return _error(
            422,
            {
                "error": "invalid_request",
                "message": f"{'.'.join(first['loc'])}: {first['msg']}",
                "fix": "see the request schema in /api/v1/openapi.json",
                "detail": errors,
            },
        )

    async def _database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
        # the class name only: the driver's message can quote the statement and its parameters (PHI)
        get_logger("lungcad.service").warning("database_unavailable", error=type(exc).__name__)
        return _error(
            503,
            {
                "error": "database_unavailable",
                "message": "the database is unavailable or busy",
                "fix": f"retry after {DB_RETRY_AFTER_S} s; if it persists, check the database server",
            },
            {"Retry-After": str(DB_RETRY_AFTER_S)},
        )

    for kind in _DB_UNAVAILABLE:
        app.add_exception_handler(kind, _database_unavailable)

    @app.exception_handler(OSError)
    async def _os_error(_request: Request, exc: OSError) -> JSONResponse:
        if exc.errno not in _DISK_FULL:
            raise exc  # any other OSError is a bug: the observability middleware answers the 500
        get_logger("lungcad.service").error("disk_full", errno=exc.errno)
        return _error(
            507,
            {
                "error": "insufficient_storage",
                "message": "the service's storage is full; nothing was stored",
                "fix": "retry later; an operator must free space in the data folder",
            },
            {"Retry-After": "60"},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(
            exc.status_code, {"error": code, "message": str(exc.detail)}, getattr(exc, "headers", None)
        )


def create_app(settings: ServiceSettings | None = None, *, ctx: ServiceContext | None = None) -> FastAPI:
    """The API app for ``settings`` (or an already opened ``ctx``, which the caller then owns)."""
    if settings is None and ctx is None:
        raise ValueError("create_app needs settings or a context")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = ctx is None
        app.state.ctx = ctx if ctx is not None else open_context(settings)  # type: ignore[arg-type]
        try:
            yield
        finally:
            if own:
                app.state.ctx.close()

    app = FastAPI(
        title="lungcad",
        version=__version__,
        summary="Lung-nodule CAD for chest CT: studies in; nodules, Lung-RADS, reports, DICOM SEG / SR out.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    if ctx is not None:
        app.state.ctx = ctx
    effective = settings or ctx.settings  # type: ignore[union-attr]
    check_serving(effective)  # outside mode local: HTTPS or a TLS proxy (ConfigError otherwise)
    app.add_middleware(GZipMiddleware, minimum_size=effective.gzip_min_bytes)
    install_http_security(app, effective)  # HSTS, CORS, rate limiter
    install_error_handlers(app)
    for router in _routers():
        app.include_router(router, prefix=API_PREFIX)
    from lungcad.service.ui import mount_ui  # issue 15: the dashboard under /ui

    mount_ui(app, effective)

    # request ids, access log, /healthz, /readyz, /metrics; after add_middleware(GZip): the outermost layer
    install_observability(app, settings or ctx.settings)  # type: ignore[union-attr]
    return app
