"""Upload hardening beyond the intake's own tests: the per-study size cap across merged uploads (413,
nothing stored), absolute paths in a zip through the API, and no temporary file left behind -- neither in
``D/tmp`` nor in the system temp folder, where Starlette spools multipart files -- after each refused
upload."""

from __future__ import annotations

import os
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from lungcad.service.app import create_app
from lungcad.service.context import ServiceContext, open_context
from lungcad.service.db.session import transaction
from lungcad.service.security import Role, create_key
from lungcad.service.settings import load_settings
from tests.service.processes import free_port
from tests.service.uploads import STOW_TYPE, form, slab_bytes, slab_zip, stored, stow_body, zip_of

API = "/api/v1"


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., tuple[TestClient, ServiceContext, dict[str, str]]]]:
    opened: list[tuple[TestClient, ServiceContext]] = []

    def make(**overrides: object) -> tuple[TestClient, ServiceContext, dict[str, str]]:
        settings = load_settings(tmp_path / f"d{len(opened)}", environ={}, queue_immediate=True, **overrides)
        ctx = open_context(settings)
        with transaction(ctx.sessions) as s:
            key = create_key(s, Role.RADIOLOGIST).key
        client = TestClient(create_app(ctx=ctx))
        client.__enter__()
        opened.append((client, ctx))
        return client, ctx, {"X-API-Key": key}

    yield make
    for client, ctx in opened:
        client.__exit__(None, None, None)
        ctx.close()


def _upload(client: TestClient, headers: dict[str, str], *parts: tuple[str, bytes]):  # noqa: ANN202
    return client.post(f"{API}/studies", files=form(*parts), headers=headers)


def test_a_merge_past_the_study_cap_is_refused_and_stores_nothing(make_client) -> None:
    files = slab_bytes()
    first = files[:8]
    cap = sum(len(b) for b in first) + len(files[8])  # room for one more slice
    client, ctx, headers = make_client(max_study_bytes=cap)
    r = _upload(client, headers, *[(f"{i}.dcm", b) for i, b in enumerate(first)])
    assert r.status_code == 201, r.text
    before = stored(ctx)
    r = _upload(client, headers, *[(f"{i}.dcm", b) for i, b in enumerate(files[6:])])
    assert r.status_code == 413, r.text
    body = r.json()
    assert body["error"] == "study_too_large" and "LUNGCAD_MAX_STUDY_BYTES" in body["fix"]
    assert str(cap) in body["message"]
    assert stored(ctx) == before  # no rows, no blobs, no staging leftovers
    # a re-send of stored instances adds no bytes: still accepted; one more slice fits exactly
    assert _upload(client, headers, *[(f"{i}.dcm", b) for i, b in enumerate(first)]).status_code == 201
    r = _upload(client, headers, *[(f"{i}.dcm", b) for i, b in enumerate(files[:9])])
    assert r.status_code == 201 and r.json()["stored_instances"] == 1
    # STOW-RS goes through the same store: refused too
    r = client.post(
        f"{API}/dicomweb/studies",
        content=stow_body(files[9:]),
        headers={**headers, "Content-Type": STOW_TYPE},
    )
    assert r.status_code == 413 and r.json()["error"] == "study_too_large"
    assert stored(ctx).instances == 9


def test_a_first_upload_larger_than_the_cap_is_refused(make_client) -> None:
    client, ctx, headers = make_client(max_study_bytes=1_000_000)
    r = _upload(client, headers, ("s.zip", slab_zip()))
    assert r.status_code == 413 and r.json()["error"] == "study_too_large"
    assert stored(ctx).nothing


@pytest.mark.parametrize("name", ["/etc/lungcad-evil.dcm", "/EXPORT/IM0001", "C:/evil.dcm"])
def test_absolute_paths_in_a_zip_are_refused(make_client, name: str) -> None:
    client, ctx, headers = make_client()
    files = slab_bytes()
    data = zip_of({**{f"SE1/IM{i:04d}": b for i, b in enumerate(files)}, name: files[0]})
    r = _upload(client, headers, ("s.zip", data))
    assert r.status_code == 400 and r.json()["error"] == "zip_slip", r.text
    assert "absolute" in r.json()["message"]
    assert stored(ctx).nothing and not Path("/etc/lungcad-evil.dcm").exists()


@contextmanager
def _served(app) -> Iterator[str]:  # noqa: ANN001 - the FastAPI app (its context already open)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _streamed(base: str, headers: dict[str, str], data: bytes):  # noqa: ANN202
    """A one-file multipart form sent in chunks, without a Content-Length (the cap counts as it streams)."""
    boundary = "lungcad-stream-b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="s.zip"\r\n'
        "Content-Type: application/zip\r\n\r\n"
    ).encode()
    body = head + data + f"\r\n--{boundary}--\r\n".encode()

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 64 * 1024):
            yield body[i : i + 64 * 1024]
            time.sleep(0.002)  # arrives in pieces, as from a network

    content_type = f"multipart/form-data; boundary={boundary}"
    try:
        headers = {**headers, "Content-Type": content_type}
        return httpx.post(f"{base}{API}/studies", content=chunks(), headers=headers, timeout=60)
    except httpx.RemoteProtocolError:  # the server answered 413 and closed before the body ended
        pytest.fail("the server closed the connection without an answer")


def _open_fds_under(folder: Path) -> list[str]:
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder)):
            out.append(target)
    return out


def _bomb() -> bytes:
    buf = __import__("io").BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("IM0001", bytes(128) + b"DICM" + bytes(60 * 1024 * 1024))  # 60 MB in ~60 KB
        z.writestr("noise.bin", os.urandom(1_500_000))  # makes the part pass the 1 MB spool: a real file
    return buf.getvalue()


def test_refused_uploads_leave_no_temporary_files(make_client, tmp_path: Path, monkeypatch) -> None:
    spool = tmp_path / "system-tmp"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))  # where Starlette's spooled files roll over to
    made: list = []
    real = tempfile.TemporaryFile

    def recording(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - tempfile.TemporaryFile's signature
        f = real(*args, **kwargs)
        made.append(f)
        return f

    monkeypatch.setattr(tempfile, "TemporaryFile", recording)
    files = slab_bytes()
    big_junk = os.urandom(1_200_000)  # past the 1 MB spool, under the body cap
    client, ctx, headers = make_client(max_upload_bytes=len(slab_zip()) // 2)
    cases = {
        "not DICOM": ([("junk.dcm", big_junk)], 415),
        "zip bomb": ([("bomb.zip", _bomb())], 413),
        "zip slip": ([("s.zip", zip_of({"SE1/IM1": files[0], "../../evil.dcm": big_junk}))], 400),
        "body cap": ([("s.zip", slab_zip())], 413),
        "one slice": ([("a.dcm", files[0]), ("b.bin", big_junk)], 422),
    }
    for what, (parts, status) in cases.items():
        made.clear()
        if what == "body cap":  # streamed without a Content-Length, through a real server: refused while
            # it arrives, after the first MB went into a spooled file (TestClient would send it in one piece)
            with _served(client.app) as base:
                r = _streamed(base, headers, parts[0][1])
        else:
            r = _upload(client, headers, *parts)
        assert r.status_code == status, (what, r.status_code, r.text)
        assert r.json()["error"] and r.json()["message"], what
        assert made, f"{what}: the upload never reached a temporary file (the test would prove nothing)"
        assert all(f.closed for f in made), f"{what}: a spooled upload file was left open"
        assert _open_fds_under(spool) == [], what
        assert list(spool.iterdir()) == [], what
        assert stored(ctx).nothing, what  # no rows, no blobs, nothing in D/tmp
    # STOW-RS streams into D/tmp itself: a broken body leaves nothing there either
    r = client.post(
        f"{API}/dicomweb/studies",
        content=b"--lungcad-test-b0undary\r\nContent-Type: application/dicom\r\n\r\n" + big_junk[:500_000],
        headers={**headers, "Content-Type": STOW_TYPE},
    )
    assert 400 <= r.status_code < 500, r.text
    assert stored(ctx).nothing and list(spool.iterdir()) == []
