"""JSON routes of the dashboard under ``/ui/data`` for what ``/api/v1`` does not answer whole
(``lungcad.service.ui_ops``): the batches, a model's full card, the operations summary.

They take the session cookie only (no API key: API clients have ``/api/v1`` and ``/metrics``), check the
role like every API route (401 without a session, 403 with the reason when the role lacks the action) and
write the same audit row.  Only GET: nothing here changes state, so no CSRF token is involved.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse

from lungcad.service import audit, ui_ops
from lungcad.service.errors import ApiError
from lungcad.service.security import Action, Principal

SessionFn = Callable[[Request], Any]  # request -> ui_session.UiSession | None
HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def _error(status: int, code: str, message: str, fix: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message, "fix": fix}, status_code=status, headers=HEADERS)


def register(ui: FastAPI, parent: FastAPI, current: SessionFn) -> None:
    """Add the ``/data/...`` routes to the dashboard app ``ui`` (mounted on the API app ``parent``)."""

    def guarded(request: Request, action: Action, work: Callable[[Principal], Any]) -> JSONResponse:
        ctx = parent.state.ctx
        session = current(request)
        if session is None:
            return _error(401, "unauthenticated", "no dashboard session", "log in at /ui/login")
        p: Principal = session.principal
        clock = getattr(parent.state, "usage_clock", None)
        if not p.can(action):
            audit.record(ctx, request, p, action, audit.DENIED, clock)
            return _error(
                403,
                "forbidden",
                f"role {p.role.value!r} may not {action.value}",
                "use a key of a role that may (see the permission matrix in docs/service.md)",
            )
        try:
            body = work(p)
        except ApiError as exc:
            audit.record(ctx, request, p, action, audit.FAILED, clock)
            return JSONResponse(exc.body(), status_code=exc.status, headers=HEADERS)
        audit.record(ctx, request, p, action, audit.OK, clock)
        return JSONResponse(body, headers=HEADERS)

    @ui.get("/data/batches", include_in_schema=False)
    def batches(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> JSONResponse:
        def work(_p: Principal) -> dict[str, Any]:
            with parent.state.ctx.sessions() as s:
                rows, total = ui_ops.list_batches(s, limit=limit, offset=offset)
            items = [
                {
                    "id": b.id,
                    "created_at": b.created_at.isoformat(),
                    "n_analyses": len(b.analysis_ids),
                    "counts": {k.value: v for k, v in b.counts.items()},
                    "progress": b.progress,
                    "finished": b.finished,
                    "analysis_ids": b.analysis_ids,
                }
                for b in rows
            ]
            return {"items": items, "total": total, "limit": limit, "offset": offset}

        return guarded(request, Action.ANALYSIS_READ, work)

    @ui.get("/data/models/{sha256}/card", include_in_schema=False)
    def card(request: Request, sha256: str) -> JSONResponse:
        def work(_p: Principal) -> dict[str, Any]:
            with parent.state.ctx.sessions() as s:
                return {"sha256": sha256, "card": ui_ops.model_card(s, sha256)}

        return guarded(request, Action.MODEL_READ, work)

    @ui.get("/data/operations", include_in_schema=False)
    def operations(request: Request) -> JSONResponse:
        return guarded(
            request, Action.AUDIT_READ, lambda _p: ui_ops.operations(parent.state.ctx, parent.state.metrics)
        )
