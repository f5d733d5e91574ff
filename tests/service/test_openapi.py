"""The published OpenAPI document is current, and every route documents its body, its errors and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from lungcad.service.openapi import FILENAME, document_text, openapi_document

REPO = Path(__file__).resolve().parents[2]
PUBLISHED = REPO / "docs" / "api" / FILENAME
# routes that are reachable without a key (none under /api/v1 today)
PUBLIC: set[tuple[str, str]] = set()


@pytest.fixture(scope="module")
def doc() -> dict:
    return openapi_document()


def test_published_document_is_current() -> None:
    assert PUBLISHED.is_file(), "run: python -m lungcad.service.openapi docs/api"
    assert PUBLISHED.read_text() == document_text(), "stale: run python -m lungcad.service.openapi docs/api"


def _operations(doc: dict):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield path, method, op


def test_every_route_has_a_typed_success_response(doc: dict) -> None:
    for path, method, op in _operations(doc):
        ok = [code for code in op["responses"] if code.startswith("2")]
        assert ok, f"{method} {path} documents no success response"
        for code in ok:
            content = op["responses"][code].get("content", {})
            assert content, f"{method} {path} {code} has no response body schema"
            for media in content.values():
                assert media.get("schema"), f"{method} {path} {code}: no schema"


def test_every_route_needs_a_key_and_documents_its_errors(doc: dict) -> None:
    schemes = doc["components"]["securitySchemes"]
    assert any(s.get("in") == "header" and s.get("name") == "X-API-Key" for s in schemes.values())
    for path, method, op in _operations(doc):
        if (method, path) in PUBLIC:
            continue
        assert op.get("security"), f"{method} {path} is not protected by X-API-Key"
        for code in ("401", "403"):
            assert code in op["responses"], f"{method} {path} does not document {code}"
            body = op["responses"][code]["content"]["application/json"]["schema"]
            assert body == {"$ref": "#/components/schemas/ErrorBody"}


def test_request_and_response_schemas_are_separate(doc: dict) -> None:
    """A request body schema is never also a response schema (FastAPI full-stack template habit)."""
    requests, responses = set(), set()
    for _path, _method, op in _operations(doc):
        for media in op.get("requestBody", {}).get("content", {}).values():
            ref = media.get("schema", {}).get("$ref")
            if ref:
                requests.add(ref)
        for resp in op["responses"].values():
            for media in resp.get("content", {}).values():
                ref = media.get("schema", {}).get("$ref")
                if ref:
                    responses.add(ref)
    assert not requests & responses
