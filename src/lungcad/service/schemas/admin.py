"""Schemas of ``/admin``: API keys (never their hash), the create request, and a new key (shown once)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from lungcad.service.db.models import ApiKey
from lungcad.service.db.session import as_utc
from lungcad.service.keys import MAX_EXPIRES_DAYS, MAX_GRACE_S, MAX_NAME_CHARS, is_usable
from lungcad.service.schemas import RequestModel
from lungcad.service.security import Role

PREFIX_PATTERN = r"^[0-9a-f]{8}$"


class KeyCreate(RequestModel):
    """``POST /admin/keys``."""

    role: Role = Field(description="what the key may do (the permission matrix in docs/service.md)")
    name: str = Field("", max_length=MAX_NAME_CHARS, description="who or what uses it (display only)")
    expires_days: float | None = Field(
        None, gt=0, le=MAX_EXPIRES_DAYS, description="lifetime in days; null: does not expire"
    )


class KeyOut(BaseModel):
    """An API key as listed: its public prefix, role and dates; ``active``: not revoked, not expired."""

    prefix: str = Field(description="the 8 hex characters after lc_: names the key in lists and logs")
    role: Role
    name: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    active: bool

    @classmethod
    def from_row(cls, row: ApiKey) -> KeyOut:
        return cls(
            prefix=row.prefix,
            role=Role(row.role),
            name=row.name,
            created_at=as_utc(row.created_at),
            expires_at=as_utc(row.expires_at),
            revoked_at=as_utc(row.revoked_at),
            last_used_at=as_utc(row.last_used_at),
            active=is_usable(row),
        )


class NewKeyOut(KeyOut):
    """A created key: ``key`` is the secret, returned this once (the service keeps only its hash)."""

    key: str = Field(description="send it in the X-API-Key header; it cannot be shown again")


class KeyRotate(RequestModel):
    """``POST /admin/keys/{prefix}/rotate``."""

    grace_s: float = Field(
        0.0, ge=0, le=MAX_GRACE_S, description="seconds the old key keeps working (0: revoked at once)"
    )


class RotatedKeyOut(NewKeyOut):
    """The new key (its secret shown this once) and the key it replaces, with its revocation time."""

    replaces: KeyOut
