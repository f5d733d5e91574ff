"""``/experiments``: MLflow experiments and runs read back, filtered, and compared -- curves, best values,
artefacts and the exact configuration difference.  Runs are made with a real ``MlflowClient`` in a temporary
SQLite store (no training), and one test reads the MLflow data of a real tiny ``lungcad train`` run."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lungcad.config import load_config
from lungcad.service.context import ServiceContext, open_context
from lungcad.service.experiment_configs import config_from_params
from lungcad.service.experiments import metric_goal, runs_root, tracking_uri
from lungcad.service.models_registry import record_config
from lungcad.service.settings import load_settings

API = "/api/v1"
CPM = [0.2, 0.5, 0.4]
LOSS = [1.0, 0.6, 0.7]


def _log_curves(c: Any, run_id: str) -> None:
    for step, (cpm, loss) in enumerate(zip(CPM, LOSS, strict=True)):
        c.log_metric(run_id, "val/cpm", cpm, step=step)
        c.log_metric(run_id, "train/loss", loss, step=step)
        c.log_metric(run_id, "epoch", float(step), step=step)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A data folder whose MLflow store holds five runs of the experiment ``lungcad``:

    a, b: ``config_hash`` tags of stored configuration versions (b: other lr and overlap), a has an artefact;
    p1, p2: only Lightning-style ``config/...`` parameters (p2: another lr);
    folder: a run folder ``D/runs/folder-run`` with ``config.yaml`` (batch size 3) and its MLflow run id.
    """
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("exp")
    settings = load_settings(root / "data", environ={}, queue_immediate=True)
    ctx = open_context(settings)
    c = MlflowClient(tracking_uri(settings))
    exp = c.create_experiment("lungcad", artifact_location=(root / "artifacts").as_uri())
    base = load_config(environ={})
    cfg_b = load_config(overrides={"train": {"lr": 0.01}, "infer": {"overlap": 0.5}}, environ={})
    cfg_folder = load_config(overrides={"train": {"batch_size": 3}}, environ={})
    ids: dict[str, str] = {}
    for name, cfg in (("a", base), ("b", cfg_b)):
        run = c.create_run(exp, run_name=name, tags={"config_hash": record_config(ctx, cfg)})
        ids[name] = run.info.run_id
        c.log_param(run.info.run_id, "config/train/lr", str(cfg.train.lr))
        _log_curves(c, run.info.run_id)
        c.set_terminated(run.info.run_id)
    c.log_text(ids["a"], "what was tried", "notes/readme.txt")
    for name, lr in (("p1", "0.001"), ("p2", "0.003")):
        run = c.create_run(exp, run_name=name)
        ids[name] = run.info.run_id
        for key, value in {
            "config/train/lr": lr,
            "config/train/patch_size": "[32, 32, 32]",
            "config/train/deterministic": "True",
            "config/model/norm": "instance",
        }.items():
            c.log_param(run.info.run_id, key, value)
        c.log_metric(run.info.run_id, "val/cpm", 0.3, step=5)
    run = c.create_run(exp, run_name="folder-run")
    ids["folder"] = run.info.run_id
    folder = runs_root(settings) / "folder-run"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg_folder.model_dump(mode="json")))
    (folder / "status.json").write_text(json.dumps({"run_id": "folder-run", "mlflow_run_id": ids["folder"]}))
    (folder / "checkpoints" / "best.ckpt").write_bytes(b"x" * 10)
    c.set_terminated(ids["folder"], status="FAILED")
    yield {"ctx": ctx, "ids": ids, "client": c, "exp": exp, "hash_b": cfg_b.config_hash()}
    ctx.close()


@pytest.fixture(scope="module")
def api(store: dict[str, Any]) -> Iterator[Callable[..., Any]]:
    """``api(path, role="researcher", **params)`` -> the response of a GET with a key of that role."""
    from fastapi.testclient import TestClient

    from lungcad.service.app import create_app
    from lungcad.service.db.session import transaction
    from lungcad.service.security import create_key

    ctx: ServiceContext = store["ctx"]
    keys: dict[str, str] = {}
    with TestClient(create_app(ctx=ctx)) as client:

        def get(path: str, role: str = "researcher", **params: str):
            if role not in keys:
                with transaction(ctx.sessions) as s:
                    keys[role] = create_key(s, role).key
            return client.get(f"{API}{path}", params=params, headers={"X-API-Key": keys[role]})

        yield get


def test_experiments_are_listed_with_their_run_counts(api) -> None:
    r = api("/experiments")
    assert r.status_code == 200, r.text
    by_name = {e["name"]: e for e in r.json()}
    assert by_name["lungcad"]["n_runs"] == 5
    assert by_name["Default"]["n_runs"] == 0
    assert by_name["lungcad"]["created_at"].endswith(("Z", "+00:00"))


def test_runs_carry_params_latest_metrics_and_status(api, store) -> None:
    r = api("/experiments/runs", experiment="lungcad")
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["total"] == 5 and page["limit"] == 50
    runs = {x["name"]: x for x in page["items"]}
    a = runs["a"]
    assert a["id"] == store["ids"]["a"] and a["status"] == "FINISHED" and a["end_time"] is not None
    assert a["metrics"]["val/cpm"] == CPM[-1]  # the latest value, not the best
    assert a["params"] == {"config/train/lr": str(load_config(environ={}).train.lr)}
    assert not any(k.startswith("mlflow.") for k in a["tags"]) and "config_hash" in a["tags"]
    assert runs["folder-run"]["status"] == "FAILED"
    # newest first, and pages of the same order
    starts = [x["start_time"] for x in page["items"]]
    assert starts == sorted(starts, reverse=True) and set(runs) == {"a", "b", "p1", "p2", "folder-run"}
    second = api("/experiments/runs", limit="2", offset="2").json()
    assert second["items"] == page["items"][2:4] and second["total"] == 5


def test_runs_filter_goes_to_mlflow(api, store) -> None:
    r = api("/experiments/runs", filter="params.\"config/train/lr\" = '0.003'")
    assert r.status_code == 200, r.text
    assert [x["name"] for x in r.json()["items"]] == ["p2"]
    r = api("/experiments/runs", filter=f"tags.config_hash = '{store['hash_b']}'")
    assert [x["name"] for x in r.json()["items"]] == ["b"]
    assert api("/experiments/runs", filter='metrics."val/cpm" > 0.35').json()["total"] == 2  # a, b (0.4)


def test_a_bad_filter_is_a_422_with_mlflows_reason(api) -> None:
    r = api("/experiments/runs", filter="params.lr = ")
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "invalid_filter"
    assert "Invalid clause" in body["message"] and body["fix"]


def test_an_unknown_experiment_is_a_404(api) -> None:
    r = api("/experiments/runs", experiment="nope")
    assert r.status_code == 404 and r.json()["error"] == "not_found"


def test_compare_gives_curves_best_values_artefacts_and_the_exact_config_difference(api, store) -> None:
    a, b = store["ids"]["a"], store["ids"]["b"]
    r = api("/experiments/compare", runs=f"{a},{b}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["baseline"] == a and [x["run"]["id"] for x in body["runs"]] == [a, b]
    ra = body["runs"][0]
    assert [(p["step"], p["value"]) for p in ra["curves"]["val/cpm"]] == list(enumerate(CPM))
    assert [p["value"] for p in ra["curves"]["train/loss"]] == LOSS
    assert ra["best"]["val/cpm"] == {"value": 0.5, "step": 1, "goal": "max"}
    assert ra["best"]["train/loss"] == {"value": 0.6, "step": 1, "goal": "min"}
    assert "epoch" not in ra["best"]
    assert ra["config_source"] == "config_store" and ra["config_hash"] == ra["run"]["tags"]["config_hash"]
    assert {"path": "notes/readme.txt", "size": 14, "source": "mlflow"} in ra["artifacts"]
    diff = body["config_diffs"][b]
    base_cfg = load_config(environ={})
    assert diff == [
        {"path": "infer.overlap", "a": base_cfg.infer.overlap, "b": 0.5},
        {"path": "train.lr", "a": base_cfg.train.lr, "b": 0.01},
    ]
    assert a not in body["config_diffs"]


def test_compare_finds_the_config_in_the_run_folder_and_stores_it(api, store) -> None:
    a, folder = store["ids"]["a"], store["ids"]["folder"]
    body = api("/experiments/compare", runs=f"{a},{folder}").json()
    run = body["runs"][1]
    assert run["config_source"] == "run_folder"
    assert body["config_diffs"][folder] == [
        {"path": "train.batch_size", "a": load_config(environ={}).train.batch_size, "b": 3}
    ]
    sources = {(x["path"], x["source"]) for x in run["artifacts"]}
    assert {("config.yaml", "run_folder"), ("checkpoints/best.ckpt", "run_folder")} <= sources
    # recorded in the configuration store on the way: /configs resolves the hash
    stored = api(f"/configs/{run['config_hash']}")
    assert stored.status_code == 200 and stored.json()["config"]["train"]["batch_size"] == 3


def test_compare_falls_back_to_lightnings_flattened_params(api, store) -> None:
    p1, p2 = store["ids"]["p1"], store["ids"]["p2"]
    body = api("/experiments/compare", runs=f"{p1},{p2}").json()
    assert [x["config_source"] for x in body["runs"]] == ["params", "params"]
    assert body["config_diffs"][p2] == [{"path": "train.lr", "a": 0.001, "b": 0.003}]
    assert body["runs"][0]["best"]["val/cpm"] == {"value": 0.3, "step": 5, "goal": "max"}


def test_compare_refuses_one_run_and_unknown_runs(api, store) -> None:
    a = store["ids"]["a"]
    assert api("/experiments/compare", runs=a).status_code == 422
    assert api("/experiments/compare", runs=f"{a},{a}").status_code == 422  # not two distinct runs
    r = api("/experiments/compare", runs=f"{a},{'0' * 32}")
    assert r.status_code == 404 and r.json()["error"] == "not_found"


def test_researchers_and_admins_read_experiments_viewers_do_not(api) -> None:
    assert api("/experiments", role="admin").status_code == 200
    assert api("/experiments", role="viewer").status_code == 403
    assert api("/experiments", role="service").status_code == 403


def test_params_parse_back_into_typed_config_leaves() -> None:
    tree = config_from_params(
        {"config/train/lr": "0.001", "config/train/flips": "[0, 1]", "config/a/b/c": "True", "x": "1"}
    )
    assert tree == {"train": {"lr": 0.001, "flips": [0, 1]}, "a": {"b": {"c": True}}}
    assert config_from_params({"other": "1"}) is None
    assert metric_goal("val/sens_1fp") == "max" and metric_goal("val/heatmap") == "min"
    assert metric_goal("train/hard_negatives") is None and metric_goal("epoch") is None


def test_a_real_training_runs_mlflow_data_compares(tmp_path: Path) -> None:
    """Two real ``lungcad train`` runs (1 step each, ~10 s) logged to the service's MLflow store."""
    from fastapi.testclient import TestClient

    from lungcad.service.app import create_app
    from lungcad.service.db.session import transaction
    from lungcad.service.security import create_key
    from lungcad.train.fit import fit
    from tests.train.conftest import tiny_config, write_tiny_cohort

    settings = load_settings(tmp_path / "data", environ={}, queue_immediate=True)
    cohort = write_tiny_cohort(tmp_path / "cohort")
    ids = []
    for name, lr in (("r1", 1e-3), ("r2", 2e-3)):
        cfg = tiny_config(epochs=1, steps_per_epoch=1, hard_negatives_per_scan=0, lr=lr)
        result = fit(
            cfg,
            cohort,
            runs_root(settings) / name,
            cache_dir=tmp_path / "cache",
            tracking_uri=tracking_uri(settings),
            show_progress=False,
        )
        ids.append(result.state.mlflow_run_id)
    ctx = open_context(settings)
    try:
        with transaction(ctx.sessions) as s:
            key = create_key(s, "researcher").key
        with TestClient(create_app(ctx=ctx)) as client:
            r = client.get(
                f"{API}/experiments/compare", params={"runs": ",".join(ids)}, headers={"X-API-Key": key}
            )
    finally:
        ctx.close()
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["run"]["name"] for x in body["runs"]] == ["r1", "r2"]
    assert all(x["config_source"] == "run_folder" for x in body["runs"])
    assert body["config_diffs"][ids[1]] == [{"path": "train.lr", "a": 1e-3, "b": 2e-3}]
    first = body["runs"][0]
    assert "val/cpm" in first["best"] and first["curves"]["train/loss"]
    assert any(a["path"] == "last.ckpt" for a in first["artifacts"])


def test_an_unreachable_tracking_store_is_a_503(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from lungcad.service.app import create_app
    from lungcad.service.db.session import transaction
    from lungcad.service.security import create_key

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")  # the store's folder is a file: the store cannot open
    settings = load_settings(
        tmp_path / "data", environ={}, mlflow_tracking_uri=f"sqlite:///{blocker / 'mlflow.db'}"
    )
    ctx = open_context(settings)
    try:
        with transaction(ctx.sessions) as s:
            key = create_key(s, "researcher").key
        with TestClient(create_app(ctx=ctx)) as client:
            r = client.get(f"{API}/experiments", headers={"X-API-Key": key})
    finally:
        ctx.close()
    assert r.status_code == 503, r.text
    assert r.json()["error"] == "tracking_unavailable" and "LUNGCAD_MLFLOW_TRACKING_URI" in r.json()["fix"]
