"""``POST /analyses`` with the Brock risk options (issue 17): stored, part of the cache key, bad values 422,
and the service's result.json is the CLI's for the same options."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lungcad.service.context import ServiceContext, open_context
from lungcad.service.db.models import Analysis
from lungcad.service.settings import ServiceSettings, load_settings
from tests.service.conftest import SLAB
from tests.service.helpers_analyses import add_done, add_study

API = "/api/v1"


@pytest.fixture
def settings(tmp_path: Path) -> ServiceSettings:
    return load_settings(tmp_path / "data", environ={}, queue_immediate=False)


def _post(client, headers, **body):
    return client.post(f"{API}/analyses", json=body, headers=headers)


def test_risk_options_are_stored_and_keep_the_cache_apart(client, ctx, admin_headers) -> None:
    sid = add_study(ctx, [("1.2.3.30", 30, True)])
    add_done(ctx, sid)  # a finished analysis without risk options
    plain = _post(client, admin_headers, study_id=sid).json()
    assert plain["cached"] is True  # the same inputs: reused
    risk = {"family_history": True, "sex": "F", "age_years": 67}
    r = _post(client, admin_headers, study_id=sid, risk=risk)
    assert r.status_code == 202, r.text
    assert r.json()["cached"] is False and r.json()["status"] == "queued"  # other options, another result
    with ctx.sessions() as s:
        row = s.get(Analysis, r.json()["id"])
        assert row is not None
        assert json.loads(row.risk_options) == {"family_history": True, "sex": "female", "age_years": 67.0}
        assert s.get(Analysis, plain["id"]).risk_options is None
    # an empty risk object is no options: the plain analysis is reused
    assert _post(client, admin_headers, study_id=sid, risk={}).json()["cached"] is True


@pytest.mark.parametrize(
    ("risk", "words"),
    [
        ({"age_years": 12}, "age_years"),
        ({"sex": "X"}, "sex"),
        ({"family_history": "perhaps"}, "family_history"),
        ({"smoker": True}, "smoker"),
    ],
)
def test_bad_risk_options_are_422(client, ctx, admin_headers, risk, words) -> None:
    sid = add_study(ctx, [("1.2.3.30", 30, True)])
    r = _post(client, admin_headers, study_id=sid, risk=risk)
    assert r.status_code == 422 and r.json()["error"] == "invalid_request", r.text
    assert words in r.json()["message"] and r.json()["fix"]


@pytest.fixture
def immediate_ctx(tmp_path: Path) -> Iterator[ServiceContext]:
    context = open_context(load_settings(tmp_path / "imm", environ={}, queue_immediate=True))
    yield context
    context.close()


def _canonical(doc: dict) -> str:
    doc = dict(doc)
    del doc["timings_s"]
    return json.dumps(doc, sort_keys=True)


@pytest.mark.slow
def test_service_result_is_the_clis_with_the_same_options(
    immediate_ctx: ServiceContext, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from lungcad.cli import build_app
    from lungcad.cli.common import invocation
    from lungcad.service.app import create_app
    from lungcad.service.db.session import transaction as tx
    from lungcad.service.security import create_key
    from tests.service.helpers_analyses import store_folder

    ctx = immediate_ctx
    with tx(ctx.sessions) as s:
        headers = {"X-API-Key": create_key(s, "admin").key}
    sid = store_folder(ctx, SLAB)
    with TestClient(create_app(ctx=ctx)) as client:
        r = _post(client, headers, study_id=sid, risk={"family_history": True, "sex": "F"})
        assert r.status_code == 202, r.text
        doc = client.get(f"{API}/analyses/{r.json()['id']}/result", headers=headers).json()
    top = doc["findings"][0]["malignancy_risk"]
    assert (top["inputs"]["family_history"], top["inputs"]["sex"]) == (True, "female")
    with invocation():
        run = CliRunner().invoke(
            build_app(),
            ["detect", str(SLAB), "--family-history", "yes", "--sex", "F", "--out", str(tmp_path / "cli")],
        )
    assert run.exit_code == 0, run.output
    cli = json.loads((tmp_path / "cli" / "result.json").read_text())
    assert _canonical(cli) == _canonical(doc)
