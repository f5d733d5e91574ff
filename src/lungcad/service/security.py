"""API keys, roles and the permission matrix.

A key looks like ``lc_3f9a1c2e_<43 url-safe characters>``: the 8-hex prefix identifies it (shown in key
lists and audit entries), the rest is the secret.  The database stores only a scrypt hash of the whole key
(a memory-hard KDF: a stolen table does not give working keys), so a key is shown once, when created.

Verifying scrypt costs ~30 ms; a verified key is remembered in-process for ``CACHE_S`` seconds (keyed by its
SHA-256, never by the key itself), so a revocation takes effect within that time on every process.

Permissions: :data:`PERMISSIONS` is the one table of which role may do what; routes ask for an
:class:`Action`, never for a role.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from lungcad.service.db.models import ApiKey
from lungcad.service.db.session import as_utc, utcnow

KEY_PREFIX = "lc"
CACHE_S = 30.0
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


class Role(enum.StrEnum):
    ADMIN = "admin"
    RADIOLOGIST = "radiologist"
    RESEARCHER = "researcher"
    SERVICE = "service"
    VIEWER = "viewer"


class Action(enum.StrEnum):
    STUDY_UPLOAD = "study.upload"
    STUDY_READ = "study.read"
    STUDY_DELETE = "study.delete"
    PHI_READ = "phi.read"
    ANALYSIS_CREATE = "analysis.create"
    ANALYSIS_READ = "analysis.read"
    ANALYSIS_CANCEL = "analysis.cancel"
    WORKLIST_READ = "worklist.read"
    MODEL_READ = "model.read"
    MODEL_WRITE = "model.write"
    CONFIG_READ = "config.read"
    EXPERIMENT_READ = "experiment.read"
    KEY_ADMIN = "key.admin"
    TRAINING_READ = "training.read"
    TRAINING_WRITE = "training.write"
    COHORT_WRITE = "cohort.write"
    AUDIT_READ = "audit.read"
    WEBHOOK_ADMIN = "webhook.admin"


A = Action
# The permission matrix (docs/service.md prints the same table, generated from this one).
PERMISSIONS: dict[Role, frozenset[Action]] = {
    Role.ADMIN: frozenset(Action),
    Role.RADIOLOGIST: frozenset(
        {
            A.STUDY_UPLOAD,
            A.STUDY_READ,
            A.PHI_READ,
            A.ANALYSIS_CREATE,
            A.ANALYSIS_READ,
            A.ANALYSIS_CANCEL,
            A.WORKLIST_READ,
            A.MODEL_READ,
            A.CONFIG_READ,
        }
    ),
    Role.RESEARCHER: frozenset(
        {
            A.STUDY_READ,
            A.ANALYSIS_CREATE,
            A.ANALYSIS_READ,
            A.WORKLIST_READ,
            A.MODEL_READ,
            A.CONFIG_READ,
            A.EXPERIMENT_READ,
        }
    ),
    Role.SERVICE: frozenset({A.STUDY_UPLOAD, A.ANALYSIS_CREATE, A.ANALYSIS_READ}),
    Role.VIEWER: frozenset({A.STUDY_READ, A.ANALYSIS_READ, A.WORKLIST_READ}),
}
# Training as a service (issue 14): researchers register cohorts, start / pause / resume / stop training
# jobs and follow them (admins may do everything anyway)
PERMISSIONS[Role.RESEARCHER] |= {A.TRAINING_READ, A.TRAINING_WRITE, A.COHORT_WRITE}


def allowed(role: Role | str, action: Action) -> bool:
    return action in PERMISSIONS.get(Role(role), frozenset())


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id and prefix (for audit) and its role."""

    key_id: str
    prefix: str
    role: Role

    def can(self, action: Action) -> bool:
        return allowed(self.role, action)


def _kdf(key: str, salt: bytes) -> bytes:
    return hashlib.scrypt(key.encode(), salt=salt, **_SCRYPT)


def hash_key(key: str) -> str:
    salt = secrets.token_bytes(16)
    return f"scrypt${salt.hex()}${_kdf(key, salt).hex()}"


def verify_hash(key: str, stored: str) -> bool:
    try:
        scheme, salt_hex, digest_hex = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    return hmac.compare_digest(_kdf(key, bytes.fromhex(salt_hex)), bytes.fromhex(digest_hex))


def split_key(key: str) -> str | None:
    """The prefix of a well-formed key, else None (``lc_3f9a1c2e_secret`` -> ``3f9a1c2e``)."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[1]) != 8 or len(parts[2]) < 32:
        return None
    return parts[1]


@dataclass(frozen=True)
class NewKey:
    key: str  # shown once
    record: ApiKey


def create_key(
    session: Session, role: Role | str, *, name: str = "", expires_days: float | None = None
) -> NewKey:
    """Create a key of ``role``; the caller commits ``session`` and shows ``NewKey.key`` once."""
    role = Role(role)
    while True:
        prefix = secrets.token_hex(4)
        if session.scalar(select(ApiKey.id).where(ApiKey.prefix == prefix)) is None:
            break
    key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    now = utcnow()
    record = ApiKey(
        id=uuid.uuid4().hex,
        prefix=prefix,
        key_hash=hash_key(key),
        role=role.value,
        name=name,
        created_at=now,
        expires_at=now + timedelta(days=expires_days) if expires_days else None,
    )
    session.add(record)
    session.flush()
    return NewKey(key, record)


def key_deadline(record: ApiKey) -> datetime | None:
    """When the key stops working: the earlier of its expiry and its revocation (None: never)."""
    times = [t for t in (as_utc(record.expires_at), as_utc(record.revoked_at)) if t is not None]
    return min(times) if times else None


class KeyVerifier:
    """Looks keys up and verifies them, remembering good ones for ``CACHE_S`` seconds."""

    def __init__(self, cache_s: float = CACHE_S) -> None:
        self.cache_s = cache_s
        self._cache: dict[str, tuple[float, Principal, datetime | None]] = {}
        self._lock = threading.Lock()

    def forget(self) -> None:
        with self._lock:
            self._cache.clear()

    def verify(self, session: Session, key: str | None) -> Principal | None:
        """The principal of a valid, unrevoked, unexpired key; None otherwise."""
        if not key:
            return None
        prefix = split_key(key)
        if prefix is None:
            return None
        fingerprint = hashlib.sha256(key.encode()).hexdigest()
        now_mono, now = time.monotonic(), utcnow()
        with self._lock:
            hit = self._cache.get(fingerprint)
        if hit and now_mono - hit[0] < self.cache_s and (hit[2] is None or hit[2] > now):
            return hit[1]
        record = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
        if record is None:
            return None
        # a rotated key may be revoked in the future (its grace period): it works until then
        expires = key_deadline(record)
        if expires is not None and expires <= now:
            return None
        if not verify_hash(key, record.key_hash):
            return None
        principal = Principal(record.id, record.prefix, Role(record.role))
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[fingerprint] = (now_mono, principal, expires)
        return principal


def patient_hash(secret: str, patient_id: str | None) -> str | None:
    """HMAC-SHA256 of a patient id under the service secret, 32 hex: filterable, not reversible."""
    if not patient_id:
        return None
    return hmac.new(secret.encode(), patient_id.encode(), hashlib.sha256).hexdigest()[:32]


def permission_table() -> str:
    """The permission matrix as a Markdown table (``docs/service.md`` carries exactly this text)."""
    roles = list(Role)
    lines = ["| action | " + " | ".join(r.value for r in roles) + " |", "|---|" + "---|" * len(roles)]
    for action in Action:
        marks = " | ".join("yes" if allowed(r, action) else "-" for r in roles)
        lines.append(f"| `{action.value}` | {marks} |")
    return "\n".join(lines) + "\n"
