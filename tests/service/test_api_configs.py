"""``/configs``: the configuration versions analyses record, and the leaf-by-leaf difference of two."""

from __future__ import annotations

import pytest

from lungcad.service.configs import Difference, diff_trees
from lungcad.service.models_registry import record_config
from tests.service.helpers_analyses import defaults

API = "/api/v1"


def test_get_a_recorded_config(client, ctx, admin_headers) -> None:
    _, config_hash = defaults(ctx)
    r = client.get(f"{API}/configs/{config_hash}", headers=admin_headers)
    assert r.status_code == 200
    doc = r.json()
    assert doc["hash"] == config_hash and doc["created_at"].endswith(("Z", "+00:00"))
    assert doc["config"]["infer"]["overlap"] == ctx.config.infer.overlap
    missing = client.get(f"{API}/configs/feedface", headers=admin_headers)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found" and missing.json()["fix"]


def test_diff_of_two_versions(client, ctx, admin_headers) -> None:
    _, a = defaults(ctx)
    cfg = ctx.config
    changed = cfg.model_copy(
        update={"infer": cfg.infer.model_copy(update={"overlap": 0.5, "report_threshold": 0.7})}
    )
    b = record_config(ctx, changed)
    assert b != a
    r = client.get(f"{API}/configs/diff", params={"a": a, "b": b}, headers=admin_headers)
    assert r.status_code == 200, r.text
    # a is the effective config (the model's model / preprocess sections), b the service's with 2 changes
    diffs = {d["path"]: (d["a"], d["b"]) for d in r.json()}
    assert diffs["infer.overlap"] == (cfg.infer.overlap, 0.5)
    assert diffs["infer.report_threshold"] == (cfg.infer.report_threshold, 0.7)
    assert all(p.startswith(("infer.", "model.", "preprocess.")) for p in diffs), diffs
    same = client.get(f"{API}/configs/diff", params={"a": a, "b": a}, headers=admin_headers)
    assert same.json() == []
    for params in ({"a": a, "b": "nope"}, {"a": "nope", "b": a}):
        r = client.get(f"{API}/configs/diff", params=params, headers=admin_headers)
        assert r.status_code == 404 and "nope" in r.json()["message"]
    assert client.get(f"{API}/configs/diff", params={"a": a}, headers=admin_headers).status_code == 422


def test_permissions(client, ctx, make_key) -> None:
    _, h = defaults(ctx)
    assert client.get(f"{API}/configs/{h}").status_code == 401
    assert client.get(f"{API}/configs/{h}", headers={"X-API-Key": make_key("viewer")}).status_code == 403
    assert client.get(f"{API}/configs/{h}", headers={"X-API-Key": make_key("researcher")}).status_code == 200


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ({"x": {"y": 1, "z": 2}}, {"x": {"y": 1, "z": 3}}, [("x.z", 2, 3)]),
        ({"x": 1}, {"x": 1.0}, []),  # the same number
        ({"x": True}, {"x": 1}, [("x", True, 1)]),  # a flag is not a count
        ({"x": [1, 2]}, {"x": [2, 1]}, [("x", [1, 2], [2, 1])]),  # a list is one leaf, order matters
        ({"x": 1}, {}, [("x", 1, None)]),
        ({}, {"s": {"a": 1, "b": {"c": 2}}}, [("s.a", None, 1), ("s.b.c", None, 2)]),  # a section's leaves
        ({"s": {}}, {}, [("s", {}, None)]),
        ({"s": {"a": 1}}, {"s": 5}, [("s", {"a": 1}, 5)]),
        (
            {"b": 1, "a": {"z": 1, "y": 2}},
            {"b": 2, "a": {"z": 0, "y": 3}},
            [("a.y", 2, 3), ("a.z", 1, 0), ("b", 1, 2)],
        ),
    ],
)
def test_diff_trees(a, b, expected) -> None:
    assert diff_trees(a, b) == [Difference(*e) for e in expected]
