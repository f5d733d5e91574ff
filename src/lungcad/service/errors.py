"""The API's error contract: every 4xx/5xx body is ``{"error": code, "message": ..., "fix": ...}``.

``ApiError`` is raised by service functions for conditions that are not about the input files (unknown id,
wrong state); ``lungcad.errors.LungcadError`` from the pipeline (bad DICOM, a foreign model) maps to 4xx
through its ``status_code`` attribute when it has one, else 422.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        fix: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fix = fix
        self.headers = headers  # response headers, e.g. Retry-After of a 429
        self.extra = extra

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.fix:
            out["fix"] = self.fix
        out.update(self.extra)
        return out


_PLURAL = {"study": "studies", "analysis": "analyses", "batch": "batches"}


def not_found(kind: str, ident: str) -> ApiError:
    plural = _PLURAL.get(kind, f"{kind}s")
    return ApiError(
        404, "not_found", f"no {kind} with id {ident!r}", fix=f"list them with GET /api/v1/{plural}"
    )


def conflict(message: str, fix: str | None = None) -> ApiError:
    return ApiError(409, "conflict", message, fix=fix)
