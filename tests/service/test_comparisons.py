"""``/comparisons``: a stored comparison of two done analyses, read back; permissions; every bad input."""

from __future__ import annotations

import jsonschema

from lungcad.longitudinal.schema import comparison_schema
from lungcad.service.db.models import AnalysisStatus
from tests.service.conftest import SLAB
from tests.service.helpers_analyses import add_done, add_study, store_folder

API = "/api/v1"


def test_compare_a_study_with_itself_is_all_stable_and_stored(client, ctx, admin_headers) -> None:
    sid = store_folder(ctx, SLAB)
    prior, current = add_done(ctx, sid, n_findings=2), add_done(ctx, sid, n_findings=2)
    r = client.post(
        f"{API}/comparisons", json={"analysis_id": current, "prior_analysis_id": prior}, headers=admin_headers
    )
    assert r.status_code == 201, r.text
    body = r.json()
    doc = body["comparison"]
    jsonschema.validate(doc, comparison_schema())
    assert body["analysis_id"] == current and body["prior_analysis_id"] == prior
    assert doc["current"]["source"] == f"analysis {current}" and doc["interval_days"] == 0
    assert [n["status"] for n in doc["nodules"]] == ["stable", "stable"]
    assert [(n["current_index"], n["prior_index"]) for n in doc["nodules"]] == [(0, 0), (1, 1)]
    assert doc["registration"]["lung_dice"] > 0.95
    got = client.get(f"{API}/comparisons/{body['id']}", headers=admin_headers)
    assert got.status_code == 200 and got.json() == body


def test_bad_inputs_are_4xx_with_a_fix(client, ctx, admin_headers, make_key) -> None:
    sid = store_folder(ctx, SLAB)
    done = add_done(ctx, sid)
    running = add_done(ctx, sid, status=AnalysisStatus.RUNNING)
    one_patient = add_done(ctx, add_study(ctx, patient_id="PAT-1"))  # rows only, no stored instances
    other_patient = add_done(ctx, add_study(ctx, patient_id="PAT-OTHER"))

    def post(body, headers=admin_headers):
        return client.post(f"{API}/comparisons", json=body, headers=headers)

    r = post({"analysis_id": done, "prior_analysis_id": "nope"})
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = post({"analysis_id": done, "prior_analysis_id": running})
    assert r.status_code == 409 and "not done" in r.json()["message"]
    r = post({"analysis_id": one_patient, "prior_analysis_id": other_patient})
    assert r.status_code == 409 and "different patients" in r.json()["message"] and r.json()["fix"], r.text
    r = post({"analysis_id": one_patient, "prior_analysis_id": one_patient})
    assert r.status_code == 410 and "no stored instances" in r.json()["message"]
    r = post({"analysis_id": done, "prior_analysis_id": done, "typo": 1})
    assert r.status_code == 422
    r = post({"analysis_id": done})
    assert r.status_code == 422
    assert client.get(f"{API}/comparisons/nope", headers=admin_headers).status_code == 404
    viewer = {"X-API-Key": make_key("viewer")}
    r = post({"analysis_id": done, "prior_analysis_id": done}, headers=viewer)
    assert r.status_code == 403  # viewers may read analyses, not create work
    assert client.get(f"{API}/comparisons/nope", headers=viewer).status_code == 404  # but may read
    assert client.post(f"{API}/comparisons", json={}).status_code == 401
