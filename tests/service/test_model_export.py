"""The model registry: a real tiny training run exported (calibrated, with card and lineage) and registered
through ``POST /models/export`` and ``POST /training-jobs/{id}/export``; promotion and rollback over the
activation history; migration 0004 seeding the history with the model active before it."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import torch

from lungcad.model.bundle import load_bundle, shipped_model_path
from lungcad.service.context import ServiceContext, open_context
from lungcad.service.db.migrate import upgrade
from lungcad.service.db.models import Cohort, TrainingJob, TrainingJobState
from lungcad.service.db.session import make_engine, transaction, utcnow
from lungcad.service.experiments import runs_root, tracking_uri
from lungcad.service.models_registry import record_config, register_model
from lungcad.service.settings import load_settings
from lungcad.service.storage import sha256_file
from lungcad.train.state import TrainingState

API = "/api/v1"
SLAB = Path(__file__).resolve().parents[2] / "tests" / "data" / "lidc_slab_0001"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A data folder with one real tiny run ``D/runs/tiny`` (2 steps, MLflow in the service's store) and
    an opened context."""
    from lungcad.train.fit import fit
    from tests.train.conftest import tiny_config, write_tiny_cohort

    root = tmp_path_factory.mktemp("export")
    settings = load_settings(root / "data", environ={}, queue_immediate=True)
    cohort = write_tiny_cohort(root / "cohort")
    cfg = tiny_config(epochs=1, steps_per_epoch=2, hard_negatives_per_scan=0)
    run = runs_root(settings) / "tiny"
    fit(cfg, cohort, run, cache_dir=root / "cache", tracking_uri=tracking_uri(settings), show_progress=False)
    ctx = open_context(settings)
    yield {"ctx": ctx, "run": run, "cohort": cohort, "cfg": cfg}
    ctx.close()


@pytest.fixture(scope="module")
def call(trained: dict[str, Any]) -> Iterator[Callable[..., Any]]:
    """``call(method, path, role="admin", json=...)`` with a key of that role."""
    from fastapi.testclient import TestClient

    from lungcad.service.app import create_app
    from lungcad.service.security import create_key

    ctx: ServiceContext = trained["ctx"]
    keys: dict[str, str] = {}
    with TestClient(create_app(ctx=ctx)) as client:

        def request(method: str, path: str, role: str = "admin", **kwargs: Any):
            if role not in keys:
                with transaction(ctx.sessions) as s:
                    keys[role] = create_key(s, role).key
            return client.request(method, f"{API}{path}", headers={"X-API-Key": keys[role]}, **kwargs)

        request.keys = keys  # type: ignore[attr-defined]
        yield request


def test_a_run_folder_exports_to_a_calibrated_model_with_card_and_lineage(call, trained) -> None:
    run: Path = trained["run"]
    state = TrainingState.read(run)
    r = call("POST", "/models/export", json={"run": "tiny", "model_version": "1.0.0"})
    assert r.status_code == 201, r.text
    model = r.json()
    assert model["model_id"] == "tiny" and model["model_version"] == "1.0.0" and model["active"] is False
    assert model["filename"] == "tiny-1.0.0.pt"
    assert model["config_hash"] == trained["cfg"].config_hash()
    assert (
        model["card"]["training_steps"] == state.step == 2 and model["card"]["calibration"] == "temperature"
    )
    lineage = model["lineage"]
    assert lineage["run"] == "tiny" and lineage["mlflow_run_id"] == state.mlflow_run_id
    assert lineage["config_hash"] == model["config_hash"]
    assert lineage["checkpoint"] in {"checkpoints/best.ckpt", "last.ckpt"} and lineage["checkpoint_step"] == 2
    assert lineage["metrics"]["best_cpm"] == state.best_cpm and lineage["metrics"]["steps"] == 2
    assert lineage["data"] == [{"path": str(trained["cohort"].resolve())}]
    assert lineage["calibration"] == "temperature"
    # the stored file is a loadable lungcad model with the calibration report in its card
    bundle = load_bundle(trained["ctx"].storage.blob_path(model["sha256"]))
    assert (
        bundle.card["calibration"]["source"] == str(run)
        and bundle.card["validation_cpm_best"] == state.best_cpm
    )
    # the configuration is in the store; the list shows the lineage (null for the shipped model)
    assert call("GET", f"/configs/{lineage['config_hash']}").status_code == 200
    items = {m["sha256"]: m for m in call("GET", "/models").json()["items"]}
    assert items[model["sha256"]]["lineage"] == lineage
    assert items[sha256_file(shipped_model_path())]["lineage"] is None
    assert not list(trained["ctx"].storage.tmp.iterdir())  # the staging folder is gone


def _job(ctx: ServiceContext, state: TrainingJobState, cohort: Path, cfg: Any) -> tuple[str, str]:
    """A training-job row (as the training routes would write it) of run ``tiny``; returns (job, cohort)."""
    job_id, cohort_id = uuid.uuid4().hex, uuid.uuid4().hex
    digest = record_config(ctx, cfg)
    now = utcnow()
    with transaction(ctx.sessions) as s:
        s.add(
            Cohort(
                id=cohort_id,
                name="tiny-cohort",
                path=f"{cohort.resolve()}#{cohort_id}",  # unique per test row
                kind="luna16",
                n_scans=3,
                n_nodules=3,
                created_at=now,
                manifest={},
            )
        )
        s.add(
            TrainingJob(
                id=job_id,
                created_at=now,
                updated_at=now,
                created_by="test",
                config=cfg.model_dump(mode="json"),
                config_hash=digest,
                data=[cohort_id],
                run_dir="tiny",
                state=state,
                command="run",
                attempts=1,
            )
        )
    return job_id, cohort_id


def test_a_training_job_exports_with_the_job_and_its_cohorts_in_the_lineage(call, trained) -> None:
    job_id, cohort_id = _job(trained["ctx"], TrainingJobState.FINISHED, trained["cohort"], trained["cfg"])
    r = call(
        "POST",
        f"/training-jobs/{job_id}/export",
        json={"model_version": "2.0.0", "calibrate": False, "checkpoint": "last", "activate": True},
    )
    assert r.status_code == 201, r.text
    model = r.json()
    assert model["active"] is True and model["model_version"] == "2.0.0"
    lineage = model["lineage"]
    assert lineage["training_job"] == job_id and lineage["checkpoint"] == "last.ckpt"
    assert lineage["data"] == [
        {"cohort_id": cohort_id, "name": "tiny-cohort", "path": lineage["data"][0]["path"]}
    ]
    assert lineage["calibration"] is None and model["card"]["calibration"] is None
    assert call("GET", "/models/active").json()["sha256"] == model["sha256"]
    # promoted by this admin key: on record in the history
    latest = call("GET", "/models/activations").json()["items"][0]
    assert latest["sha256"] == model["sha256"] and latest["kind"] == "activate"
    assert latest["by_key"] == call.keys["admin"].split("_")[1]
    # and rolled back: the model active before it is active again
    r = call("POST", "/models/rollback")
    assert r.status_code == 200, r.text
    assert r.json()["sha256"] != model["sha256"] and r.json()["active"] is True


@pytest.mark.slow
def test_a_promoted_export_analyses_a_study(call, trained) -> None:
    """Export, promote, analyse: the new active model runs the analysis (the issue's end-to-end path)."""
    from tests.service.helpers_analyses import store_folder

    r = call("POST", "/models/export", json={"run": "tiny", "model_version": "3.0.0", "activate": True})
    assert r.status_code == 201, r.text
    model = r.json()
    study = store_folder(trained["ctx"], SLAB)
    r = call("POST", "/analyses", json={"study_id": study})
    assert r.status_code == 202, r.text
    got = call("GET", f"/analyses/{r.json()['id']}").json()
    assert got["status"] == "done", got
    assert (got["model_id"], got["model_version"]) == ("tiny", "3.0.0")
    assert got["model_sha256"] == model["sha256"]
    assert call("POST", "/models/rollback").status_code == 200  # leave the shipped model active


def test_a_running_job_an_unknown_job_or_run_and_a_run_without_checkpoint_are_refused(call, trained) -> None:
    job_id, _ = _job(trained["ctx"], TrainingJobState.RUNNING, trained["cohort"], trained["cfg"])
    r = call("POST", f"/training-jobs/{job_id}/export", json={})
    assert r.status_code == 409 and "running" in r.json()["message"]
    assert call("POST", "/training-jobs/nope/export", json={}).status_code == 404
    assert call("POST", "/models/export", json={"run": "none"}).status_code == 404
    assert call("POST", "/models/export", json={"run": "../x"}).status_code == 422
    empty = runs_root(trained["ctx"].settings) / "empty"
    empty.mkdir()
    r = call("POST", "/models/export", json={"run": "empty"})
    assert r.status_code == 409 and r.json()["error"] == "conflict" and r.json()["fix"]


def test_the_longest_id_and_version_give_a_file_name_that_fits_its_column(call) -> None:
    body = {"run": "tiny", "model_id": "m" * 200, "model_version": "v" * 64, "calibrate": False}
    r = call("POST", "/models/export", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["model_id"] == "m" * 200 and len(r.json()["filename"]) <= 200


def test_only_model_writers_export_or_roll_back(call) -> None:
    assert call("POST", "/models/export", role="researcher", json={"run": "tiny"}).status_code == 403
    assert call("POST", "/models/rollback", role="radiologist").status_code == 403
    assert call("GET", "/models/activations", role="researcher").status_code == 200


# -- promotion and rollback -----------------------------------------------------------------------------
def _variant(tmp_path: Path, version: str) -> Path:
    """The shipped model under another version: other bytes, another sha256."""
    payload = torch.load(shipped_model_path(), map_location="cpu", weights_only=True)
    payload["model_version"] = version
    buf = io.BytesIO()
    torch.save(payload, buf)
    path = tmp_path / f"{version}.pt"
    path.write_bytes(buf.getvalue())
    return path


def test_rollback_walks_the_activation_history_back(client, ctx, admin_headers, tmp_path) -> None:
    shipped = sha256_file(shipped_model_path())
    r = client.post(f"{API}/models/rollback", headers=admin_headers)
    assert r.status_code == 409 and r.json()["error"] == "conflict"  # the first model ever active
    b = register_model(ctx, _variant(tmp_path, "9.0.1"), filename="b.pt").sha256
    c = register_model(ctx, _variant(tmp_path, "9.0.2"), filename="c.pt").sha256
    for digest in (b, b, c):  # activating the active model again is no change of history
        assert (
            client.put(f"{API}/models/active", json={"sha256": digest}, headers=admin_headers).status_code
            == 200
        )
    rolled = []
    for _ in range(2):
        r = client.post(f"{API}/models/rollback", headers=admin_headers)
        assert r.status_code == 200, r.text
        rolled.append(r.json()["sha256"])
    assert rolled == [b, shipped]
    assert client.get(f"{API}/models/active", headers=admin_headers).json()["sha256"] == shipped
    assert client.post(f"{API}/models/rollback", headers=admin_headers).status_code == 409
    history = client.get(f"{API}/models/activations", headers=admin_headers).json()
    assert [(x["sha256"], x["kind"]) for x in history["items"]] == [
        (shipped, "rollback"),
        (b, "rollback"),
        (c, "activate"),
        (b, "activate"),
        (shipped, "activate"),  # the service activated the shipped model on the fresh data folder
    ]
    assert history["items"][-1]["by_key"] is None and history["total"] == 5
    # promoting again after the rollbacks starts from the model now active
    client.put(f"{API}/models/active", json={"sha256": c}, headers=admin_headers)
    assert client.post(f"{API}/models/rollback", headers=admin_headers).json()["sha256"] == shipped


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.db'}"
    return request.getfixturevalue("postgres_db_url")  # skipped with a reason without a server


def test_migration_0004_seeds_the_history_with_the_active_model(any_db_url: str) -> None:
    url = any_db_url
    upgrade(url, "0003")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO models (sha256, model_id, model_version, bundle_config_hash, config, card, "
                    "size, filename, created_at, active) VALUES (:sha, 'm', '1', 'h', '{}', '{}', 1, 'm.pt', "
                    ":at, :active)"
                ),
                [
                    {"sha": "a" * 64, "at": utcnow(), "active": True},
                    {"sha": "b" * 64, "at": utcnow(), "active": False},
                ],
            )
        upgrade(url)
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT sha256, kind, by_key FROM model_activations")).all()
            lineage = conn.execute(sa.text("SELECT lineage FROM models ORDER BY sha256")).scalars().all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in rows] == [("a" * 64, "initial", None)]
    assert lineage == [None, None]
    assert json.dumps(lineage) == "[null, null]"
