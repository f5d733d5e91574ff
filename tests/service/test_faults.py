"""Faults of what the service stands on: the answer is a clean JSON error, never a 500, and nothing is lost
or left half-stored.

* SQLite locked by another connection (``BEGIN EXCLUSIVE``) past the busy timeout -> 503 + Retry-After.
* PostgreSQL refusing connections (the real server; the test's database set ``ALLOW_CONNECTIONS false`` and
  its sessions terminated) -> 503 + Retry-After, and ``/readyz`` says the database is down; back when the
  database is.
* Disk full while an upload is written (the data folder on a small tmpfs) -> 507 with the JSON error body,
  nothing stored, no partial file in ``D/tmp`` or ``D/blobs``; skipped when tmpfs cannot be mounted.
* A corrupt model file at start-up -> ``/readyz`` false with the reason: covered by
  ``tests/service/test_observability.py::test_readyz_fails_for_a_corrupt_model_file`` (junk and truncated
  files) and ``::test_readyz_fails_for_a_missing_model_file``.

Kill -9 of a worker mid-job and of the API mid-upload are in ``test_jobs_crash.py`` / ``test_e2e.py``.
"""

from __future__ import annotations

import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

import lungcad.service.db.session as db_session
from lungcad.service.app import DB_RETRY_AFTER_S, create_app
from lungcad.service.context import ServiceContext, open_context
from lungcad.service.db.session import transaction
from lungcad.service.security import create_key
from lungcad.service.settings import load_settings
from tests.service.helpers_analyses import add_study
from tests.service.uploads import blob_files, form, slab_bytes, stored

API = "/api/v1"


def _assert_unavailable(r) -> None:  # noqa: ANN001 - an httpx response
    assert r.status_code == 503, (r.status_code, r.text[:300])
    assert r.headers["retry-after"] == str(DB_RETRY_AFTER_S)
    body = r.json()
    assert body["error"] == "database_unavailable" and body["fix"]
    assert "SELECT" not in r.text and "INSERT" not in r.text  # no statement (or its parameters) leaks


def _key(ctx: ServiceContext) -> dict[str, str]:
    with transaction(ctx.sessions) as s:
        return {"X-API-Key": create_key(s, "admin").key}


# -- SQLite locked -------------------------------------------------------------------------------------------
@pytest.fixture
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """New SQLite connections wait 200 ms for a lock instead of 30 s."""
    monkeypatch.setattr(db_session, "SQLITE_BUSY_TIMEOUT_MS", 200)


def test_sqlite_locked_is_503_with_retry_after(tmp_path: Path, short_busy_timeout: None) -> None:
    ctx = open_context(load_settings(tmp_path / "data", environ={}, queue_immediate=False))
    try:
        headers = _key(ctx)
        study_id = add_study(ctx)
        with TestClient(create_app(ctx=ctx), raise_server_exceptions=False) as client:
            assert client.get(f"{API}/studies/{study_id}", headers=headers).status_code == 200
            holder = sqlite3.connect(ctx.settings.data_dir / "lungcad.db", timeout=0.1, isolation_level=None)
            try:
                holder.execute("BEGIN EXCLUSIVE")  # another process writing for a long time
                r = client.post(f"{API}/analyses", json={"study_id": study_id}, headers=headers)
                _assert_unavailable(r)
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            # the lock gone, the same request works: nothing was left half-done by the refused one
            again = client.post(f"{API}/analyses", json={"study_id": study_id}, headers=headers)
            assert again.status_code == 202, again.text
            listed = client.get(f"{API}/analyses", headers=headers).json()
            assert listed["total"] == 1
    finally:
        ctx.close()


# -- PostgreSQL refusing connections -------------------------------------------------------------------------
def _pg_admin(url: str) -> sa.Engine:
    return sa.create_engine(
        sa.make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool
    )


def test_postgres_unavailable_is_503_and_readyz_says_why(tmp_path: Path, postgres_db_url: str) -> None:
    name = sa.make_url(postgres_db_url).database
    ctx = open_context(load_settings(tmp_path / "data", environ={}, database_url=postgres_db_url))
    admin = _pg_admin(postgres_db_url)
    try:
        headers = _key(ctx)
        study_id = add_study(ctx)
        with TestClient(create_app(ctx=ctx), raise_server_exceptions=False) as client:
            assert client.get(f"{API}/studies/{study_id}", headers=headers).status_code == 200
            with admin.connect() as conn:
                conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
                conn.execute(
                    sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                    {"n": name},
                )
            try:
                ctx.keys.forget()  # a cached key would skip the database on the first request
                for method, path in (
                    ("GET", f"studies/{study_id}"),
                    ("GET", "worklist"),
                    ("POST", "analyses"),
                ):
                    kw = {"json": {"study_id": study_id}} if method == "POST" else {}
                    _assert_unavailable(client.request(method, f"{API}/{path}", headers=headers, **kw))
                ready = client.get("/readyz")
                assert ready.status_code == 503 and ready.json()["checks"]["database"]["ok"] is False
            finally:
                with admin.connect() as conn:
                    conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
            # back: the pool reconnects (pre-ping), no restart needed
            assert client.get(f"{API}/studies/{study_id}", headers=headers).status_code == 200
            time.sleep(client.app.state.readiness.cache_s + 0.1)  # the probe's report is cached that long
            back = client.get("/readyz")
            assert back.status_code == 200, back.json()
    finally:
        ctx.close()
        admin.dispose()


# -- disk full -----------------------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A data folder on a tmpfs of 9 MiB: the database and the shipped model (~5.5 MB) fit, a study of the
    slab (8.4 MB) does not."""
    mount = tmp_path / "small"
    mount.mkdir()
    run = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=9m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if run.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {run.stderr.strip() or run.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True)


def test_disk_full_during_an_upload_is_507_and_stores_nothing(small_disk: Path) -> None:
    ctx = open_context(load_settings(small_disk / "data", environ={}, queue_immediate=False))
    try:
        headers = _key(ctx)
        before = {p.name for p in blob_files(ctx.settings.data_dir)}  # the model file
        files = slab_bytes()
        with TestClient(create_app(ctx=ctx), raise_server_exceptions=False) as client:
            r = client.post(
                f"{API}/studies",
                files=form(*((f"im{i:03d}.dcm", d) for i, d in enumerate(files))),
                headers=headers,
            )
            assert r.status_code == 507, (r.status_code, r.text[:300])
            assert r.json()["error"] == "insufficient_storage" and r.json()["fix"]
            assert stored(ctx).nothing, stored(ctx)  # no rows, no blobs, nothing left in D/tmp
            assert {p.name for p in blob_files(ctx.settings.data_dir)} == before
            # still serving: reads work, and a small upload that fits would be judged normally
            assert client.get(f"{API}/studies", headers=headers).json()["total"] == 0
            small = client.post(f"{API}/studies", files=form(("a.dcm", files[0])), headers=headers)
            assert small.status_code == 422, small.text  # one slice: no usable series (not a disk error)
            assert stored(ctx).nothing
    finally:
        ctx.close()
