"""The dashboard's sessions without a browser (TestClient): login with an API key into a signed HttpOnly,
SameSite=Strict cookie; the cookie in place of X-API-Key on /api/v1; CSRF on state-changing requests;
logout, revocation and tampering end a session; pages refused to roles without their actions."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from lungcad.service.keys import revoke_key
from lungcad.service.ui_session import COOKIE, CSRF_HEADER

API = "/api/v1"


def _login(client: TestClient, key: str, next_: str = "") -> object:
    form = client.get("/ui/login")
    assert form.status_code == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    return client.post(
        "/ui/login", data={"api_key": key, "csrf_token": token, "next": next_}, follow_redirects=False
    )


def _csrf(client: TestClient, page: str = "/ui/worklist") -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get(page).text).group(1)


def test_login_sets_a_strict_httponly_cookie(client: TestClient, make_key: Callable[[str], str]) -> None:
    r = _login(client, make_key("radiologist"), "/ui/upload")
    assert r.status_code == 303 and r.headers["location"] == "/ui/upload"
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith(f"{COOKIE}="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP on loopback (TLS: Secure)
    assert client.get(f"{API}/worklist").status_code == 200  # the cookie stands in for the key


def test_login_refusals(client: TestClient, make_key: Callable[[str], str]) -> None:
    bad = _login(client, "lc_00000000_" + "x" * 43)
    assert bad.status_code == 401 and "unknown, revoked or expired" in bad.text
    assert COOKIE not in client.cookies
    no_token = client.post("/ui/login", data={"api_key": make_key("admin")}, follow_redirects=False)
    assert no_token.status_code == 403  # login CSRF: the form's double-submit token is missing
    evil = _login(client, make_key("admin"), "https://evil.example/ui/x")
    assert evil.headers["location"] == "/ui/worklist"  # never an open redirect


def test_state_changing_api_calls_need_the_csrf_token(client: TestClient, make_key) -> None:
    _login(client, make_key("admin"))
    body = {"study_id": "no-such-study"}
    refused = client.post(f"{API}/analyses", json=body)
    assert refused.status_code == 403 and refused.json()["error"] == "csrf_failed"
    wrong = client.post(f"{API}/analyses", json=body, headers={CSRF_HEADER: "guess"})
    assert wrong.status_code == 403
    ok = client.post(f"{API}/analyses", json=body, headers={CSRF_HEADER: _csrf(client)})
    assert ok.status_code == 404  # past authentication and CSRF: the study does not exist


def test_an_api_key_header_wins_over_the_cookie(client: TestClient, make_key) -> None:
    _login(client, make_key("admin"))
    r = client.get(f"{API}/admin/keys", headers={"X-API-Key": make_key("viewer")})
    assert r.status_code == 403  # the viewer key decides, not the admin session
    made = client.post(f"{API}/analyses", json={"study_id": "x"}, headers={"X-API-Key": make_key("admin")})
    assert made.status_code == 404  # an API key needs no CSRF token, cookie or not


def test_logout_revocation_and_tampering_end_the_session(client: TestClient, ctx, make_key) -> None:
    key = make_key("viewer")
    _login(client, key)
    value = client.cookies[COOKIE]
    client.cookies.clear()
    client.cookies.set(COOKIE, value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
    assert client.get(f"{API}/worklist").status_code == 401  # a changed signature
    client.cookies.clear()
    client.cookies.set(COOKIE, value)
    assert client.get(f"{API}/worklist").status_code == 200
    wrong = client.post("/ui/logout", data={"csrf_token": "forged"}, follow_redirects=False)
    assert wrong.status_code == 403
    out = client.post("/ui/logout", data={"csrf_token": _csrf(client)}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/ui/login"
    client.cookies.set(COOKIE, value)  # the old cookie, replayed
    assert client.get(f"{API}/worklist").status_code == 401
    client.cookies.clear()
    # a revoked key ends its sessions at once
    _login(client, key)
    assert client.get(f"{API}/worklist").status_code == 200
    revoke_key(ctx.sessions, ctx.keys, key.split("_")[1])
    assert client.get(f"{API}/worklist").status_code == 401
    assert client.get("/ui/worklist", follow_redirects=False).status_code == 303


@pytest.mark.parametrize(
    ("role", "allowed", "refused"),
    [
        ("viewer", ["/ui/worklist"], ["/ui/upload"]),
        ("service", ["/ui/upload"], ["/ui/worklist", "/ui/study/x"]),
        ("radiologist", ["/ui/worklist", "/ui/upload", "/ui/study/x"], []),
    ],
)
def test_pages_follow_the_permission_matrix(client: TestClient, make_key, role, allowed, refused) -> None:
    _login(client, make_key(role))
    page = client.get(allowed[0])
    nav = re.findall(r'<li><a href="(/ui/[a-z]+)"', page.text)
    clinical = [p for p in nav if p in ("/ui/worklist", "/ui/upload")]  # the other pages: test_pages_ops
    assert clinical == [p for p in ("/ui/worklist", "/ui/upload") if p in allowed]
    for path in allowed:
        r = client.get(path)
        assert r.status_code == 200, path
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    for path in refused:
        r = client.get(path)
        assert r.status_code == 403 and "may not open" in r.text, path


def test_pages_need_a_session(client: TestClient) -> None:
    r = client.get("/ui/study/abc?x=1", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/login?next=/ui/study/abc%3Fx%3D1"
    assert client.get(f"{API}/worklist").status_code == 401
