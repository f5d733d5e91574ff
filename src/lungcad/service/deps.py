"""FastAPI dependencies: the process's ``ServiceContext``, a database session per request, and the caller
(``X-API-Key`` checked against the permission matrix for the route's action, rate-limited per key and
audited).  Without the header, the dashboard's session cookie stands in for the key (the key it was opened
with, re-checked on every request; state-changing requests need its CSRF token: ``ui_session``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from sqlalchemy.orm import Session

from lungcad.service import audit, ui_session
from lungcad.service.context import ServiceContext
from lungcad.service.errors import ApiError
from lungcad.service.security import Action, Principal

API_KEY_HEADER = "X-API-Key"
_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="an API key (lc_...)")


def get_ctx(request: Request) -> ServiceContext:
    return request.app.state.ctx


def get_session(ctx: Annotated[ServiceContext, Depends(get_ctx)]) -> Iterator[Session]:
    with ctx.sessions() as session:
        yield session


def require(action: Action) -> Callable[..., Iterator[Principal]]:
    """A dependency that authenticates the caller, applies its key's rate limit, checks that its role may
    do ``action`` and writes the request's audit row (``lungcad.service.audit``): ``denied`` before a 403,
    ``ok`` or ``failed`` when the route has returned or raised."""

    def check(
        request: Request,
        ctx: Annotated[ServiceContext, Depends(get_ctx)],
        key: Annotated[str | None, Security(_key_header)] = None,
    ) -> Iterator[Principal]:
        if not key and ui_session.COOKIE in request.cookies:  # the dashboard: a session cookie, no key
            principal = _session_principal(request, ctx)
        elif not key:
            raise ApiError(
                401, "unauthenticated", "no API key", fix=f"send one in the {API_KEY_HEADER} header"
            )
        else:
            with ctx.sessions() as s:
                principal = ctx.keys.verify(s, key)
        if principal is None:
            raise ApiError(
                401,
                "unauthenticated",
                "the API key is unknown, revoked or expired",
                fix="ask an admin for a key",
            )
        state = request.app.state
        limiter = getattr(state, "rate_limiter", None)
        wait = limiter.take(principal.key_id) if limiter is not None else 0.0
        if wait > 0:
            raise ApiError(
                429,
                "rate_limited",
                f"more than {ctx.settings.rate_limit_per_minute} requests a minute with this key",
                fix=f"retry after {math.ceil(wait)} s (or ask for a higher LUNGCAD_RATE_LIMIT_PER_MINUTE)",
                headers={"Retry-After": str(math.ceil(wait))},
            )
        clock = getattr(state, "usage_clock", None)
        if not principal.can(action):
            audit.record(ctx, request, principal, action, audit.DENIED, clock)
            raise ApiError(
                403,
                "forbidden",
                f"role {principal.role.value!r} may not {action.value}",
                fix="use a key of a role that may (see the permission matrix in docs/service.md)",
            )
        request.state.principal = principal
        try:
            yield principal
        except Exception:
            audit.record(ctx, request, principal, action, audit.FAILED, clock)
            raise
        audit.record(ctx, request, principal, action, audit.OK, clock)

    # the route's action, readable from its dependencies (tests/service/test_rbac.py walks every route)
    check.action = action  # type: ignore[attr-defined]
    return check


def _session_principal(request: Request, ctx: ServiceContext) -> Principal:
    """The principal of the dashboard's session cookie (``lungcad.service.ui_session``): 401 when it is
    not valid any more, 403 when a state-changing request lacks the session's CSRF token."""
    store = ui_session.store_of(request.app.state, ctx.settings)
    with ctx.sessions() as s:
        found = store.read(s, request.cookies.get(ui_session.COOKIE))
    if found is None:
        raise ApiError(
            401,
            "unauthenticated",
            "the dashboard session is expired, logged out or its key was revoked",
            fix="log in again at /ui/login (or send an API key in the X-API-Key header)",
        )
    if request.method not in ui_session.SAFE_METHODS and not ui_session.csrf_ok(
        found.csrf, request.headers.get(ui_session.CSRF_HEADER)
    ):
        raise ApiError(
            403,
            "csrf_failed",
            f"a state-changing request with the session cookie needs its {ui_session.CSRF_HEADER} header",
            fix="send the token of the page's <meta name='csrf-token'> in the X-CSRF-Token header",
        )
    return found.principal


SessionDep = Annotated[Session, Depends(get_session)]
CtxDep = Annotated[ServiceContext, Depends(get_ctx)]
