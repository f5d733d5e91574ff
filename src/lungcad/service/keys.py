"""Managing API keys: issue (``POST /admin/keys``, ``lungcad admin create-key``), list, revoke, rotate.

The key itself is returned once, by :func:`issue_key`; the database keeps only its scrypt hash
(``lungcad.service.security``).  A revocation clears this process's verified-key cache at once; other
processes (more API replicas) notice within ``security.CACHE_S`` seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from lungcad.errors import InputError
from lungcad.service.db.migrate import upgrade
from lungcad.service.db.models import ApiKey
from lungcad.service.db.session import as_utc, make_engine, make_sessionmaker, transaction, utcnow
from lungcad.service.errors import ApiError
from lungcad.service.security import KeyVerifier, NewKey, Role, create_key, key_deadline
from lungcad.service.settings import ServiceSettings

MAX_NAME_CHARS = 200
MAX_EXPIRES_DAYS = 36500.0  # a hundred years: beyond it, leave the expiry out
MAX_GRACE_S = 30 * 86400.0  # a rotated key works at most a month longer
T = TypeVar("T")


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
    """Not revoked and not expired now (what ``KeyVerifier.verify`` accepts, given the right secret); a
    rotated key in its grace period is usable until its revocation time."""
    deadline = key_deadline(key)
    return deadline is None or deadline > utcnow()


def _find(s: Session, prefix: str) -> ApiKey:
    key = s.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if key is None:
        raise ApiError(
            404,
            "not_found",
            f"no API key with prefix {prefix!r}",
            fix="list them with GET /api/v1/admin/keys",
        )
    return key


def _refuse_last_admin(s: Session, key: ApiKey) -> None:
    """409 when ``key`` is the last admin key that works with no revocation pending: without one, nobody
    could manage keys through the API any more."""
    if key.role != Role.ADMIN.value or not is_usable(key):
        return
    others = s.scalars(
        select(ApiKey)
        .where(ApiKey.role == Role.ADMIN.value, ApiKey.id != key.id, ApiKey.revoked_at.is_(None))
        .with_for_update()  # PostgreSQL: two revocations at once cannot both pass this check
    ).all()
    if not any(is_usable(k) for k in others):
        raise ApiError(
            409,
            "last_admin_key",
            f"key {key.prefix} is the last active admin key",
            fix="create another admin key first (POST /api/v1/admin/keys or lungcad admin create-key "
            "--role admin), or rotate this one (POST /api/v1/admin/keys/{prefix}/rotate)",
        )


def revoke_key(sessions: sessionmaker[Session], verifier: KeyVerifier, prefix: str) -> ApiKey:
    """Revoke the key with ``prefix`` now (idempotent: a revoked key keeps its first revocation time; a
    revocation pending after a rotation is brought forward to now).

    Raises:
        ApiError: 404, no key has that prefix; 409, it is the last active admin key.
    """
    now = utcnow()
    with transaction(sessions) as s:
        key = _find(s, prefix)
        _refuse_last_admin(s, key)
        revoked = as_utc(key.revoked_at)
        if revoked is None or revoked > now:
            key.revoked_at = now
    verifier.forget()  # this process stops accepting it now, not after the cache's lifetime
    return key


def rotate_key(
    sessions: sessionmaker[Session], verifier: KeyVerifier, prefix: str, *, grace_s: float = 0.0
) -> tuple[NewKey, ApiKey]:
    """Replace the key ``prefix`` by a new key of the same role, name and lifetime; the old one is revoked
    ``grace_s`` seconds from now (0: at once), so clients can switch without an outage.

    Returns:
        (the new key -- its secret shown once --, the old key's row).

    Raises:
        ApiError: 404, no key has that prefix; 409, the key is already revoked or expired.
    """
    if not (math.isfinite(grace_s) and 0 <= grace_s <= MAX_GRACE_S):
        raise InputError(f"grace_s must be in [0, {MAX_GRACE_S:g}], got {grace_s}", fix="give seconds")
    now = utcnow()
    with transaction(sessions) as s:
        old = _find(s, prefix)
        if not is_usable(old) or old.revoked_at is not None:
            raise ApiError(
                409,
                "key_not_active",
                f"key {prefix} is revoked or expired (or already rotated)",
                fix="create a new key with POST /api/v1/admin/keys",
            )
        created, expires = as_utc(old.created_at), as_utc(old.expires_at)
        lifetime_days = (expires - created).total_seconds() / 86400.0 if expires and created else None
        new = create_key(s, Role(old.role), name=old.name, expires_days=lifetime_days)
        old.revoked_at = now + timedelta(seconds=grace_s)
    verifier.forget()
    return new, old


# -- the CLI's entry points: they open the database themselves (no model, no queue) -------------------------
def _with_sessions(settings: ServiceSettings, work: Callable[[sessionmaker[Session]], T]) -> T:
    upgrade(settings.db_url)
    engine = make_engine(settings.db_url)
    try:
        return work(make_sessionmaker(engine))
    finally:
        engine.dispose()


def list_api_keys(settings: ServiceSettings) -> list[ApiKey]:
    """``lungcad admin list-keys``: every key, newest first."""

    def work(sessions: sessionmaker[Session]) -> list[ApiKey]:
        with sessions() as s:
            rows, _total = list_keys(s, limit=1_000_000, offset=0)
            return rows

    return _with_sessions(settings, work)


def revoke_api_key(settings: ServiceSettings, prefix: str) -> ApiKey:
    """``lungcad admin revoke-key PREFIX`` (running API processes notice within ``security.CACHE_S``)."""
    return _with_sessions(settings, lambda sessions: revoke_key(sessions, KeyVerifier(), prefix))


def rotate_api_key(settings: ServiceSettings, prefix: str, *, grace_s: float = 0.0) -> tuple[NewKey, ApiKey]:
    """``lungcad admin rotate-key PREFIX [--grace-s S]``."""
    return _with_sessions(
        settings, lambda sessions: rotate_key(sessions, KeyVerifier(), prefix, grace_s=grace_s)
    )
