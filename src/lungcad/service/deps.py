"""FastAPI dependencies: the process's ``ServiceContext``, a database session per request, and the caller
(``X-API-Key`` checked against the permission matrix for the route's action, rate-limited per key and
audited)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from sqlalchemy.orm import Session

from lungcad.service import audit
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
        if not key:
            raise ApiError(
                401, "unauthenticated", "no API key", fix=f"send one in the {API_KEY_HEADER} header"
            )
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


SessionDep = Annotated[Session, Depends(get_session)]
CtxDep = Annotated[ServiceContext, Depends(get_ctx)]
