"""``/admin/keys``: create (shown once), list (never a hash), revoke (effective at once), permissions."""

from __future__ import annotations

import time
from datetime import datetime

API = "/api/v1"


def _create(client, headers, **body):
    return client.post(f"{API}/admin/keys", json=body, headers=headers)


def test_create_list_and_use_a_key(client, admin_headers) -> None:
    r = _create(client, admin_headers, role="researcher", name="nightly eval", expires_days=30)
    assert r.status_code == 201, r.text
    new = r.json()
    assert new["key"].startswith(f"lc_{new['prefix']}_") and new["role"] == "researcher"
    assert new["name"] == "nightly eval" and new["active"] is True and new["revoked_at"] is None
    lifetime = datetime.fromisoformat(new["expires_at"]) - datetime.fromisoformat(new["created_at"])
    days = lifetime.total_seconds() / 86400
    assert abs(days - 30) < 1e-6
    assert client.get(f"{API}/models", headers={"X-API-Key": new["key"]}).status_code == 200
    page = client.get(f"{API}/admin/keys", headers=admin_headers).json()
    assert page["total"] == 2  # the admin fixture's key and this one
    assert page["items"][0]["prefix"] == new["prefix"]  # newest first
    assert all(set(item) == set(new) - {"key"} for item in page["items"])
    text = client.get(f"{API}/admin/keys", headers=admin_headers).text
    assert new["key"] not in text and "scrypt" not in text and "hash" not in text


def test_revoke_takes_effect_at_once_and_is_idempotent(client, admin_headers) -> None:
    new = _create(client, admin_headers, role="researcher").json()
    headers = {"X-API-Key": new["key"]}
    assert client.get(f"{API}/models", headers=headers).status_code == 200  # verified, now cached
    r = client.delete(f"{API}/admin/keys/{new['prefix']}", headers=admin_headers)
    assert r.status_code == 200 and r.json()["active"] is False and r.json()["revoked_at"]
    assert client.get(f"{API}/models", headers=headers).status_code == 401  # not after the cache's 30 s
    again = client.delete(f"{API}/admin/keys/{new['prefix']}", headers=admin_headers)
    assert again.status_code == 200 and again.json()["revoked_at"] == r.json()["revoked_at"]
    listed = {k["prefix"]: k for k in client.get(f"{API}/admin/keys", headers=admin_headers).json()["items"]}
    assert listed[new["prefix"]]["active"] is False


def test_expired_key_is_refused_and_listed_inactive(client, admin_headers) -> None:
    new = _create(client, admin_headers, role="researcher", expires_days=0.2 / 86400).json()  # 0.2 s
    time.sleep(0.3)
    assert client.get(f"{API}/models", headers={"X-API-Key": new["key"]}).status_code == 401
    listed = {k["prefix"]: k for k in client.get(f"{API}/admin/keys", headers=admin_headers).json()["items"]}
    assert listed[new["prefix"]]["active"] is False and listed[new["prefix"]]["revoked_at"] is None


def test_bad_requests(client, admin_headers) -> None:
    for body in (
        {"role": "boss"},
        {"role": "viewer", "expires_days": 0},
        {"role": "viewer", "colour": 1},
        {},
    ):
        r = _create(client, admin_headers, **body)
        assert r.status_code == 422 and r.json()["error"] == "invalid_request", body
    assert "role" in _create(client, admin_headers, role="boss").json()["message"]
    r = client.delete(f"{API}/admin/keys/0badc0de", headers=admin_headers)
    assert r.status_code == 404 and "GET /api/v1/admin/keys" in r.json()["fix"]
    assert client.delete(f"{API}/admin/keys/not-a-prefix", headers=admin_headers).status_code == 422


def test_only_admins_manage_keys(client, make_key) -> None:
    radiologist = {"X-API-Key": make_key("radiologist")}
    assert _create(client, radiologist, role="admin").status_code == 403
    assert client.get(f"{API}/admin/keys", headers=radiologist).status_code == 403
    assert client.delete(f"{API}/admin/keys/0badc0de", headers=radiologist).status_code == 403
    assert client.get(f"{API}/admin/keys").status_code == 401
