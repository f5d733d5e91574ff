"""Browser sessions of the dashboard (``/ui``): an API key exchanged once for a signed session cookie.

The browser never keeps the API key.  ``POST /ui/login`` verifies it (``KeyVerifier``, the same keys and
roles as the API) and sets ``lungcad_session``: HttpOnly (no script reads it), SameSite=Strict (no other site
sends it), ``Secure`` when the request arrived over TLS, ``Path=/``.  Its value is signed with the service's
``secret_key`` (itsdangerous, HMAC-SHA256) and holds only ids::

    {"sid": <random session id>, "kid": <api key id>, "csrf": <random token>}

so a forged or edited cookie fails the signature, and every request looks the key row up again: a key
revoked or expired since the login ends its sessions at once (no cache), and a session lives at most
``MAX_AGE_S`` seconds after the login.  ``POST /ui/logout`` puts the session id on a denylist of this
process (``SessionStore``) and deletes the cookie; with several API replicas behind a balancer a logged-out
cookie still works on the others until it expires -- revoke the key to end every session everywhere.

CSRF: a request authenticated by the cookie that changes state (any method but GET / HEAD / OPTIONS) must
carry the session's token in the ``X-CSRF-Token`` header (the dashboard reads it from its page's
``<meta name="csrf-token">``); forms post it as the ``csrf_token`` field.  The token is bound to the signed
session (a synchronizer token), so another site can neither read nor guess it; SameSite=Strict is the second
line.  Requests with ``X-API-Key`` are untouched: API clients send no cookie and need no token.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.orm import Session

from lungcad.service.db.models import ApiKey
from lungcad.service.security import Principal, Role
from lungcad.service.settings import ServiceSettings

COOKIE = "lungcad_session"
LOGIN_CSRF_COOKIE = "lungcad_login_csrf"  # the login form's own double-submit token (before any session)
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
MAX_AGE_S = 12 * 3600  # one reading shift
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SALT = "lungcad.ui.session.v1"


@dataclass(frozen=True)
class UiSession:
    """A verified session: who (the key's principal) and its CSRF token."""

    sid: str
    principal: Principal
    csrf: str


class SessionStore:
    """Signs and reads session cookies; remembers the sessions logged out in this process."""

    def __init__(self, settings: ServiceSettings) -> None:
        self._serializer = URLSafeTimedSerializer(settings.secret_key, salt=_SALT)
        self._ended: dict[str, float] = {}  # sid -> when it would have expired anyway (monotonic)
        self._lock = threading.Lock()

    def issue(self, principal: Principal) -> tuple[str, str]:
        """A new session of ``principal``: (cookie value, CSRF token)."""
        csrf = secrets.token_urlsafe(32)
        value = self._serializer.dumps(
            {"sid": secrets.token_urlsafe(16), "kid": principal.key_id, "csrf": csrf}
        )
        return value, csrf

    def end(self, sid: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._ended = {k: t for k, t in self._ended.items() if t > now}  # forget the expired ones
            self._ended[sid] = now + MAX_AGE_S

    def read(self, s: Session, value: str | None) -> UiSession | None:
        """The session of a cookie value: signed by us, younger than ``MAX_AGE_S``, not logged out, its key
        still usable; None otherwise."""
        if not value:
            return None
        try:
            data = self._serializer.loads(value, max_age=MAX_AGE_S)
        except BadSignature:  # includes SignatureExpired
            return None
        if not isinstance(data, dict) or not all(
            isinstance(data.get(k), str) for k in ("sid", "kid", "csrf")
        ):
            return None
        with self._lock:
            if data["sid"] in self._ended:
                return None
        record = s.get(ApiKey, data["kid"])
        if record is None:
            return None
        from lungcad.service.keys import is_usable  # keys imports the database layer; only needed here

        if not is_usable(record):
            return None
        return UiSession(data["sid"], Principal(record.id, record.prefix, Role(record.role)), data["csrf"])


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


def store_of(app_state: object, settings: ServiceSettings) -> SessionStore:
    """The app's ``SessionStore`` (made on first use, so an app without the dashboard needs none)."""
    store = getattr(app_state, "ui_sessions", None)
    if store is None:
        store = SessionStore(settings)
        app_state.ui_sessions = store  # type: ignore[attr-defined]
    return store
