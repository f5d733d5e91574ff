"""Managing API keys: issue (``POST /admin/keys``, ``lungcad admin create-key``), list, revoke.

The key itself is returned once, by :func:`issue_key`; the database keeps only its scrypt hash
(``lungcad.service.security``).  A revocation clears this process's verified-key cache at once; other
processes (more API replicas) notice within ``security.CACHE_S`` seconds.
"""

from __future__ import annotations

import math

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from lungcad.errors import InputError
from lungcad.service.db.migrate import upgrade
from lungcad.service.db.models import ApiKey
from lungcad.service.db.session import as_utc, make_engine, make_sessionmaker, transaction, utcnow
from lungcad.service.errors import ApiError
from lungcad.service.security import KeyVerifier, NewKey, Role, create_key
from lungcad.service.settings import ServiceSettings

MAX_NAME_CHARS = 200
MAX_EXPIRES_DAYS = 36500.0  # a hundred years: beyond it, leave the expiry out


def check_key_request(role: str, name: str, expires_days: float | None) -> Role:
    """The role of a valid request; ``InputError`` naming the bad value otherwise."""
    try:
        parsed = Role(role)
    except ValueError:
        raise InputError(
            f"unknown role {role!r}", fix=f"use one of {', '.join(r.value for r in Role)}"
        ) from None
    if len(name) > MAX_NAME_CHARS:
        raise InputError(f"the key name is longer than {MAX_NAME_CHARS} characters", fix="shorten it")
    if expires_days is not None and not (
        math.isfinite(expires_days) and 0 < expires_days <= MAX_EXPIRES_DAYS
    ):
        raise InputError(
            f"expires_days must be in (0, {MAX_EXPIRES_DAYS:g}], got {expires_days}",
            fix="give the key's lifetime in days, or leave it out for a key that does not expire",
        )
    return parsed


def issue_key(
    sessions: sessionmaker[Session], role: str, *, name: str = "", expires_days: float | None = None
) -> NewKey:
    """Create a key of ``role`` (committed); ``NewKey.key`` is the only copy of the secret."""
    parsed = check_key_request(role, name, expires_days)
    with transaction(sessions) as s:
        return create_key(s, parsed, name=name, expires_days=expires_days)


def create_api_key(
    settings: ServiceSettings, role: str, *, name: str = "", expires_days: float | None = None
) -> NewKey:
    """``lungcad admin create-key``: migrate the database if needed, then issue a key (no model loaded)."""
    check_key_request(role, name, expires_days)  # before touching the database
    upgrade(settings.db_url)
    engine = make_engine(settings.db_url)
    try:
        return issue_key(make_sessionmaker(engine), role, name=name, expires_days=expires_days)
    finally:
        engine.dispose()


def list_keys(s: Session, *, limit: int, offset: int) -> tuple[list[ApiKey], int]:
    """One page of the keys, newest first (revoked and expired ones included), and how many there are."""
    total = s.scalar(select(func.count()).select_from(ApiKey)) or 0
    rows = s.scalars(
        select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.prefix).limit(limit).offset(offset)
    )
    return list(rows.all()), total


def is_usable(key: ApiKey) -> bool:
    """Not revoked and not expired (what ``KeyVerifier.verify`` accepts, given the right secret)."""
    expires = as_utc(key.expires_at)
    return key.revoked_at is None and (expires is None or expires > utcnow())


def revoke_key(sessions: sessionmaker[Session], verifier: KeyVerifier, prefix: str) -> ApiKey:
    """Revoke the key with ``prefix`` (idempotent: a revoked key keeps its first revocation time).

    Raises:
        ApiError: 404, no key has that prefix.
    """
    with transaction(sessions) as s:
        key = s.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
        if key is None:
            raise ApiError(
                404,
                "not_found",
                f"no API key with prefix {prefix!r}",
                fix="list them with GET /api/v1/admin/keys",
            )
        if key.revoked_at is None:
            key.revoked_at = utcnow()
    verifier.forget()  # this process stops accepting it now, not after the cache's lifetime
    return key
