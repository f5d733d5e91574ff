"""``/models``: list, active, upload (validated; foreign files refused with nothing stored), activation."""

from __future__ import annotations

import asyncio
import io
import zipfile
from pathlib import Path

import pytest
import torch
from sqlalchemy import func, select

from lungcad.model.bundle import load_bundle, shipped_model_path
from lungcad.service.context import ServiceContext, open_context
from lungcad.service.db.models import ModelFile
from lungcad.service.model_upload import ModelReceiver, ModelUploadError, receive_model, safe_filename
from lungcad.service.settings import load_settings
from lungcad.service.storage import sha256_file

API = "/api/v1"


@pytest.fixture(scope="module")
def variant(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A second valid model file: the shipped one under another version (so other bytes, another hash)."""
    payload = torch.load(shipped_model_path(), map_location="cpu", weights_only=True)
    payload["model_version"] = "9.9.9-test"
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


def _upload(client, headers, data: bytes, name: str = "model.pt", **fields: str):
    return client.post(
        f"{API}/models",
        files={"file": (name, data, "application/octet-stream")},
        data=fields,
        headers=headers,
    )


def _stored(ctx: ServiceContext) -> tuple[int, list[Path], list[Path]]:
    """(model rows, blob files, entries under tmp/): what an upload may have left behind."""
    with ctx.sessions() as s:
        rows = s.scalar(select(func.count()).select_from(ModelFile))
    blobs = [p for p in ctx.storage.blobs.rglob("*") if p.is_file()]
    return rows, blobs, list(ctx.storage.tmp.iterdir())


def test_list_and_active_show_the_shipped_model_with_its_card(client, admin_headers) -> None:
    card = load_bundle(None).card
    r = client.get(f"{API}/models", headers=admin_headers)
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["total"] == 1 and page["limit"] == 50 and page["offset"] == 0
    (item,) = page["items"]
    assert item["sha256"] == sha256_file(shipped_model_path()) and item["active"] is True
    assert item["size"] == shipped_model_path().stat().st_size
    assert item["model_id"] == "lungcad-default" and item["created_at"].endswith(("Z", "+00:00"))
    assert item["card"]["test_cpm"] == card["test_froc"]["cpm"]
    assert item["card"]["validation_cpm"] == card["validation_cpm_best"]
    assert item["card"]["training_steps"] == card["training_steps"]
    assert item["card"]["calibration"] == card["calibration"]["method"]
    assert client.get(f"{API}/models/active", headers=admin_headers).json() == item


def test_upload_activate_reupload_and_switch_back(client, ctx, admin_headers, variant) -> None:
    shipped = sha256_file(shipped_model_path())
    r = _upload(client, admin_headers, variant, name="../../etc/my model.pt", activate="true")
    assert r.status_code == 201, r.text
    new = r.json()
    assert new["model_version"] == "9.9.9-test" and new["active"] is True
    assert new["filename"] == "my_model.pt"  # no folders, no odd characters
    assert ctx.storage.blob_path(new["sha256"]).read_bytes() == variant
    assert client.get(f"{API}/models/active", headers=admin_headers).json()["sha256"] == new["sha256"]
    items = client.get(f"{API}/models", headers=admin_headers).json()["items"]
    assert [m["sha256"] for m in items] == [new["sha256"], shipped]  # newest first
    assert [m["active"] for m in items] == [True, False]
    # the same bytes again: 200, the existing row, nothing new
    again = _upload(client, admin_headers, variant)
    assert again.status_code == 200 and again.json()["sha256"] == new["sha256"]
    assert _stored(ctx)[0] == 2 and _stored(ctx)[2] == []
    # back to the shipped model
    r = client.put(f"{API}/models/active", json={"sha256": shipped}, headers=admin_headers)
    assert r.status_code == 200 and r.json()["active"] is True and r.json()["sha256"] == shipped
    items = client.get(f"{API}/models", headers=admin_headers).json()["items"]
    assert [m["active"] for m in items] == [False, True]


def test_upload_without_activate_leaves_the_active_model(client, admin_headers, variant) -> None:
    r = _upload(client, admin_headers, variant, activate="false")
    assert r.status_code == 201 and r.json()["active"] is False
    active = client.get(f"{API}/models/active", headers=admin_headers).json()
    assert active["sha256"] == sha256_file(shipped_model_path())


def test_put_active_unknown_or_malformed_hash(client, admin_headers) -> None:
    r = client.put(f"{API}/models/active", json={"sha256": "a" * 64}, headers=admin_headers)
    assert (
        r.status_code == 404 and r.json()["error"] == "not_found" and "GET /api/v1/models" in r.json()["fix"]
    )
    r = client.put(f"{API}/models/active", json={"sha256": "xyz"}, headers=admin_headers)
    assert r.status_code == 422 and r.json()["error"] == "invalid_request"


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("readme.txt", "not a model")
    return buf.getvalue()


def _torch_bytes(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _incompatible() -> bytes:
    """A lungcad-format file whose weights do not fit the network its configuration builds."""
    payload = torch.load(shipped_model_path(), map_location="cpu", weights_only=True)
    payload["state_dict"].pop(next(iter(payload["state_dict"])))
    return _torch_bytes(payload)


FOREIGN = {
    "text": ("notes.txt", lambda: b"these are my notes\n", "PyTorch cannot load it"),
    "torch_pickle": ("weights.pt", lambda: _torch_bytes({"w": torch.zeros(3)}), "not a lungcad model file"),
    "zip": ("archive.zip", _zip_bytes, "PyTorch cannot load it"),
    "truncated": ("model.pt", lambda: shipped_model_path().read_bytes()[:100_000], "PyTorch cannot load it"),
    "incompatible": ("old.pt", _incompatible, "incompatible with this lungcad version"),
}


@pytest.mark.parametrize("kind", list(FOREIGN))
def test_foreign_model_file_is_refused_and_nothing_is_stored(client, ctx, admin_headers, kind) -> None:
    name, make, reason = FOREIGN[kind]
    before = _stored(ctx)
    r = _upload(client, admin_headers, make(), name=name, activate="true")
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "invalid_model"
    assert body["message"].startswith(name) and reason in body["message"]
    assert body["message"].count(name) == 1
    assert body["fix"] and "export-model" in body["fix"]
    assert str(ctx.storage.root) not in r.text  # no server path in the answer
    assert _stored(ctx) == before and before[2] == []  # no row, no blob, no staging file
    active = client.get(f"{API}/models/active", headers=admin_headers).json()
    assert active["sha256"] == sha256_file(shipped_model_path())


def test_malformed_forms(client, ctx, admin_headers, variant) -> None:
    url = f"{API}/models"
    r = client.post(url, json={"file": "x"}, headers=admin_headers)
    assert r.status_code == 415 and r.json()["error"] == "unsupported_media_type"
    r = client.post(url, data={"activate": "true"}, files={"other": ("a", b"x")}, headers=admin_headers)
    assert r.status_code == 400 and "unknown form field 'other'" in r.json()["message"]
    r = client.post(
        url, files=[("file", ("a.pt", variant)), ("file", ("b.pt", variant))], headers=admin_headers
    )
    assert r.status_code == 400 and "more than one" in r.json()["message"]
    r = _upload(client, admin_headers, variant, activate="maybe")
    assert r.status_code == 422 and "true or false" in r.json()["message"]
    boundary = "XyZ"
    cut = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="m.pt"\r\n\r\nabc'
    r = client.post(
        url,
        content=cut.encode(),
        headers={**admin_headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 400 and "closing delimiter" in r.json()["message"]
    empty = f"--{boundary}--\r\n".encode()
    r = client.post(
        url,
        content=empty,
        headers={**admin_headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 400 and "no file part" in r.json()["message"]
    assert _stored(ctx)[0] == 1 and _stored(ctx)[2] == []


def test_permissions(client, make_key, variant) -> None:
    viewer, researcher = {"X-API-Key": make_key("viewer")}, {"X-API-Key": make_key("researcher")}
    assert client.get(f"{API}/models").status_code == 401
    assert client.get(f"{API}/models", headers=viewer).status_code == 403
    assert client.get(f"{API}/models", headers=researcher).status_code == 200
    assert client.get(f"{API}/models/active", headers=researcher).status_code == 200
    r = _upload(client, researcher, variant)
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    sha = sha256_file(shipped_model_path())
    assert client.put(f"{API}/models/active", json={"sha256": sha}, headers=researcher).status_code == 403


def test_upload_over_the_size_cap_is_refused(tmp_path: Path, variant) -> None:
    from fastapi.testclient import TestClient

    from lungcad.service.app import create_app
    from lungcad.service.db.session import transaction
    from lungcad.service.security import create_key

    ctx = open_context(load_settings(tmp_path / "d", environ={}, max_upload_bytes=len(variant) // 2))
    try:
        with transaction(ctx.sessions) as s:
            key = create_key(s, "admin").key
        with TestClient(create_app(ctx=ctx)) as client:
            r = _upload(client, {"X-API-Key": key}, variant)
        assert r.status_code == 413 and r.json()["error"] == "too_large"
        assert "LUNGCAD_MAX_UPLOAD_BYTES" in r.json()["fix"]
        assert _stored(ctx)[0] == 1 and _stored(ctx)[2] == []
    finally:
        ctx.close()


def test_receiver_stops_at_the_cap_while_streaming(tmp_path: Path) -> None:
    receiver = ModelReceiver("multipart/form-data; boundary=b", tmp_path, max_bytes=100)
    head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="m.pt"\r\n\r\n'
    receiver.feed(head)
    with pytest.raises(ModelUploadError, match="larger than the service's limit of 100 bytes") as info:
        for _ in range(10):
            receiver.feed(b"x" * 20)
    assert info.value.status_code == 413 and receiver.n_bytes <= 100 + 20
    receiver.close()


def test_client_that_goes_away_leaves_no_staging_file(ctx) -> None:
    class Gone(Exception):
        pass

    async def body():
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="m.pt"\r\n\r\n'
        yield b"\x80" * 10_000
        raise Gone  # what Starlette's ClientDisconnect does mid-stream

    with pytest.raises(Gone):
        asyncio.run(receive_model(ctx, "multipart/form-data; boundary=b", None, body()))
    assert list(ctx.storage.tmp.iterdir()) == [] and _stored(ctx)[0] == 1


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("model.pt", "model.pt"),
        ("C:\\x\\y.pt", "y.pt"),
        ("../..", "model.pt"),
        ("", "model.pt"),
        ("a b?.pt", "a_b_.pt"),
    ],
)
def test_safe_filename(name: str, safe: str) -> None:
    assert safe_filename(name) == safe


def test_openapi_documents_the_upload_form(client) -> None:
    spec = client.get(f"{API}/openapi.json").json()
    post = spec["paths"]["/api/v1/models"]["post"]
    form = post["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["file"] and form["properties"]["file"]["format"] == "binary"
    assert {"201", "200", "413", "415", "422"} <= set(post["responses"])
