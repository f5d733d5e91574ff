"""Bad input through the real app: each is a 4xx with the JSON body ``{error, message, fix}`` naming the
problem, and nothing is stored -- no Study / Series / Instance row, no blob under ``D/blobs`` and nothing
left in ``D/tmp``."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lungcad.service.context import ServiceContext, open_context
from lungcad.service.db.session import transaction
from lungcad.service.security import create_key
from lungcad.service.settings import load_settings
from tests.service.uploads import (
    API,
    BOUNDARY,
    JUNK,
    STOW_TYPE,
    damaged_pixels,
    form,
    retagged,
    slab_bytes,
    slab_zip,
    stored,
    stow_body,
    zip_of,
)


def refused(r, status: int, code: str, *words: str) -> dict:
    """``r`` is ``status`` with error ``code``, a message holding ``words`` and a fix."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["error"] == code, body
    for word in words:
        assert word in body["message"], (word, body["message"])
    assert body.get("fix"), body
    assert "Fix:" not in body["message"]  # the fix has its own field
    return body


def nothing_stored(ctx: ServiceContext) -> None:
    now = stored(ctx)
    assert now.nothing, now


def post_files(client: TestClient, headers: dict[str, str], *parts: tuple[str, bytes]):
    return client.post(f"{API}/studies", files=form(*parts), headers=headers)


def post_stow(client: TestClient, headers: dict[str, str], body: bytes, content_type: str = STOW_TYPE):
    return client.post(
        f"{API}/dicomweb/studies", content=body, headers={**headers, "Content-Type": content_type}
    )


# -- POST /studies -------------------------------------------------------------------------------------------
def test_not_dicom(client: TestClient, ctx: ServiceContext, admin_headers) -> None:
    r = post_files(client, admin_headers, ("scan.dcm", b"%PDF-1.4 a report, not an image\n" * 10))
    refused(r, 415, "not_dicom", "not DICOM", "scan.dcm")
    nothing_stored(ctx)


def test_not_dicom_several_files(client: TestClient, ctx: ServiceContext, admin_headers) -> None:
    r = post_files(client, admin_headers, ("a.txt", b"hello"), ("b.png", b"\x89PNG\r\n\x1a\n" + bytes(200)))
    refused(r, 415, "not_dicom", "a.txt", "1 more")
    nothing_stored(ctx)


def test_not_ct(client: TestClient, ctx: ServiceContext, admin_headers) -> None:
    mr = retagged(11, Modality="MR")
    r = post_files(client, admin_headers, ("mr.zip", slab_zip(mr)))
    refused(r, 422, "not_ct", "no CT series", "MR")
    nothing_stored(ctx)


def test_empty_zip(client: TestClient, ctx: ServiceContext, admin_headers) -> None:
    r = post_files(client, admin_headers, ("empty.zip", zip_of({})))
    refused(r, 422, "empty_zip", "empty.zip", "empty zip")
    nothing_stored(ctx)


def test_zip_of_empty_folders(client: TestClient, ctx: ServiceContext, admin_headers) -> None:
    r = post_files(client, admin_headers, ("folders.zip", zip_of({"EXPORT/": b"", "EXPORT/PAT1/": b""})))
    refused(r, 422, "empty_zip", "no files")
    nothing_stored(ctx)


def test_zip_with_nested_folders_and_junk_only(
    client: TestClient, ctx: ServiceContext, admin_headers
) -> None:
    r = post_files(client, admin_headers, ("export.zip", zip_of(JUNK)))
    refused(r, 422, "no_dicom", "no DICOM image", f"{len(JUNK)} file(s) skipped")
    nothing_stored(ctx)


def test_a_single_ct_slice_is_no_usable_series(
    client: TestClient, ctx: ServiceContext, admin_headers
) -> None:
    r = post_files(client, admin_headers, ("one.dcm", slab_bytes()[0]))
    refused(r, 422, "no_usable_series", "no usable CT series", "slice")
    nothing_stored(ctx)


def test_damaged_pixel_data_is_no_usable_series(
    client: TestClient, ctx: ServiceContext, admin_headers
) -> None:
    files = damaged_pixels(slab_bytes(), 5)
    r = post_files(client, admin_headers, ("study.zip", slab_zip(files, junk=False)))
    body = refused(r, 422, "no_usable_series", "no usable CT series")
    assert "IM0005" in body["message"]  # the broken slice, by its name in the zip
    nothing_stored(ctx)


def test_two_studies_in_one_upload(client: TestClient, ctx: ServiceContext, admin_headers) -> None:
    other = retagged(12)
    r = post_files(client, admin_headers, ("a.zip", slab_zip()), ("b.zip", slab_zip(other)))
    refused(r, 422, "several_studies", "2 studies", "one upload is one study")
    nothing_stored(ctx)


def test_a_broken_zip(client: TestClient, ctx: ServiceContext, admin_headers) -> None:
    data = slab_zip()
    r = post_files(client, admin_headers, ("cut.zip", data[: len(data) // 2]))
    refused(r, 400, "bad_zip", "cut.zip")
    nothing_stored(ctx)


def test_wrong_content_type(client: TestClient, ctx: ServiceContext, admin_headers) -> None:
    r = client.post(
        f"{API}/studies",
        content=slab_bytes()[0],
        headers={**admin_headers, "Content-Type": "application/dicom"},
    )
    refused(r, 415, "unsupported_media_type", "multipart/form-data")
    r = client.post(f"{API}/studies", json={"files": []}, headers=admin_headers)
    refused(r, 415, "unsupported_media_type")
    nothing_stored(ctx)


def test_form_without_files(client: TestClient, ctx: ServiceContext, admin_headers) -> None:
    r = client.post(
        f"{API}/studies",
        files=[("file", ("a.dcm", slab_bytes()[0], "application/dicom"))],
        headers=admin_headers,
    )
    refused(r, 400, "no_files", "'files'")
    nothing_stored(ctx)


def test_broken_form_body(client: TestClient, ctx: ServiceContext, admin_headers) -> None:
    r = client.post(
        f"{API}/studies",
        content=b'--x\r\nContent-Disposition: form-data; name="files"; filename="a"\r\n\r\nabc',
        headers={**admin_headers, "Content-Type": "multipart/form-data; boundary=x"},
    )
    assert r.status_code == 400 and r.json()["error"] in {"malformed_body", "no_files"}, r.text
    assert r.json()["fix"]
    nothing_stored(ctx)


# -- unknown ids ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "kind"),
    [
        ("get", "studies/0badc0de", "study"),
        ("delete", "studies/0badc0de", "study"),
        ("get", "analyses/0badc0de", "analysis"),
        ("get", "analyses/0badc0de/result", "analysis"),
        ("get", "analyses/0badc0de/files/report/report.pdf", "analysis"),
        ("post", "analyses/0badc0de/cancel", "analysis"),
    ],
)
def test_unknown_id_is_404(client: TestClient, admin_headers, method: str, path: str, kind: str) -> None:
    r = getattr(client, method)(f"{API}/{path}", headers=admin_headers)
    refused(r, 404, "not_found", f"no {kind} with id '0badc0de'")


def test_analysis_of_an_unknown_study_is_404(client: TestClient, ctx: ServiceContext, admin_headers) -> None:
    r = client.post(f"{API}/analyses", json={"study_id": "0badc0de"}, headers=admin_headers)
    refused(r, 404, "not_found", "no study with id '0badc0de'")
    nothing_stored(ctx)


# -- STOW-RS -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("content_type", "status", "code", "words"),
    [
        ('multipart/related; type="application/dicom"', 400, "malformed_stow", "no boundary"),
        ("application/dicom", 415, "unsupported_media_type", "multipart/related"),
        (
            f'multipart/related; type="application/dicom+json"; boundary={BOUNDARY}',
            415,
            "unsupported_media_type",
            "application/dicom+json",
        ),
    ],
)
def test_stow_bad_content_type(
    client: TestClient,
    ctx: ServiceContext,
    admin_headers,
    content_type: str,
    status: int,
    code: str,
    words: str,
) -> None:
    r = post_stow(client, admin_headers, stow_body(slab_bytes()[:3]), content_type)
    refused(r, status, code, words)
    nothing_stored(ctx)


def test_stow_without_closing_delimiter(client: TestClient, ctx: ServiceContext, admin_headers) -> None:
    r = post_stow(client, admin_headers, stow_body(slab_bytes(), close=False))
    refused(r, 400, "malformed_stow", "closing delimiter", f"--{BOUNDARY}--")
    nothing_stored(ctx)


def test_stow_body_without_any_delimiter(client: TestClient, ctx: ServiceContext, admin_headers) -> None:
    r = post_stow(client, admin_headers, slab_bytes()[0])
    refused(r, 400, "malformed_stow", "no boundary delimiter")
    nothing_stored(ctx)


def test_stow_empty_body(client: TestClient, ctx: ServiceContext, admin_headers) -> None:
    refused(post_stow(client, admin_headers, b""), 400, "malformed_stow", "empty")
    nothing_stored(ctx)


def test_stow_part_of_the_wrong_type(client: TestClient, ctx: ServiceContext, admin_headers) -> None:
    r = post_stow(client, admin_headers, stow_body(slab_bytes()[:4], content_type="image/jpeg"))
    refused(r, 415, "unsupported_part_type", "part 1", "image/jpeg")
    nothing_stored(ctx)


def test_stow_of_junk_only(client: TestClient, ctx: ServiceContext, admin_headers) -> None:
    r = post_stow(client, admin_headers, stow_body([b"junk" * 100, b"more junk" * 50]))
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["error"] in {"not_dicom", "no_dicom"} and r.json()["fix"]
    nothing_stored(ctx)


def test_stow_of_a_single_slice(client: TestClient, ctx: ServiceContext, admin_headers) -> None:
    r = post_stow(client, admin_headers, stow_body(slab_bytes()[:1]))
    refused(r, 422, "no_usable_series", "no usable CT series")
    nothing_stored(ctx)


# -- the body cap --------------------------------------------------------------------------------------------
@pytest.fixture
def small_cap(tmp_path: Path) -> Iterator[tuple[TestClient, ServiceContext, dict[str, str]]]:
    """An app whose request bodies are capped at 10 000 bytes."""
    from lungcad.service.app import create_app

    ctx = open_context(
        load_settings(tmp_path / "capped", environ={}, queue_immediate=True, max_upload_bytes=10000)
    )
    try:
        with transaction(ctx.sessions) as s:
            headers = {"X-API-Key": create_key(s, "admin").key}
        with TestClient(create_app(ctx=ctx)) as client:
            yield client, ctx, headers
    finally:
        ctx.close()


def _chunks(data: bytes, size: int = 4096) -> Iterator[bytes]:
    """A body without Content-Length (chunked transfer): the cap must be counted while it streams."""
    for at in range(0, len(data), size):
        yield data[at : at + size]


def test_body_over_the_cap(small_cap) -> None:
    client, ctx, headers = small_cap
    refused(post_files(client, headers, ("study.zip", slab_zip())), 413, "too_large", "10000 bytes")
    refused(post_stow(client, headers, stow_body(slab_bytes()[:2])), 413, "too_large", "10000 bytes")
    nothing_stored(ctx)


def test_streamed_body_over_the_cap(small_cap) -> None:
    client, ctx, headers = small_cap
    r = client.post(
        f"{API}/dicomweb/studies",
        content=_chunks(stow_body(slab_bytes()[:2])),
        headers={**headers, "Content-Type": STOW_TYPE},
    )
    refused(r, 413, "too_large")
    boundary = "formb0undary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="a.zip"\r\n'
            "Content-Type: application/zip\r\n\r\n"
        ).encode()
        + slab_zip()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    r = client.post(
        f"{API}/studies",
        content=_chunks(body),
        headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    refused(r, 413, "too_large")
    nothing_stored(ctx)


# -- keys ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", [None, "", "lc_not-a-real-key", "x" * 300])
def test_missing_or_invalid_api_key_is_401(client: TestClient, ctx: ServiceContext, key: str | None) -> None:
    headers = {} if key is None else {"X-API-Key": key}
    for r in (
        post_files(client, headers, ("study.zip", slab_zip())),
        post_stow(client, headers, stow_body(slab_bytes())),
        client.get(f"{API}/studies", headers=headers),
    ):
        assert r.status_code == 401, r.text
        assert r.json()["error"] and r.json()["message"] and r.json()["fix"]
    nothing_stored(ctx)


# -- a foreign model file ------------------------------------------------------------------------------------
def _foreign_models() -> dict[str, bytes]:
    import torch

    buf = io.BytesIO()
    torch.save({"state_dict": {"w": torch.zeros(2)}, "note": "someone else's checkpoint"}, buf)
    return {
        "resnet.pt": buf.getvalue(),
        "random.pt": bytes(range(256)) * 40,
        "study.zip": slab_zip(junk=False)[:4000],
    }


def test_foreign_model_file_is_refused(
    client: TestClient, ctx: ServiceContext, admin_headers, tmp_path
) -> None:
    pytest.importorskip("lungcad.service.model_upload", reason="POST /models not written yet")
    from sqlalchemy import func, select

    from lungcad.service.db.models import ModelFile

    with ctx.sessions() as s:
        before = s.scalar(select(func.count()).select_from(ModelFile))
    blobs = sorted((ctx.settings.data_dir / "blobs").rglob("*"))
    for name, data in _foreign_models().items():
        r = client.post(
            f"{API}/models", files={"file": (name, data, "application/octet-stream")}, headers=admin_headers
        )
        assert 400 <= r.status_code < 500 and r.status_code != 404, (name, r.text)
        body = r.json()
        assert body["error"] and body["message"] and body["fix"], body
    with ctx.sessions() as s:
        assert s.scalar(select(func.count()).select_from(ModelFile)) == before
    assert sorted((ctx.settings.data_dir / "blobs").rglob("*")) == blobs
    nothing_stored(ctx)
