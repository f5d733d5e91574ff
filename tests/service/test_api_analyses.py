"""``/analyses``: create (defaults, errors, cache), poll, list, cancel, the result (ETag, gzip) and files.

Jobs are queued on the real SQLite Huey queue with no consumer (``queue_immediate`` off), so a created
analysis stays ``queued``; one test runs a real analysis of the bundled slab in immediate mode.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from lungcad.contracts import ScanResult
from lungcad.service.context import ServiceContext, open_context
from lungcad.service.db.models import Analysis, ConfigVersion, Study
from lungcad.service.db.session import transaction, utcnow
from lungcad.service.settings import ServiceSettings, load_settings
from tests.service.conftest import SLAB
from tests.service.helpers_analyses import add_done, add_study, defaults, store_folder

API = "/api/v1"


@pytest.fixture
def settings(tmp_path: Path) -> ServiceSettings:
    """A real (SQLite) queue that nothing consumes: created analyses stay queued."""
    return load_settings(tmp_path / "data", environ={}, queue_immediate=False)


def _post(client, headers, **body):
    return client.post(f"{API}/analyses", json=body, headers=headers)


def test_create_defaults_to_largest_usable_series_and_active_model(client, ctx, admin_headers) -> None:
    sid = add_study(ctx, [("1.2.3.10", 10, True), ("1.2.3.30", 30, True), ("1.2.3.50", 50, False)])
    r = _post(client, admin_headers, study_id=sid)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "queued" and r.json()["cached"] is False
    got = client.get(f"{API}/analyses/{r.json()['id']}", headers=admin_headers).json()
    sha, config_hash = defaults(ctx)
    assert got["series_uid"] == "1.2.3.30"  # the usable one with most instances, not the larger SR
    assert got["model_sha256"] == sha and got["model_id"] and got["model_version"]
    assert got["config_hash"] == config_hash and got["study_id"] == sid
    assert got["status"] == "queued" and got["progress"] == 0 and got["attempts"] == 0
    assert got["created_at"].endswith(("Z", "+00:00")) and got["finished_at"] is None
    assert got["lung_rads"] is None and got["n_findings"] is None
    with ctx.sessions() as s:  # the effective configuration is stored under its hash
        assert s.get(ConfigVersion, config_hash) is not None
    # the job is on the queue, waiting for a worker
    assert ctx.queue.pending_count() == 1


def test_create_by_series_and_model_prefix(client, ctx, admin_headers) -> None:
    sid = add_study(ctx, [("1.2.3.10", 10, True), ("1.2.3.30", 30, True)])
    sha, _ = defaults(ctx)
    r = _post(client, admin_headers, study_id=sid, series_uid="1.2.3.10", model=sha[:8].upper(), report=True)
    assert r.status_code == 202, r.text
    got = client.get(f"{API}/analyses/{r.json()['id']}", headers=admin_headers).json()
    assert (got["series_uid"], got["model_sha256"], got["report"]) == ("1.2.3.10", sha, True)


def _count(ctx: ServiceContext) -> int:
    with ctx.sessions() as s:
        return s.scalar(select(func.count()).select_from(Analysis)) or 0


@pytest.mark.parametrize(
    ("body", "status", "code", "words"),
    [
        ({"study_id": "nope"}, 404, "not_found", "no study with id 'nope'"),
        ({"series_uid": "9.9"}, 422, "unusable_series", "has no series 9.9; usable series: 1.2.3.30"),
        ({"series_uid": "1.2.3.50"}, 422, "unusable_series", "is not usable (not a CT image series)"),
        ({"model": "ab" * 32}, 404, "not_found", "no model with sha256"),
        ({"model": "zzzzzzzzzz"}, 422, "invalid_model", "is not a sha256"),
        ({"model": "abc"}, 422, "invalid_request", "model"),
        ({"bogus": 1}, 422, "invalid_request", "bogus"),
    ],
)
def test_create_errors(client, ctx, admin_headers, body, status, code, words) -> None:
    sid = add_study(ctx, [("1.2.3.30", 30, True), ("1.2.3.50", 50, False)])
    r = _post(client, admin_headers, **{"study_id": sid, **body})
    assert r.status_code == status, r.text
    doc = r.json()
    assert doc["error"] == code and words in doc["message"] and doc["fix"]
    assert _count(ctx) == 0  # nothing stored


def test_study_without_usable_series_is_422_with_reasons(client, ctx, admin_headers) -> None:
    sid = add_study(ctx, [("1.2.3.50", 50, False)])
    r = _post(client, admin_headers, study_id=sid)
    assert r.status_code == 422
    assert r.json()["error"] == "no_usable_series" and "1.2.3.50: not a CT" in r.json()["message"]
    assert r.json()["series"] == [{"series_uid": "1.2.3.50", "reason": "not a CT image series"}]


def test_cache_reuses_a_done_result_of_the_same_inputs(client, ctx, admin_headers) -> None:
    sid = add_study(ctx)
    first = add_done(ctx, sid, lung_rads="4A", triage=0.7, n_findings=2)
    r = _post(client, admin_headers, study_id=sid)
    assert r.status_code == 202 and r.json()["status"] == "done" and r.json()["cached"] is True
    new = r.json()["id"]
    assert new != first and ctx.queue.pending_count() == 0  # no job
    got = client.get(f"{API}/analyses/{new}", headers=admin_headers).json()
    assert got["cached"] and got["progress"] == 1 and got["lung_rads"] == "4A" and got["n_findings"] == 2
    with ctx.sessions() as s:
        assert s.get(Analysis, new).result_dir == s.get(Analysis, first).result_dir == first
    a = client.get(f"{API}/analyses/{first}/result", headers=admin_headers)
    b = client.get(f"{API}/analyses/{new}/result", headers=admin_headers)
    assert a.content == b.content and a.headers["etag"] == b.headers["etag"]

    # another report flag is another key: queued
    assert _post(client, admin_headers, study_id=sid, report=True).json()["status"] == "queued"
    # a study changed since the result (instances added) is analysed afresh
    with transaction(ctx.sessions) as s:
        s.execute(update(Study).where(Study.id == sid).values(updated_at=utcnow()))
    assert _post(client, admin_headers, study_id=sid).json()["status"] == "queued"


def test_no_cache_when_the_result_folder_is_gone(client, ctx, admin_headers) -> None:
    sid = add_study(ctx)
    first = add_done(ctx, sid)
    ctx.storage.delete_result(first)
    r = _post(client, admin_headers, study_id=sid)
    assert r.json()["status"] == "queued" and r.json()["cached"] is False
    assert client.get(f"{API}/analyses/{first}/result", headers=admin_headers).status_code == 410


def test_cancel(client, ctx, admin_headers) -> None:
    sid = add_study(ctx)
    aid = _post(client, admin_headers, study_id=sid).json()["id"]
    r = client.post(f"{API}/analyses/{aid}/cancel", headers=admin_headers)
    assert r.status_code == 200 and r.json()["status"] == "cancelled" and r.json()["finished_at"]
    again = client.post(f"{API}/analyses/{aid}/cancel", headers=admin_headers)
    assert again.status_code == 409 and again.json()["status"] == "cancelled"
    done = add_done(ctx, sid)
    r = client.post(f"{API}/analyses/{done}/cancel", headers=admin_headers)
    assert r.status_code == 409 and r.json()["error"] == "conflict" and "already done" in r.json()["message"]
    assert client.post(f"{API}/analyses/x/cancel", headers=admin_headers).status_code == 404
    # a cancelled analysis has no result
    r = client.get(f"{API}/analyses/{aid}/result", headers=admin_headers)
    assert r.status_code == 409 and r.json()["status"] == "cancelled"


def test_list_filters_and_pages(client, ctx, admin_headers) -> None:
    a, b = add_study(ctx), add_study(ctx)
    queued = [_post(client, admin_headers, study_id=a).json()["id"] for _ in range(3)]
    done = add_done(ctx, b)
    page = client.get(f"{API}/analyses?limit=2", headers=admin_headers).json()
    assert (page["total"], page["limit"], page["offset"], len(page["items"])) == (4, 2, 0, 2)
    rest = client.get(f"{API}/analyses?limit=2&offset=2", headers=admin_headers).json()["items"]
    assert {i["id"] for i in page["items"] + rest} == {*queued, done}
    by_status = client.get(f"{API}/analyses?status=done", headers=admin_headers).json()
    assert [i["id"] for i in by_status["items"]] == [done]
    by_study = client.get(f"{API}/analyses?study_id={a}", headers=admin_headers).json()
    assert by_study["total"] == 3
    assert client.get(f"{API}/analyses?status=bogus", headers=admin_headers).status_code == 422
    assert client.get(f"{API}/analyses?limit=501", headers=admin_headers).status_code == 422


def test_permissions(client, ctx, make_key) -> None:
    sid = add_study(ctx)
    assert _post(client, {}, study_id=sid).status_code == 401
    assert _post(client, {"X-API-Key": make_key("viewer")}, study_id=sid).status_code == 403
    service = {"X-API-Key": make_key("service")}
    aid = _post(client, service, study_id=sid).json()["id"]
    assert client.get(f"{API}/analyses/{aid}", headers=service).status_code == 200
    assert client.post(f"{API}/analyses/{aid}/cancel", headers=service).status_code == 403


def test_result_bytes_etag_304_and_gzip(client, ctx, admin_headers) -> None:
    sid = add_study(ctx)
    aid = add_done(ctx, sid, n_findings=40)  # ~30 kB of JSON: over the gzip threshold
    on_disk = (ctx.storage.result_dir(aid) / "result.json").read_bytes()
    r = client.get(f"{API}/analyses/{aid}/result", headers=admin_headers)
    assert r.status_code == 200 and r.content == on_disk
    assert r.headers["content-type"] == "application/json"
    etag = r.headers["etag"]
    assert etag == f'"{hashlib.sha256(on_disk).hexdigest()}"'
    assert len(ScanResult.from_dict(r.json()).findings) == 40

    for inm in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        nm = client.get(f"{API}/analyses/{aid}/result", headers={**admin_headers, "If-None-Match": inm})
        assert nm.status_code == 304 and nm.content == b"" and nm.headers["etag"] == etag
    other = client.get(f"{API}/analyses/{aid}/result", headers={**admin_headers, "If-None-Match": '"x"'})
    assert other.status_code == 200

    gz = client.get(f"{API}/analyses/{aid}/result", headers={**admin_headers, "Accept-Encoding": "gzip"})
    assert gz.headers["content-encoding"] == "gzip" and gz.content == on_disk  # httpx decodes it
    assert int(gz.headers["content-length"]) < len(on_disk) / 3
    plain = client.get(
        f"{API}/analyses/{aid}/result", headers={**admin_headers, "Accept-Encoding": "identity"}
    )
    assert "content-encoding" not in plain.headers


def test_result_of_a_queued_analysis_is_409(client, ctx, admin_headers) -> None:
    aid = _post(client, admin_headers, study_id=add_study(ctx)).json()["id"]
    for path in ("result", "files", "files/result.json"):
        r = client.get(f"{API}/analyses/{aid}/{path}", headers=admin_headers)
        assert r.status_code == 409 and r.json()["status"] == "queued" and "not done" in r.json()["message"]
    assert client.get(f"{API}/analyses/nope/result", headers=admin_headers).status_code == 404


FILES = {
    "report.pdf": b"%PDF-1.7\n" + b"x" * 2000,
    "report.html": b"<!doctype html><title>r</title>",
    "seg.dcm": b"\0" * 128 + b"DICM" + b"\1" * 50,
    "key_images/finding_1.png": b"\x89PNG\r\n\x1a\n" + b"p" * 100,
    "masks/finding_1.nii.gz": b"\x1f\x8b" + b"m" * 40,
}


def test_files_list_and_download(client, ctx, admin_headers) -> None:
    aid = add_done(ctx, add_study(ctx), extra_files=FILES)
    listing = client.get(f"{API}/analyses/{aid}/files", headers=admin_headers).json()
    got = {f["name"]: (f["size"], f["media_type"]) for f in listing["files"]}
    size = (ctx.storage.result_dir(aid) / "result.json").stat().st_size
    assert got == {
        "result.json": (size, "application/json"),
        "report.pdf": (2009, "application/pdf"),
        "report.html": (31, "text/html"),
        "seg.dcm": (182, "application/dicom"),
        "key_images/finding_1.png": (108, "image/png"),
        "masks/finding_1.nii.gz": (42, "application/gzip"),
    }
    for name, data in FILES.items():
        r = client.get(f"{API}/analyses/{aid}/files/{name}", headers=admin_headers)
        assert r.status_code == 200 and r.content == data, name
        assert r.headers["content-type"].split(";")[0] == got[name][1]
        assert r.headers["x-content-type-options"] == "nosniff"


def test_file_names_never_leave_the_result_folder(client, ctx, admin_headers) -> None:
    aid = add_done(ctx, add_study(ctx), extra_files=FILES)
    secret = ctx.settings.data_dir / "lungcad.db"
    os.symlink(secret, ctx.storage.result_dir(aid) / "link.db")  # a link out of the folder
    base = f"{API}/analyses/{aid}/files/"
    cases = {
        "%2E%2E/%2E%2E/lungcad.db": 400,  # ../../lungcad.db, escaped so no client normalises it
        "key_images/%2E%2E/%2E%2E/%2E%2E/lungcad.db": 400,
        "%2Fetc%2Fpasswd": 400,  # an absolute name
        f"%2F{str(secret).lstrip('/').replace('/', '%2F')}": 400,
        "..%5C..%5Clungcad.db": 400,  # backslashes
        "link.db": 404,
        "nothing.pdf": 404,
        "key_images": 404,  # a folder is not a file
    }
    for name, status in cases.items():
        r = client.get(base + name, headers=admin_headers)
        assert r.status_code == status, (name, r.status_code, r.text)
        assert r.json()["error"] in {"bad_file_name", "not_found"}
        assert b"SQLite" not in r.content


@pytest.fixture
def immediate_ctx(tmp_path: Path) -> Iterator[ServiceContext]:
    context = open_context(load_settings(tmp_path / "imm", environ={}, queue_immediate=True))
    yield context
    context.close()


def test_real_analysis_of_the_slab(immediate_ctx: ServiceContext) -> None:
    """POST /analyses runs the detector in-process (immediate queue); the result, files, cache and worklist
    follow."""
    from fastapi.testclient import TestClient

    from lungcad.service.app import create_app
    from lungcad.service.db.session import transaction as tx
    from lungcad.service.security import create_key

    ctx = immediate_ctx
    with tx(ctx.sessions) as s:
        headers = {"X-API-Key": create_key(s, "admin").key}
    sid = store_folder(ctx, SLAB)
    with TestClient(create_app(ctx=ctx)) as client:
        r = _post(client, headers, study_id=sid)
        assert r.status_code == 202, r.text
        aid = r.json()["id"]
        got = client.get(f"{API}/analyses/{aid}", headers=headers).json()
        assert got["status"] == "done", got
        assert got["progress"] == 1 and got["attempts"] == 1 and got["cached"] is False
        result = client.get(f"{API}/analyses/{aid}/result", headers=headers)
        doc = ScanResult.from_dict(result.json())
        # result.json carries the model's training config hash (as `lungcad detect` writes it); the analysis
        # records the effective configuration it ran under
        assert (doc.model_id, doc.model_version) == (got["model_id"], got["model_version"])
        assert doc.series_uid == got["series_uid"]
        assert client.get(f"{API}/configs/{got['config_hash']}", headers=headers).status_code == 200
        names = [
            f["name"] for f in client.get(f"{API}/analyses/{aid}/files", headers=headers).json()["files"]
        ]
        assert "result.json" in names and "candidates.csv" in names
        again = _post(client, headers, study_id=sid).json()
        assert again["status"] == "done" and again["cached"] is True
        rows = client.get(f"{API}/worklist", headers=headers).json()
        assert rows["total"] == 1 and rows["items"][0]["analysis_id"] in {aid, again["id"]}
        assert json.loads(result.content)["schema_version"] == "2.2"
