"""``/studies`` and DICOMweb STOW-RS through the real app (TestClient): upload the bundled slab as a zip,
as loose files and by STOW-RS; list (pagination, filters), read, PHI by role, merge of a re-upload, delete
with blobs and result folders."""

from __future__ import annotations

from collections.abc import Callable

import pydicom
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from lungcad.service.context import ServiceContext
from lungcad.service.db.models import Analysis, Instance, Series, Study
from lungcad.service.security import patient_hash
from tests.service.helpers_analyses import add_done
from tests.service.helpers_store import add_analysis
from tests.service.uploads import (
    API,
    JUNK,
    SERIES_UID,
    SLAB_DATE,
    SLAB_FILES,
    STOW_TYPE,
    STUDY_UID,
    form,
    retagged,
    slab_bytes,
    slab_zip,
    stored,
    stow_body,
)

N = len(SLAB_FILES)  # 16 slices


def upload(client: TestClient, headers: dict[str, str], *parts: tuple[str, bytes]) -> dict:
    r = client.post(f"{API}/studies", files=form(*parts), headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def upload_zip(client: TestClient, headers: dict[str, str], files: list[bytes] | None = None) -> dict:
    return upload(client, headers, ("study.zip", slab_zip(files)))


def test_upload_zip_with_nested_folders_and_junk(
    client: TestClient, ctx: ServiceContext, admin_headers
) -> None:
    assert N == 16
    body = upload_zip(client, admin_headers)
    assert (body["study_uid"], body["created"], body["primary_series_uid"]) == (STUDY_UID, True, SERIES_UID)
    assert (body["stored_instances"], body["duplicate_instances"]) == (N, 0)
    skipped = {s["name"]: s["reason"] for s in body["skipped"]}
    # the XML beside the slices and every junk member, named as they were in the zip, with a reason
    assert set(skipped) == {f"study.zip:{n}" for n in [*JUNK, "EXPORT/PAT1/ST1/SE1/069.xml"]}, skipped
    assert all("not a DICOM" in reason for reason in skipped.values())
    [series] = body["series"]
    assert series == {
        "series_uid": SERIES_UID,
        "modality": "CT",
        "description": None,
        "n_instances": N,
        "usable": True,
        "reason": None,
    }
    now = stored(ctx)
    assert (now.studies, now.series, now.instances, now.blobs, now.tmp) == (1, 1, N, N, ())
    # GET /studies/{id}: the same study, its series and sizes
    got = client.get(f"{API}/studies/{body['id']}", headers=admin_headers).json()
    assert (got["id"], got["study_uid"], got["study_date"]) == (body["id"], STUDY_UID, SLAB_DATE.isoformat())
    assert got["n_instances"] == N and got["series"] == body["series"]
    assert got["total_bytes"] == sum(p.stat().st_size for p in SLAB_FILES)
    assert got["created_at"].endswith("Z") and got["patient_id_hash"] == patient_hash(
        ctx.settings.secret_key, "LIDC-IDRI-0001"
    )


def test_upload_loose_files_in_several_parts(client: TestClient, ctx: ServiceContext, admin_headers) -> None:
    parts = [(f"slice{i:02d}.dcm", b) for i, b in enumerate(slab_bytes())]
    body = upload(client, admin_headers, *parts, ("notes.txt", b"not an image"))
    assert (body["created"], body["stored_instances"], body["duplicate_instances"]) == (True, N, 0)
    assert [s["name"] for s in body["skipped"]] == ["notes.txt"]
    assert body["series"][0]["n_instances"] == N
    assert (stored(ctx).instances, stored(ctx).blobs) == (N, N)


def test_upload_again_merges_and_doubles_nothing(
    client: TestClient, ctx: ServiceContext, admin_headers
) -> None:
    first = upload_zip(client, admin_headers)
    before = stored(ctx)
    again = upload(client, admin_headers, *[(p.name, p.read_bytes()) for p in SLAB_FILES])
    assert again["id"] == first["id"] and again["created"] is False
    assert (again["stored_instances"], again["duplicate_instances"]) == (0, N)
    assert stored(ctx) == before  # no row, no blob added; staging cleaned
    assert (before.studies, before.series, before.instances, before.blobs) == (1, 1, N, N)
    got = client.get(f"{API}/studies/{first['id']}", headers=admin_headers).json()
    assert got["n_instances"] == N and got["series"][0]["n_instances"] == N


def test_study_sent_in_two_halves_is_merged(client: TestClient, ctx: ServiceContext, admin_headers) -> None:
    files = slab_bytes()
    a = upload(client, admin_headers, *[(f"{i}.dcm", b) for i, b in enumerate(files[:8])])
    b = upload(client, admin_headers, *[(f"{i}.dcm", b) for i, b in enumerate(files[6:])])
    assert a["created"] is True and b["created"] is False and a["id"] == b["id"]
    assert (b["stored_instances"], b["duplicate_instances"]) == (N - 8, 2)
    assert b["series"][0]["n_instances"] == N
    assert stored(ctx).instances == N


def test_stow_rs_stores_the_slab(client: TestClient, ctx: ServiceContext, admin_headers) -> None:
    body = stow_body(slab_bytes())
    r = client.post(
        f"{API}/dicomweb/studies",
        content=body,
        headers={**admin_headers, "Content-Type": STOW_TYPE, "Accept": "application/dicom+json"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/dicom+json")
    doc = r.json()
    assert doc["00081190"]["vr"] == "UR"
    assert doc["00081190"]["Value"][0].endswith(f"/dicomweb/studies/{STUDY_UID}")
    refs = doc["00081199"]["Value"]
    sops = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in SLAB_FILES}
    assert {e["00081155"]["Value"][0] for e in refs} == sops
    assert all(e["00081150"]["Value"][0] == "1.2.840.10008.5.1.4.1.1.2" for e in refs)  # CT Image Storage
    assert all(f"/series/{SERIES_UID}/instances/" in e["00081190"]["Value"][0] for e in refs)
    assert "00081198" not in doc and "0008119A" not in doc
    now = stored(ctx)
    assert (now.studies, now.series, now.instances, now.blobs, now.tmp) == (1, 1, N, N, ())


def test_stow_rs_with_a_junk_part_is_202_with_the_failure(
    client: TestClient, ctx: ServiceContext, admin_headers
) -> None:
    body = stow_body([*slab_bytes(), b"this is not DICOM at all" * 20])
    r = client.post(
        f"{API}/dicomweb/studies", content=body, headers={**admin_headers, "Content-Type": STOW_TYPE}
    )
    assert r.status_code == 202, r.text
    doc = r.json()
    assert len(doc["00081199"]["Value"]) == N
    [other] = doc["0008119A"]["Value"]
    assert other["00081197"] == {"vr": "US", "Value": [0xC000]}  # "cannot understand"
    assert stored(ctx).instances == N


# -- listing ------------------------------------------------------------------------------------------------
@pytest.fixture
def three_studies(client: TestClient, ctx: ServiceContext, admin_headers) -> list[dict]:
    """The slab (2000-01-01, LIDC-IDRI-0001) and two retagged copies: 2024-01-02 / P2, 2024-06-30 / P3;
    uploaded oldest last (so the listing, newest first, is slab, P2, P3 reversed)."""
    out = [upload_zip(client, admin_headers)]
    out.append(upload_zip(client, admin_headers, retagged(2, StudyDate="20240102", PatientID="P2")))
    out.append(upload_zip(client, admin_headers, retagged(3, StudyDate="20240630", PatientID="P3")))
    return out


def _list(client: TestClient, headers: dict[str, str], **params: object) -> dict:
    r = client.get(f"{API}/studies", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_list_pagination_and_filters(
    client: TestClient, ctx: ServiceContext, admin_headers, three_studies: list[dict]
) -> None:
    slab, p2, p3 = (s["id"] for s in three_studies)
    page = _list(client, admin_headers)
    assert (page["total"], page["limit"], page["offset"]) == (3, 50, 0)
    assert [s["id"] for s in page["items"]] == [p3, p2, slab]  # newest first
    # pagination: two pages of 2 cover all three once
    first, second = _list(client, admin_headers, limit=2), _list(client, admin_headers, limit=2, offset=2)
    assert [s["id"] for s in first["items"] + second["items"]] == [p3, p2, slab]
    assert first["total"] == second["total"] == 3 and (second["limit"], second["offset"]) == (2, 2)
    assert _list(client, admin_headers, offset=10)["items"] == []
    # patient id hash
    h2 = patient_hash(ctx.settings.secret_key, "P2")
    assert [s["id"] for s in _list(client, admin_headers, patient_id_hash=h2)["items"]] == [p2]
    assert _list(client, admin_headers, patient_id_hash="0" * 32)["total"] == 0
    # study date (inclusive bounds)
    ids = [s["id"] for s in _list(client, admin_headers, date_from="2024-01-02")["items"]]
    assert ids == [p3, p2]
    ids = [
        s["id"] for s in _list(client, admin_headers, date_from="2024-01-03", date_to="2024-06-30")["items"]
    ]
    assert ids == [p3]
    assert [s["id"] for s in _list(client, admin_headers, date_to="2023-12-31")["items"]] == [slab]
    # status: new (no analysis), pending (queued / running), analysed (a done analysis)
    add_done(ctx, slab)
    add_analysis(ctx, p2, three_studies[1]["primary_series_uid"])
    assert [s["id"] for s in _list(client, admin_headers, status="analysed")["items"]] == [slab]
    assert [s["id"] for s in _list(client, admin_headers, status="pending")["items"]] == [p2]
    assert [s["id"] for s in _list(client, admin_headers, status="new")["items"]] == [p3]
    combined = _list(client, admin_headers, status="new", date_from="2024-01-01", limit=1)
    assert (combined["total"], [s["id"] for s in combined["items"]]) == (1, [p3])


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"offset": -1}, "offset"),
        ({"status": "done"}, "status"),
        ({"date_from": "01/02/2024"}, "date_from"),
    ],
)
def test_list_bad_query_is_422_naming_it(client: TestClient, admin_headers, params: dict, words: str) -> None:
    r = client.get(f"{API}/studies", params=params, headers=admin_headers)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_request" and words in r.json()["message"]


# -- PHI by role ----------------------------------------------------------------------------------------
ROLES_PHI = {"viewer": False, "researcher": False, "radiologist": True, "admin": True}


def test_patient_fields_only_for_roles_that_may_read_phi(
    client: TestClient, admin_headers, make_key: Callable[[str], str]
) -> None:
    sid = upload_zip(client, admin_headers)["id"]
    for role, phi in ROLES_PHI.items():
        headers = {"X-API-Key": make_key(role)}
        one = client.get(f"{API}/studies/{sid}", headers=headers).json()
        listed = _list(client, headers)["items"][0]
        for doc in (one, listed):
            assert doc["patient_id_hash"], role  # always: groups a patient's studies without naming them
            if phi:
                assert doc["patient"]["patient_id"] == "LIDC-IDRI-0001", role
                assert set(doc["patient"]) == {
                    "patient_id",
                    "patient_name",
                    "patient_birth_date",
                    "accession_number",
                }
            else:
                assert doc["patient"] is None, role
                assert "LIDC-IDRI-0001" not in str(doc), role


def test_roles_without_upload_or_delete_are_403(
    client: TestClient, ctx: ServiceContext, admin_headers, make_key: Callable[[str], str]
) -> None:
    sid = upload_zip(client, admin_headers)["id"]
    viewer = {"X-API-Key": make_key("viewer")}
    r = client.post(f"{API}/studies", files=form(("s.zip", slab_zip())), headers=viewer)
    assert r.status_code == 403 and r.json()["error"]
    r = client.post(
        f"{API}/dicomweb/studies",
        content=stow_body(slab_bytes()[:2]),
        headers={**viewer, "Content-Type": STOW_TYPE},
    )
    assert r.status_code == 403
    assert client.delete(f"{API}/studies/{sid}", headers=viewer).status_code == 403
    assert stored(ctx).instances == N


# -- delete --------------------------------------------------------------------------------------------
def test_delete_removes_rows_blobs_and_result_folders(
    client: TestClient, ctx: ServiceContext, admin_headers
) -> None:
    keep = upload_zip(client, admin_headers, retagged(7, PatientID="KEEP"))
    gone = upload_zip(client, admin_headers)
    aid = add_done(ctx, gone["id"], extra_files={"report/report.pdf": b"%PDF-1.4 test"})
    kept_aid = add_done(ctx, keep["id"])
    results = ctx.settings.data_dir / "results"
    assert (results / aid / "report" / "report.pdf").is_file()
    assert stored(ctx).blobs == 2 * N
    r = client.delete(f"{API}/studies/{gone['id']}", headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"id": gone["id"], "deleted": True, "analyses": 1, "files_removed": N}
    now = stored(ctx)
    assert (now.studies, now.series, now.instances, now.blobs) == (1, 1, N, N)  # the other study stays whole
    assert not (results / aid).exists() and (results / kept_aid / "result.json").is_file()
    with ctx.sessions() as s:
        assert (
            s.scalar(select(func.count()).select_from(Analysis).where(Analysis.study_id == gone["id"])) == 0
        )
        assert s.get(Study, keep["id"]) is not None
        assert s.scalar(select(func.count()).select_from(Series).where(Series.study_id == gone["id"])) == 0
        assert s.scalar(select(func.count()).select_from(Instance)) == N
    for path in (f"studies/{gone['id']}", f"analyses/{aid}"):
        r = client.get(f"{API}/{path}", headers=admin_headers)
        assert r.status_code == 404 and r.json()["error"] == "not_found", path
    assert [s["id"] for s in _list(client, admin_headers)["items"]] == [keep["id"]]


def test_delete_then_upload_again(client: TestClient, ctx: ServiceContext, admin_headers) -> None:
    """After a delete nothing of the study is left, and the same upload stores it afresh (its blobs too)."""
    first = upload_zip(client, admin_headers)
    with ctx.sessions() as s:
        digests = set(s.scalars(select(Instance.blob)))
    r = client.delete(f"{API}/studies/{first['id']}", headers=admin_headers)
    assert r.status_code == 200 and r.json()["files_removed"] == N
    assert all(not ctx.storage.has_blob(d) for d in digests)
    assert stored(ctx).nothing
    # upload again after the delete: a new study, every instance stored afresh
    again = upload_zip(client, admin_headers)
    assert again["created"] is True and again["stored_instances"] == N and stored(ctx).blobs == N


def test_delete_unknown_study_is_404_json(client: TestClient, admin_headers) -> None:
    r = client.delete(f"{API}/studies/0123456789abcdef", headers=admin_headers)
    assert r.status_code == 404
    body = r.json()
    assert body["error"] == "not_found" and "0123456789abcdef" in body["message"] and body["fix"]


def test_listing_is_empty_before_any_upload(client: TestClient, admin_headers) -> None:
    page = _list(client, admin_headers)
    assert page == {"items": [], "total": 0, "limit": 50, "offset": 0}
