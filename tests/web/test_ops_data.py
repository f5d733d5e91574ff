"""The JSON of the batch, models and operations pages without a browser (``lungcad.service.ui_data``,
``lungcad.service.ui_ops``): histogram percentiles on hand-computed cases, the routes' refusals (no session,
a role without the action) and their answers for a role that may."""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from lungcad.service.security import Principal, Role
from lungcad.service.ui_ops import histogram_quantile
from lungcad.service.ui_pages import PAGES, nav_for

INF = math.inf


def _login(client: TestClient, key: str) -> None:
    form = client.get("/ui/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    r = client.post("/ui/login", data={"api_key": key, "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303, r.text


def test_histogram_quantile_by_hand() -> None:
    # bounds 1, 2, 5, +Inf; cumulative 2, 6, 8, 8 -> ranks 1-2 in (0, 1], 3-6 in (1, 2], 7-8 in (2, 5]
    h = [(1.0, 2.0), (2.0, 6.0), (5.0, 8.0), (INF, 8.0)]
    assert histogram_quantile(0.5, h) == 1.5  # rank 4: 1 + (2 - 1) * (4 - 2) / (6 - 2)
    assert histogram_quantile(0.25, h) == 1.0  # rank 2: the top of the first bucket
    assert histogram_quantile(0.125, h) == 0.5  # rank 1: half-way through (0, 1]
    assert histogram_quantile(0.875, h) == pytest.approx(3.5)  # rank 7: 2 + 3 * (7 - 6) / 2
    assert histogram_quantile(1.0, h) == 5.0
    # ranks in the +Inf bucket: the highest finite bound (Prometheus's answer)
    assert histogram_quantile(0.99, [(1.0, 1.0), (2.0, 2.0), (INF, 5.0)]) == 2.0
    assert histogram_quantile(0.5, [(1.0, 0.0), (INF, 0.0)]) is None  # empty
    assert histogram_quantile(0.5, []) is None
    with pytest.raises(ValueError, match=r"q must be in \[0, 1\], got 1.5"):
        histogram_quantile(1.5, h)


def test_navigation_lists_the_new_pages_by_role() -> None:
    def names(role: Role) -> list[str]:
        return [p.name for p in nav_for(Principal("k", "p", role))]

    assert names(Role.ADMIN) == [p.name for p in PAGES if p.nav]
    assert "operations" not in names(Role.RESEARCHER) and "training" in names(Role.RESEARCHER)
    assert "experiments" in names(Role.RESEARCHER) and "models" in names(Role.RESEARCHER)
    assert names(Role.VIEWER) == ["worklist", "batches"]
    assert "training" not in names(Role.RADIOLOGIST) and "models" in names(Role.RADIOLOGIST)


def test_data_routes_refuse_without_session_and_by_role(
    client: TestClient, make_key: Callable[[str], str]
) -> None:
    for path in ("/ui/data/batches", "/ui/data/operations", "/ui/data/models/abc/card"):
        r = client.get(path)
        assert r.status_code == 401 and r.json()["error"] == "unauthenticated", (path, r.text)
    _login(client, make_key("researcher"))
    r = client.get("/ui/data/operations")
    assert r.status_code == 403 and r.json()["message"] == "role 'researcher' may not audit.read"
    assert client.get("/ui/operations").status_code == 403  # the page too
    assert client.get("/ui/data/batches").status_code == 200
    client.cookies.clear()
    _login(client, make_key("service"))
    # service: analysis.read (as GET /api/v1/batches/{id}), no study.read (the page's study list needs it)
    assert client.get("/ui/data/batches").status_code == 200
    assert client.get("/ui/batches").status_code == 403
    assert client.get("/ui/data/models/abc/card").json()["message"] == "role 'service' may not model.read"


def test_data_routes_answer_an_admin(client: TestClient, make_key: Callable[[str], str]) -> None:
    _login(client, make_key("admin"))
    ops = client.get("/ui/data/operations")
    assert ops.status_code == 200, ops.text
    d = ops.json()
    assert d["queue"] == {"queued": 0, "running": 0, "oldest_queued_s": None}
    assert len(d["throughput"]["per_hour"]) == 24 and d["throughput"]["done_last_day"] == 0
    assert d["latency"]["analysis"]["count"] == 0 and d["latency"]["analysis"]["p50_s"] is None
    assert d["failures"] == {"total": 0, "last_day": 0, "recent": []}
    active = client.get("/api/v1/models/active").json()
    card = client.get(f"/ui/data/models/{active['sha256']}/card")
    assert card.status_code == 200
    assert card.json()["card"]["validation_cpm_best"] == active["card"]["validation_cpm"]
    missing = client.get("/ui/data/models/" + "0" * 64 + "/card")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    batches = client.get("/ui/data/batches?limit=5")
    assert batches.json() == {"items": [], "total": 0, "limit": 5, "offset": 0}
    assert client.get("/ui/data/batches?limit=0").status_code == 422
    for page in ("batches", "models", "training", "experiments", "operations"):
        r = client.get(f"/ui/{page}")
        assert r.status_code == 200 and f'data-page="{page}"' in r.text, page
        assert "/ui/static/pages.css" in r.text


def test_one_observation_is_every_percentile() -> None:
    from lungcad.service.ui_ops import _summary

    # one analysis of 4.75 s in the (2.5, 5] bucket: interpolation would say p50 3.75; the value is exact
    one = _summary({2.5: 0.0, 5.0: 1.0, INF: 1.0}, 4.75)
    assert one == {"count": 1, "mean_s": 4.75, "p50_s": 4.75, "p90_s": 4.75, "p99_s": 4.75}
    two = _summary({1.0: 1.0, 2.0: 2.0, INF: 2.0}, 2.5)
    assert two["count"] == 2 and two["mean_s"] == 1.25 and two["p50_s"] == 1.0


def test_operations_counts_throughput_failures_and_latency(
    client: TestClient, ctx, make_key: Callable[[str], str]
) -> None:
    from datetime import timedelta

    from lungcad.service.db.models import Analysis, AnalysisStatus, Batch
    from lungcad.service.db.session import transaction, utcnow
    from tests.service.helpers_analyses import add_done, add_study

    now = utcnow()
    study = add_study(ctx)
    with transaction(ctx.sessions) as s:
        s.add(Batch(id="b-old", created_at=now - timedelta(hours=3)))
        s.add(Batch(id="b-new", created_at=now - timedelta(hours=1)))
    done = add_done(ctx, study, finished_at=now - timedelta(minutes=1), batch_id="b-new")
    failed = add_done(ctx, study, finished_at=now - timedelta(hours=2), status=AnalysisStatus.FAILED)
    add_done(ctx, study, finished_at=now - timedelta(hours=30))  # outside the day: not counted
    with transaction(ctx.sessions) as s:
        s.get(Analysis, failed).error = "preprocess: the lung mask is empty\nTraceback (most recent call)"
        s.get(Analysis, failed).stage = "preprocess"
    _login(client, make_key("admin"))
    d = client.get("/ui/data/operations").json()
    hours = d["throughput"]["per_hour"]
    assert hours[-1]["done"] == 1 or hours[-2]["done"] == 1  # this hour (or the last, at :00)
    assert sum(h["done"] for h in hours) == 1 and sum(h["failed"] for h in hours) == 1
    assert d["throughput"]["done_last_day"] == 1 and d["analyses"]["done"] == 2
    assert d["failures"]["total"] == 1 and d["failures"]["last_day"] == 1
    recent = d["failures"]["recent"]
    assert [f["analysis_id"] for f in recent] == [failed]
    assert recent[0]["error"] == "preprocess: the lung mask is empty" and recent[0]["stage"] == "preprocess"
    # every done analysis took 30 s (started 30 s before it finished): both observed, percentiles in (20, 30]
    lat = d["latency"]["analysis"]
    assert lat["count"] == 2 and lat["mean_s"] == 30.0 and 20.0 < lat["p50_s"] <= 30.0
    assert {"count", "p50_s", "p90_s", "p99_s", "mean_s"} <= set(d["latency"]["api"])
    page = client.get("/ui/data/batches").json()
    assert [b["id"] for b in page["items"]] == ["b-new", "b-old"] and page["total"] == 2
    assert page["items"][0]["counts"]["done"] == 1 and page["items"][0]["analysis_ids"] == [done]
    assert page["items"][1]["n_analyses"] == 0 and page["items"][1]["finished"] is True
