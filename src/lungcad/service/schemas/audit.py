"""Schemas of ``/admin/audit``: one audit row (ids only, never patient data)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from lungcad.service.db.models import AuditEvent
from lungcad.service.db.session import as_utc

Outcome = Literal["ok", "denied", "failed"]


class AuditEventOut(BaseModel):
    """Who (key prefix and role) did what (the permission's action) to which resource, and how it ended:
    ``ok``, ``denied`` (403: the role may not) or ``failed`` (the route refused it: unknown id, bad state)."""

    id: int
    at: datetime
    key_prefix: str
    role: str
    action: str = Field(description="the permission checked: study.read, study.delete, analysis.read, ...")
    resource_type: str = Field(description="study, analysis, file (a result download), batch, worklist, ...")
    resource_id: str | None = Field(description="the study / analysis / batch id; analysis_id/name of a file")
    study_id: str | None = Field(description="the study concerned, when the request concerned one")
    outcome: Outcome
    request_id: str | None
    client_ip: str | None

    @classmethod
    def from_row(cls, row: AuditEvent) -> AuditEventOut:
        return cls(
            id=row.id,
            at=as_utc(row.at),
            key_prefix=row.key_prefix,
            role=row.role,
            action=row.action,
            resource_type=row.resource_type,
            resource_id=row.resource_id,
            study_id=row.study_id,
            outcome=row.outcome,  # type: ignore[arg-type]
            request_id=row.request_id,
            client_ip=row.client_ip,
        )
