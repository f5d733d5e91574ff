"""``/readyz``: can this process serve and accept work right now?

Checks (each ``{ok, detail}``; any failure makes the answer 503):

* ``database``: a query of the schema revision, which must be the code's Alembic head (an un-migrated
  database is as unusable as an unreachable one).
* ``queue``: the Huey storage answers (SQLite: the queue file opens and its task table is read; Redis: a
  command round trip), through the same ``ctx.queue`` the API enqueues with.
* ``storage``: a probe file is written and removed under ``data_dir/tmp`` (where uploads are staged).
* ``disk``: the data folder's file system has at least ``settings.min_free_disk_bytes`` free.
* ``model``: the active model's blob exists, still hashes to its SHA-256 (so it is the file that was
  validated when registered), is a readable zip archive and holds the lungcad model format marker.  The
  verdict is cached per (sha256, inode, size, mtime): hashing ~5 MB costs ~10 ms once, a ``stat`` per call
  after that.  ``torch.load`` is deliberately not used: the first import of torch in an API process takes
  seconds, longer than an orchestrator's probe timeout.

The whole report is cached for ``cache_s`` (1 s) so a flood of probes costs one round of checks per second;
a typical uncached round takes a few milliseconds on SQLite.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, text

from lungcad.service.db.models import ModelFile

if TYPE_CHECKING:
    from lungcad.service.context import ServiceContext

MODEL_MARKER = b"lungcad-model"  # lungcad.model.bundle.FORMAT, pickled as a plain string in data.pkl
DETAIL_MAX = 300
HASH_CHUNK = 1024 * 1024

Check = tuple[bool, str]


class Readiness:
    """The checks of ``/readyz`` for the context that ``get_ctx()`` returns."""

    def __init__(self, get_ctx: Callable[[], ServiceContext], *, cache_s: float = 1.0) -> None:
        self._get_ctx = get_ctx
        self.cache_s = cache_s
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._model_verdicts: dict[str, tuple[tuple[int, int, int], Check]] = {}
        self._head: str | None = None

    def report(self) -> dict[str, Any]:
        """``{"status": "ok" | "fail", "checks": {name: {"ok": bool, "detail": str}}}``."""
        with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < self.cache_s:
                return self._cached[1]
            ctx = self._get_ctx()
            checks: dict[str, dict[str, Any]] = {}
            for name, check in (
                ("database", self._database),
                ("queue", _queue),
                ("storage", _storage),
                ("disk", _disk),
                ("model", self._model),
            ):
                try:
                    ok, detail = check(ctx)
                except Exception as exc:  # noqa: BLE001 - any failure is the check's verdict, not a 500
                    # /readyz is unauthenticated: a driver's message names hosts, ports and users, so the
                    # probe says only what kind of failure it was (the exception class, e.g. OperationalError)
                    ok, detail = False, f"{type(exc).__name__} (unreachable or failing; see the service)"
                checks[name] = {"ok": ok, "detail": detail[:DETAIL_MAX]}
            status = "ok" if all(c["ok"] for c in checks.values()) else "fail"
            result = {"status": status, "checks": checks}
            self._cached = (time.monotonic(), result)
            return result

    def _database(self, ctx: ServiceContext) -> Check:
        if self._head is None:
            from lungcad.service.db.migrate import head_revision

            self._head = head_revision()
        with ctx.engine.connect() as conn:
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        if revision != self._head:
            return (
                False,
                f"schema at revision {revision}, this code needs {self._head}: run lungcad admin migrate",
            )
        return True, f"{ctx.engine.dialect.name}, schema {revision}"

    def _model(self, ctx: ServiceContext) -> Check:
        with ctx.sessions() as s:
            row = s.execute(
                select(ModelFile.sha256, ModelFile.model_id, ModelFile.model_version).where(
                    ModelFile.active.is_(True)
                )
            ).first()
        if row is None:
            return False, "no active model: register one (POST /api/v1/models) and activate it"
        digest, model_id, version = row
        path = ctx.storage.blob_path(digest)
        try:
            st = path.stat()
        except OSError:
            return False, f"the file of active model {model_id} {version} is missing (sha256 {digest[:12]})"
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        cached = self._model_verdicts.get(digest)
        if cached is not None and cached[0] == key:
            return cached[1]
        verdict = _model_file_verdict(path, digest, f"{model_id} {version}")
        self._model_verdicts[digest] = (key, verdict)
        return verdict


def _queue(ctx: ServiceContext) -> Check:
    try:
        huey = ctx.queue
    except ImportError:  # the jobs package is not installed in this build: check the configured store
        return _queue_from_settings(ctx)
    pending = huey.storage.queue_size()
    kind = "redis" if ctx.settings.uses_redis else type(huey.storage).__name__.removesuffix("Storage").lower()
    return True, f"{kind}, {pending} message(s) pending"


def _queue_from_settings(ctx: ServiceContext) -> Check:
    settings = ctx.settings
    if settings.queue_immediate:
        return True, "in-process (queue_immediate)"
    if settings.uses_redis:
        import redis

        client = redis.Redis.from_url(settings.queue_url, socket_timeout=1.0, socket_connect_timeout=1.0)
        try:
            client.ping()
        finally:
            client.close()
        return True, "redis"
    import sqlite3

    conn = sqlite3.connect(settings.queue_file, timeout=1.0)
    try:
        conn.execute("SELECT 1").fetchone()
    finally:
        conn.close()
    return True, "sqlite"


def _storage(ctx: ServiceContext) -> Check:
    tmp = ctx.storage.tmp
    for folder in (ctx.storage.blobs, ctx.storage.results):
        if not folder.is_dir():
            return False, f"{folder.name}/ is not a folder under the data folder"
    probe = tmp / f".readyz-{uuid.uuid4().hex}"
    try:
        with open(probe, "wb") as fh:
            fh.write(b"ok")
    except OSError as exc:
        return False, f"cannot write under the data folder's tmp/: {exc.strerror or type(exc).__name__}"
    finally:
        try:
            os.unlink(probe)
        except OSError:
            pass
    return True, "writable"


def _disk(ctx: ServiceContext) -> Check:
    free = shutil.disk_usage(ctx.settings.data_dir).free
    need = ctx.settings.min_free_disk_bytes
    detail = f"{free / 2**30:.2f} GiB free, {need / 2**30:.2f} GiB required"
    return free >= need, detail


def _model_file_verdict(path: Path, digest: str, name: str) -> Check:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            h.update(chunk)
    if h.hexdigest() != digest:
        return False, f"model {name}: the file is damaged (its sha256 no longer matches {digest[:12]})"
    try:
        with zipfile.ZipFile(path) as zf:
            pickles = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if not pickles:
                return False, f"model {name}: not a PyTorch archive (no data.pkl)"
            header = zf.read(pickles[0])
    except (zipfile.BadZipFile, OSError) as exc:
        return False, f"model {name}: unreadable archive ({exc})"
    if MODEL_MARKER not in header:
        return False, f"model {name}: not a lungcad model file (format marker missing)"
    return True, f"{name} (sha256 {digest[:12]})"
