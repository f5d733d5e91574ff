"""The permission matrix, route by route: every route of the app, with a key of every role, a bad key and no
key.  No key or a bad one -> 401; a role whose ``PERMISSIONS`` lack one of the route's actions -> 403 (and
nothing done); a role that may -> neither 401 nor 403, nor a 5xx.

The routes and their actions are read from the app (``tests/service/helpers_routes.py``), so a new route is
walked without touching this file, and a route under ``/api/v1`` that declares no action fails the walk.
The requests point at a real stored study (the bundled slab uploaded through the API), a done analysis of
it (run in-process) and a batch, so that allowed requests get past 404 where an id is involved.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lungcad.service.app import create_app
from lungcad.service.context import ServiceContext, open_context
from lungcad.service.db.models import Study
from lungcad.service.db.session import transaction
from lungcad.service.models_registry import active_model
from lungcad.service.openapi import openapi_document
from lungcad.service.security import PERMISSIONS, Action, Role, create_key
from lungcad.service.settings import load_settings
from tests.service.helpers_analyses import add_study
from tests.service.helpers_routes import API, Fixture, RouteInfo, api_routes
from tests.service.uploads import slab_bytes

# routes under /api/v1 that are public by design: the API description itself
PUBLIC_API = {"/api/v1/openapi.json", "/api/v1/docs"}
BAD_KEY = "lc_00000000_" + "x" * 43  # well-formed, unknown
CALLERS = [None, "bad-key", *(r.value for r in Role)]


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[TestClient, ServiceContext, Fixture, dict]]:
    """A service with the slab stored, one done analysis (immediate queue), a batch and a key per role."""
    settings = load_settings(tmp_path_factory.mktemp("rbac") / "data", environ={}, queue_immediate=True)
    ctx = open_context(settings)
    try:
        with transaction(ctx.sessions) as s:
            keys = {role.value: create_key(s, role, name=f"rbac-{role.value}").key for role in Role}
        keys["bad-key"] = BAD_KEY
        admin = {"X-API-Key": keys["admin"]}
        dicom = slab_bytes()
        with TestClient(create_app(ctx=ctx)) as client:
            up = client.post(
                f"{API}/studies",
                files=[("files", (f"{i}.dcm", d)) for i, d in enumerate(dicom)],
                headers=admin,
            )
            assert up.status_code == 201, up.text
            study_id = up.json()["id"]
            made = client.post(f"{API}/analyses", json={"study_id": study_id}, headers=admin)
            assert made.status_code == 202, made.text
            analysis = client.get(f"{API}/analyses/{made.json()['id']}", headers=admin).json()
            assert analysis["status"] == "done", analysis
            batch = client.post(f"{API}/batches", json={"study_ids": [study_id]}, headers=admin)
            assert batch.status_code == 202, batch.text
            with ctx.sessions() as s:
                sha = active_model(s).sha256

            def fresh_key_prefix() -> str:
                with transaction(ctx.sessions) as s:
                    return create_key(s, Role.VIEWER, name="rbac-disposable").record.prefix

            fixture = Fixture(
                study_id=study_id,
                analysis_id=analysis["id"],
                batch_id=batch.json()["id"],
                config_hash=analysis["config_hash"],
                model_sha256=sha,
                dicom=dicom,
                fresh_study=lambda: add_study(ctx),
                fresh_key_prefix=fresh_key_prefix,
            )
            yield client, ctx, fixture, keys
    finally:
        ctx.close()


def _routes(client: TestClient) -> list[RouteInfo]:
    return api_routes(client.app)


def _protected(routes: list[RouteInfo]) -> list[RouteInfo]:
    return [r for r in routes if r.path.startswith(API + "/") and r.path not in PUBLIC_API]


def test_every_api_route_declares_an_action(world) -> None:
    client, *_ = world
    routes = _routes(client)
    protected = _protected(routes)
    assert len(protected) >= 25, [r.label for r in protected]  # the walk sees the included routers
    missing = [r.label for r in protected if not r.actions]
    assert not missing, f"routes under {API} without a require(Action) dependency: {missing}"
    # a permission no route asks for is dead weight in the matrix (PHI_READ is checked inside routes)
    used = set().union(*(r.actions for r in protected))
    assert set(Action) - used == {Action.PHI_READ}


def test_the_walk_covers_the_published_operations(world) -> None:
    """The routes walked are exactly the operations of the OpenAPI document (nothing hidden from either)."""
    client, *_ = world
    walked = {(r.method.lower(), r.path) for r in _protected(_routes(client))}
    doc = openapi_document()
    published = {(m, p) for p, item in doc["paths"].items() for m in item}
    assert walked == published


@pytest.mark.parametrize("caller", CALLERS)
def test_every_route_with_every_role(world, caller: str | None) -> None:
    client, ctx, fixture, keys = world
    role = Role(caller) if caller in {r.value for r in Role} else None
    problems = []
    checked = 0
    for route, url, kwargs in fixture.requests(_protected(_routes(client))):
        headers = dict(kwargs.pop("headers", {}))
        if caller is not None:
            headers["X-API-Key"] = keys[caller]
        r = client.request(route.method, url, headers=headers, **kwargs)
        checked += 1
        if role is None:
            expected = "401"
            ok = r.status_code == 401 and r.json()["error"] == "unauthenticated"
        elif not route.actions <= PERMISSIONS[role]:
            expected = "403"
            ok = r.status_code == 403 and r.json()["error"] == "forbidden"
            if route.method == "DELETE" and "{study_id}" in route.path:  # refused means nothing was done
                with ctx.sessions() as s:
                    ok = ok and s.get(Study, url.rsplit("/", 1)[1]) is not None
        else:
            expected = "allowed (not 401/403/5xx)"
            ok = r.status_code not in {401, 403} and r.status_code < 500
        if not ok:
            problems.append(
                f"{route.label} [{sorted(a.value for a in route.actions)}]: "
                f"expected {expected}, got {r.status_code} {r.text[:200]}"
            )
    assert checked >= 25
    assert not problems, f"{caller}:\n" + "\n".join(problems)


def test_allowed_requests_reach_the_resource(world) -> None:
    """The ids are real: an allowed caller gets a 2xx from the read routes of the resources the fixture
    holds (the walk is not all 404s).  Other resources' routes (training jobs...) may well 404 or 422."""
    client, _ctx, fixture, keys = world
    owned = tuple(f"{API}/{p}" for p in ("studies", "analyses", "batches", "worklist", "models", "configs"))
    reads = [r for r in _protected(_routes(client)) if r.method == "GET" and r.path.startswith(owned)]
    assert len([r for r in reads if r.params]) >= 8
    failed = {}
    for route, url, kwargs in fixture.requests(reads):
        role = next(role for role in Role if route.actions <= PERMISSIONS[role])  # the first that may
        r = client.get(url, headers={"X-API-Key": keys[role.value]}, params=kwargs.get("params"))
        if not 200 <= r.status_code < 300:
            failed[route.label] = (role.value, r.status_code, r.text[:120])
    assert not failed, failed


def test_public_routes_need_no_key(world) -> None:
    client, *_ = world
    public = [r for r in _routes(client) if r not in _protected(_routes(client))]
    labels = {r.label for r in public}
    assert {"GET /healthz", "GET /readyz", "GET /metrics", "GET /api/v1/openapi.json"} <= labels
    for route in public:
        assert not route.actions, route.label
        r = client.request(route.method, route.path)
        assert r.status_code == 200, (route.label, r.status_code, r.text[:200])


def test_matrix_is_the_documented_one() -> None:
    """docs/service.md prints the matrix this test walks (``security.permission_table``)."""
    from lungcad.service.security import permission_table

    doc = Path(__file__).resolve().parents[2] / "docs" / "service.md"
    if not doc.is_file():
        pytest.skip("docs/service.md is not written yet")
    assert permission_table() in doc.read_text()
