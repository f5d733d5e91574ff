"""Request and response schemas of the API (pydantic v2), one module per resource so that each router's
models live beside nothing else: ``schemas.analyses``, ``schemas.batches``, ``schemas.worklist``,
``schemas.configs``, ``schemas.studies``, ``schemas.models``...

This module holds what every resource shares: the error body (``lungcad.service.errors.ApiError``), the
paginated list envelope and the ``limit`` / ``offset`` query parameters.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# bounded so that the database can bind it (SQLite integers are 64-bit: an unbounded offset was a 500)
MAX_OFFSET = 10**12

# ``limit`` and ``offset`` of every list route: ``def route(limit: LimitQuery = DEFAULT_LIMIT, ...)``
LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"items per page, 1-{MAX_LIMIT}")]
OffsetQuery = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="items to skip")]


class RequestModel(BaseModel):
    """Base of request bodies: an unknown field is an error (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    """Every 4xx / 5xx body: a code, a sentence naming the problem and, where one exists, the fix."""

    model_config = ConfigDict(extra="allow")  # some errors add context (e.g. ``status``, ``usable``)

    error: str = Field(description="machine-readable code: not_found, conflict, invalid_request, ...")
    message: str
    fix: str | None = None


class Page(BaseModel, Generic[T]):
    """One page of a list: ``items``, the ``total`` matching the filters, and the page's window."""

    items: list[T]
    total: int = Field(ge=0)
    limit: int = Field(ge=1, le=MAX_LIMIT)
    offset: int = Field(ge=0)


_REASONS = {
    304: "not modified (the ETag matches If-None-Match)",
    400: "malformed request",
    401: "no, or an invalid, API key",
    403: "the key's role may not do this",
    404: "unknown id",
    409: "the resource is not in a state that allows this",
    410: "the resource existed but its files are gone",
    413: "too large",
    415: "unsupported media type",
    422: "invalid input",
    503: "a back-end (database, queue) is unavailable; retry after the Retry-After seconds",
    507: "the service's storage is full; nothing was stored",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route: the error codes it documents, with ``ErrorBody``.  400 (a body that does
    not parse, e.g. broken JSON), 401, 403 and 503 (the database down or locked, with Retry-After) are
    documented on every route: any request can hit them."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in sorted({400, 401, 403, 503, *codes}):
        entry: dict[str, Any] = {"description": _REASONS.get(code, "error")}
        if code != 304:
            entry["model"] = ErrorBody
        out[code] = entry
    return out
