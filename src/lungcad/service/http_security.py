"""Transport security of the API: HSTS on HTTPS responses, CORS only for listed origins, and the per-key
rate limiter and key-usage clock the permission dependency uses -- ``install_http_security(app, settings)``.

HSTS (``Strict-Transport-Security``) tells a browser to use HTTPS only for a year; it is sent only on
responses that went out over TLS: the API's own (``scope["scheme"] == "https"`` when uvicorn serves with
``--ssl-certfile``) or, with ``behind_proxy``, a request the proxy says arrived over HTTPS
(``X-Forwarded-Proto: https``).  Sending it over plain HTTP would mean nothing (RFC 6797 8.1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from lungcad.service.audit import UsageClock
from lungcad.service.deps import API_KEY_HEADER
from lungcad.service.ratelimit import RateLimiter

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from lungcad.service.settings import ServiceSettings

HSTS_HEADER = b"strict-transport-security"
HSTS_VALUE = b"max-age=31536000; includeSubDomains"
_FORWARDED_PROTO = b"x-forwarded-proto"


def arrived_over_tls(scope: Scope, behind_proxy: bool) -> bool:
    if scope.get("scheme") == "https":
        return True
    if behind_proxy:
        for name, value in scope.get("headers", ()):
            if name == _FORWARDED_PROTO:
                return value.split(b",")[0].strip().lower() == b"https"
    return False


class HSTSMiddleware:
    """Adds the HSTS header to every response of a request that arrived over TLS (pure ASGI)."""

    def __init__(self, app: ASGIApp, behind_proxy: bool = False) -> None:
        self.app = app
        self.behind_proxy = behind_proxy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not arrived_over_tls(scope, self.behind_proxy):
            await self.app(scope, receive, send)
            return

        async def send_with_hsts(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), (HSTS_HEADER, HSTS_VALUE)]}
            await send(message)

        await self.app(scope, receive, send_with_hsts)


def install_http_security(app: FastAPI, settings: ServiceSettings) -> None:
    """HSTS, CORS (only when ``cors_origins`` lists origins) and the rate limiter on ``app.state``."""
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_minute)
    app.state.usage_clock = UsageClock()
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=[API_KEY_HEADER, "Content-Type", "If-None-Match", "X-Request-ID"],
            expose_headers=["ETag", "X-Request-ID", "Retry-After"],
        )
    app.add_middleware(HSTSMiddleware, behind_proxy=settings.behind_proxy)
