"""``/worklist``: one row per analysed study (its newest done analysis), most urgent first, filters, pages,
PHI only for roles that may read it, and a query the database answers from its indexes."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import text

from lungcad.service.context import open_context
from lungcad.service.db.models import AnalysisStatus
from lungcad.service.settings import load_settings
from lungcad.service.worklist import WorklistFilters, ordered, worklist, worklist_query
from tests.service.helpers_analyses import T0, add_done, add_study

API = "/api/v1"


def _scenario(ctx) -> dict[str, str]:
    """Studies with done analyses of chosen priorities; returns name -> analysis id that should show."""
    d = {}
    s4b = add_study(ctx, study_date=date(2023, 1, 1))
    d["4B"] = add_done(ctx, s4b, lung_rads="4B", triage=0.2)
    # same category 4A: higher triage probability first
    s4a_hi = add_study(ctx, study_date=date(2020, 1, 1))
    d["4A-0.9"] = add_done(ctx, s4a_hi, lung_rads="4A", triage=0.9)
    s4a_lo = add_study(ctx, study_date=date(2024, 6, 1))
    d["4A-0.3"] = add_done(ctx, s4a_lo, lung_rads="4A", triage=0.3)
    # same category and probability: newer study date first, unknown date last
    for name, day in (("3-old", date(2021, 1, 1)), ("3-new", date(2024, 1, 1)), ("3-none", None)):
        d[name] = add_done(ctx, add_study(ctx, study_date=day), lung_rads="3", triage=0.5)
    # same everything: the newer analysis first
    same = date(2022, 2, 2)
    d["2-older"] = add_done(ctx, add_study(ctx, study_date=same), lung_rads="2", triage=0.1, finished_at=T0)
    d["2-newer"] = add_done(
        ctx, add_study(ctx, study_date=same), lung_rads="2", triage=0.1, finished_at=T0 + timedelta(hours=1)
    )
    # no findings, and a scan that failed QA
    d["none"] = add_done(ctx, add_study(ctx), lung_rads=None, triage=0.0, n_findings=0)
    d["qa_failed"] = add_done(
        ctx,
        add_study(ctx),
        lung_rads=None,
        triage=0.0,
        n_findings=0,
        scan_status="qa_failed",
        finished_at=T0 - timedelta(hours=1),  # the same study date as "none": the older analysis last
    )
    # a study analysed twice: only its newest done analysis counts (an older 4X does not raise it)
    twice = add_study(ctx, study_date=date(2019, 1, 1))
    add_done(ctx, twice, lung_rads="4X", triage=0.99, finished_at=T0 - timedelta(days=3))
    d["1-latest"] = add_done(ctx, twice, lung_rads="1", triage=0.05, finished_at=T0)
    # newer analyses that are not done do not count either
    add_done(
        ctx,
        twice,
        lung_rads="4X",
        triage=1.0,
        finished_at=T0 + timedelta(days=1),
        status=AnalysisStatus.FAILED,
    )
    # a study with only a failed analysis is not on the worklist
    add_done(ctx, add_study(ctx), lung_rads="4X", status=AnalysisStatus.FAILED)
    return d


ORDER = [
    "4B",
    "4A-0.9",
    "4A-0.3",
    "3-new",
    "3-old",
    "3-none",
    "2-newer",
    "2-older",
    "1-latest",
    "none",
    "qa_failed",
]


def _ids(page: dict) -> list[str]:
    return [row["analysis_id"] for row in page["items"]]


def test_order_one_row_per_study(client, ctx, admin_headers) -> None:
    d = _scenario(ctx)
    page = client.get(f"{API}/worklist", headers=admin_headers).json()
    assert page["total"] == len(ORDER)
    assert _ids(page) == [d[k] for k in ORDER]
    first = page["items"][0]
    assert first["lung_rads"] == "4B" and first["priority_rank"] == 4 and first["triage_probability"] == 0.2
    assert first["scan_status"] == "ok" and first["n_findings"] == 1 and first["study_uid"]
    assert first["study_date"] == "2023-01-01" and first["finished_at"].endswith(("Z", "+00:00"))
    # pages are windows of the same order
    got = []
    for offset in range(0, len(ORDER), 4):
        p = client.get(f"{API}/worklist?limit=4&offset={offset}", headers=admin_headers).json()
        assert (p["total"], p["limit"], p["offset"]) == (len(ORDER), 4, offset)
        got += _ids(p)
    assert got == [d[k] for k in ORDER]


def test_filters(client, ctx, admin_headers) -> None:
    d = _scenario(ctx)
    patient = add_study(ctx, patient_id="OTHER", study_date=date(2024, 3, 3))
    d["other"] = add_done(ctx, patient, lung_rads="2", triage=0.0)

    def ids(query: str) -> list[str]:
        r = client.get(f"{API}/worklist?{query}", headers=admin_headers)
        assert r.status_code == 200, r.text
        return _ids(r.json())

    assert ids("min_lung_rads=4A") == [d["4B"], d["4A-0.9"], d["4A-0.3"]]
    assert ids("scan_status=qa_failed") == [d["qa_failed"]]
    in_2024 = [d[k] for k in ("4A-0.3", "3-new", "other", "none", "qa_failed")]  # none, qa_failed: 2024-01-01
    assert ids("date_from=2024-01-01&date_to=2024-06-01") == in_2024
    assert ids("date_from=2024-01-02&date_to=2024-05-31") == [d["other"]]
    from lungcad.service.security import patient_hash

    assert ids(f"patient_id_hash={patient_hash(ctx.settings.secret_key, 'OTHER')}") == [d["other"]]
    for bad in ("min_lung_rads=5", "scan_status=fine", "date_from=yesterday", "limit=0"):
        assert client.get(f"{API}/worklist?{bad}", headers=admin_headers).status_code == 422, bad


def test_phi_only_for_roles_that_may_read_it(client, ctx, make_key) -> None:
    add_done(ctx, add_study(ctx, patient_id="PID-9", patient_name="Roe^Richard"))
    for role, phi in (("radiologist", True), ("admin", True), ("viewer", False), ("researcher", False)):
        row = client.get(f"{API}/worklist", headers={"X-API-Key": make_key(role)}).json()["items"][0]
        assert (row["patient_name"], row["patient_id"]) == (("Roe^Richard", "PID-9") if phi else (None, None))
        assert row["patient_id_hash"]  # the pseudonym is for everyone
    assert client.get(f"{API}/worklist", headers={"X-API-Key": make_key("service")}).status_code == 403


def test_sqlite_plan_uses_the_indexes(ctx) -> None:
    """The database, not Python, orders the rows: the outer scan reads ix_analyses_worklist in order and
    the newest-analysis subquery looks a study up by its index."""
    _scenario(ctx)
    stmt = ordered(worklist_query(WorklistFilters())).limit(50)
    compiled = stmt.compile(ctx.engine, compile_kwargs={"literal_binds": True})
    with ctx.engine.connect() as conn:
        rows = conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}")).all()  # (id, parent, _, detail)
    plan = "\n".join(str(r[3]) for r in rows)
    top = [str(r[3]) for r in rows if r[1] == 0]
    assert top[0].startswith("SEARCH analyses USING INDEX ix_analyses_worklist (status=?)"), plan
    assert "SEARCH analyses_1 USING INDEX ix_analyses_study_id (study_id=?)" in plan, plan
    # the first two sort keys come from the index: only ties are sorted, never the whole list
    assert "USE TEMP B-TREE FOR RIGHT PART OF ORDER BY" in top, plan
    assert "USE TEMP B-TREE FOR ORDER BY" not in top, plan


def test_order_on_postgresql(postgres_db_url: str, tmp_path: Path) -> None:
    """The same query on PostgreSQL (NULLS LAST, the correlated subquery) gives the same order."""
    ctx = open_context(load_settings(tmp_path / "pg", environ={}, database_url=postgres_db_url))
    try:
        d = _scenario(ctx)
        with ctx.sessions() as s:
            rows, total = worklist(s, limit=500)
            assert total == len(ORDER) and [a.id for a, _ in rows] == [d[k] for k in ORDER]
            rows, total = worklist(s, WorklistFilters(min_lung_rads="3"), limit=2, offset=1)
            assert total == 6 and [a.id for a, _ in rows] == [d["4A-0.9"], d["4A-0.3"]]
    finally:
        ctx.close()


def test_empty_worklist(client, admin_headers) -> None:
    page = client.get(f"{API}/worklist", headers=admin_headers).json()
    assert page == {"items": [], "total": 0, "limit": 50, "offset": 0}
