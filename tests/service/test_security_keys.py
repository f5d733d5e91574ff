"""API keys: rotation (API and CLI) with and without a grace period, revocation (the last admin key is kept),
``last_used_at`` written at most once a minute, and ``lungcad admin list-keys | revoke-key | rotate-key``."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from lungcad.cli import main
from lungcad.service.db.models import ApiKey
from lungcad.service.db.session import as_utc, make_engine, make_sessionmaker, transaction, utcnow
from lungcad.service.security import KeyVerifier, Role, create_key
from lungcad.service.settings import load_settings

API = "/api/v1"


def h(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def row(ctx, prefix: str) -> ApiKey:  # noqa: ANN001 - a ServiceContext
    with ctx.sessions() as s:
        return s.scalar(select(ApiKey).where(ApiKey.prefix == prefix))


def test_rotate_issues_a_key_of_the_same_role_and_name_and_revokes_the_old_one(client, ctx, make_key) -> None:
    admin = make_key("admin")
    made = client.post(
        f"{API}/admin/keys", json={"role": "viewer", "name": "ward 3", "expires_days": 10}, headers=h(admin)
    )
    old = made.json()
    r = client.post(f"{API}/admin/keys/{old['prefix']}/rotate", headers=h(admin))
    assert r.status_code == 201, r.text
    new = r.json()
    assert new["prefix"] != old["prefix"] and new["key"].startswith(f"lc_{new['prefix']}_")
    assert (new["role"], new["name"], new["active"]) == ("viewer", "ward 3", True)
    assert new["replaces"]["prefix"] == old["prefix"] and new["replaces"]["active"] is False
    # the same lifetime, counted from now
    lifetime = as_utc(row(ctx, new["prefix"]).expires_at) - as_utc(row(ctx, new["prefix"]).created_at)
    assert abs(lifetime - timedelta(days=10)) < timedelta(seconds=1)
    assert client.get(f"{API}/worklist", headers=h(old["key"])).status_code == 401
    assert client.get(f"{API}/worklist", headers=h(new["key"])).status_code == 200
    # a rotated (revoked) key cannot be rotated again
    again = client.post(f"{API}/admin/keys/{old['prefix']}/rotate", headers=h(admin))
    assert again.status_code == 409 and again.json()["error"] == "key_not_active" and again.json()["fix"]
    assert client.post(f"{API}/admin/keys/00000000/rotate", headers=h(admin)).status_code == 404


def test_rotate_with_a_grace_period_keeps_the_old_key_working_until_then(client, ctx, make_key) -> None:
    admin = make_key("admin")
    old = client.post(f"{API}/admin/keys", json={"role": "radiologist"}, headers=h(admin)).json()
    r = client.post(f"{API}/admin/keys/{old['prefix']}/rotate", json={"grace_s": 3600}, headers=h(admin))
    assert r.status_code == 201, r.text
    replaced = r.json()["replaces"]
    assert replaced["active"] is True and replaced["revoked_at"] is not None
    assert client.get(f"{API}/worklist", headers=h(old["key"])).status_code == 200
    # the grace period ends (moved into the past here): the old key stops working
    with transaction(ctx.sessions) as s:
        s.execute(update(ApiKey).where(ApiKey.prefix == old["prefix"]).values(revoked_at=utcnow()))
    ctx.keys.forget()
    assert client.get(f"{API}/worklist", headers=h(old["key"])).status_code == 401
    assert (
        client.post(
            f"{API}/admin/keys/{old['prefix']}/rotate", json={"grace_s": -1}, headers=h(admin)
        ).status_code
        == 422
    )


def test_revoking_a_key_in_its_grace_period_ends_it_now(client, ctx, make_key) -> None:
    admin = make_key("admin")
    old = client.post(f"{API}/admin/keys", json={"role": "viewer"}, headers=h(admin)).json()
    client.post(f"{API}/admin/keys/{old['prefix']}/rotate", json={"grace_s": 3600}, headers=h(admin))
    r = client.delete(f"{API}/admin/keys/{old['prefix']}", headers=h(admin))
    assert r.status_code == 200 and r.json()["active"] is False
    assert client.get(f"{API}/worklist", headers=h(old["key"])).status_code == 401


def test_the_last_active_admin_key_cannot_be_revoked(client, ctx, make_key) -> None:
    admin = make_key("admin")
    prefix = admin.split("_")[1]
    r = client.delete(f"{API}/admin/keys/{prefix}", headers=h(admin))
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["error"] == "last_admin_key" and "create another admin key" in body["fix"]
    assert client.get(f"{API}/admin/keys", headers=h(admin)).status_code == 200  # still works
    # an expired or revoked admin key does not count as another one
    with transaction(ctx.sessions) as s:
        create_key(s, Role.ADMIN, expires_days=1)
        s.execute(update(ApiKey).where(ApiKey.prefix != prefix).values(expires_at=utcnow()))
    assert client.delete(f"{API}/admin/keys/{prefix}", headers=h(admin)).status_code == 409
    second = make_key("admin")
    assert client.delete(f"{API}/admin/keys/{prefix}", headers=h(second)).status_code == 200
    assert client.get(f"{API}/admin/keys", headers=h(admin)).status_code == 401
    # rotating the last admin key is fine: a new admin key replaces it
    r = client.post(f"{API}/admin/keys/{second.split('_')[1]}/rotate", headers=h(second))
    assert r.status_code == 201 and r.json()["role"] == "admin"
    assert client.get(f"{API}/admin/keys", headers=h(r.json()["key"])).status_code == 200


def test_last_used_at_is_written_at_most_once_a_minute(client, ctx, make_key) -> None:
    key = make_key("viewer")
    prefix = key.split("_")[1]
    assert row(ctx, prefix).last_used_at is None
    before = utcnow()
    assert client.get(f"{API}/worklist", headers=h(key)).status_code == 200
    first = as_utc(row(ctx, prefix).last_used_at)
    assert first is not None and first >= before - timedelta(seconds=1)
    for _ in range(3):
        client.get(f"{API}/worklist", headers=h(key))
    assert as_utc(row(ctx, prefix).last_used_at) == first  # not rewritten within the minute
    clock = client.app.state.usage_clock
    clock.every_s = 0.0  # the minute is over
    client.get(f"{API}/worklist", headers=h(key))
    assert as_utc(row(ctx, prefix).last_used_at) > first
    listed = client.get(f"{API}/admin/keys", headers=h(make_key("admin"))).json()["items"]
    assert any(k["prefix"] == prefix and k["last_used_at"] for k in listed)


# -- the CLI ----------------------------------------------------------------------------------------------
def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _works(data: Path, key: str) -> bool:
    engine = make_engine(load_settings(data, environ={}).db_url)
    try:
        with make_sessionmaker(engine)() as s:
            return KeyVerifier().verify(s, key) is not None
    finally:
        engine.dispose()


def test_cli_list_revoke_and_rotate(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    for name in ("LUNGCAD_DATA_DIR", "LUNGCAD_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    data = str(tmp_path / "d")
    code, out, _ = _cli(capsys, "admin", "create-key", "--role", "admin", "--data-dir", data, "--json")
    admin = json.loads(out)
    code, out, _ = _cli(
        capsys, "admin", "create-key", "--role", "service", "--name", "pacs", "--data-dir", data, "--json"
    )
    service = json.loads(out)

    code, out, _ = _cli(capsys, "admin", "list-keys", "--data-dir", data, "--json")
    assert code == 0
    listed = {k["prefix"]: k for k in json.loads(out)}
    assert set(listed) == {admin["prefix"], service["prefix"]}
    assert listed[service["prefix"]]["name"] == "pacs" and "key" not in listed[service["prefix"]]
    assert "key_hash" not in out and service["key"] not in out
    code, out, _ = _cli(capsys, "admin", "list-keys", "--data-dir", data)
    assert code == 0 and service["prefix"] in out and "active" in out

    code, out, err = _cli(capsys, "admin", "rotate-key", service["prefix"], "--data-dir", data)
    assert code == 0, err
    new_key = out.strip()
    assert new_key.startswith("lc_") and "not shown again" in err and service["prefix"] in err
    assert _works(Path(data), new_key) and not _works(Path(data), service["key"])

    code, out, err = _cli(
        capsys, "admin", "rotate-key", admin["prefix"], "--grace-s", "600", "--data-dir", data, "--json"
    )
    assert code == 0, err
    rotated = json.loads(out)
    assert rotated["role"] == "admin" and rotated["replaces"]["prefix"] == admin["prefix"]
    assert _works(Path(data), admin["key"]) and _works(Path(data), rotated["key"])  # in its grace period

    code, _, err = _cli(capsys, "admin", "revoke-key", admin["prefix"], "--data-dir", data)
    assert code == 0, err
    assert not _works(Path(data), admin["key"])
    # the new admin key is now the last one: refused, exit code 2 and the fix on stderr
    code, _, err = _cli(capsys, "admin", "revoke-key", rotated["prefix"], "--data-dir", data)
    assert code == 2 and "last active admin key" in err and "create another admin key" in err
    code, _, err = _cli(capsys, "admin", "revoke-key", "deadbeef", "--data-dir", data)
    assert code == 2 and "no API key with prefix" in err
