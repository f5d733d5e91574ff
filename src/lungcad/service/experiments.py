"""Experiments: the MLflow tracking store that ``lungcad train`` logs to, read back for the API.

The tracking URI is ``settings.mlflow_tracking_uri`` (empty: the SQLite store ``D/mlflow.db``, the one the
service's training jobs pass to ``lungcad train --tracking-uri``); a tracking server URL works the same.
Everything goes through ``mlflow.tracking.MlflowClient``, imported on first use (importing mlflow takes
seconds, and the API must start without it).

Comparing runs gives per run its metric curves (the full history of each metric key), its best values
(the maximum of CPM and sensitivity metrics, the minimum of losses), its artefacts, and the exact
difference of its configuration from the first run's (where a run's configuration is found:
``lungcad.service.experiment_configs``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from lungcad.service.configs import Difference, diff_trees
from lungcad.service.errors import ApiError
from lungcad.service.experiment_configs import resolve_config, run_folder

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

    from lungcad.service.context import ServiceContext
    from lungcad.service.settings import ServiceSettings

RUNS_FOLDER = "runs"  # D/runs: one folder per training run (the training jobs' run folders)
MAX_COMPARE = 10
MAX_ARTIFACTS = 1000
_PAGE = 1000
P = ParamSpec("P")
R = TypeVar("R")


def tracking_uri(settings: ServiceSettings) -> str:
    """The MLflow tracking URI of the service (``sqlite:///D/mlflow.db`` unless set)."""
    if settings.mlflow_tracking_uri:
        return settings.mlflow_tracking_uri
    return f"sqlite:///{(Path(settings.data_dir) / 'mlflow.db').resolve()}"


def runs_root(settings: ServiceSettings) -> Path:
    return Path(settings.data_dir) / RUNS_FOLDER


def client(settings: ServiceSettings) -> MlflowClient:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri(settings))


def _tracking_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """A tracking store that cannot be reached or read is a 503 naming the URI's scheme (not a 500)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from mlflow.exceptions import MlflowException

        try:
            return fn(*args, **kwargs)
        except (MlflowException, OSError) as exc:  # requests' errors are OSErrors too
            raise ApiError(
                503,
                "tracking_unavailable",
                f"the MLflow tracking store is unavailable ({type(exc).__name__})",
                fix="check LUNGCAD_MLFLOW_TRACKING_URI and that its server or file is reachable",
            ) from exc

    return wrapper


def _time(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


@dataclass(frozen=True)
class ExperimentSummary:
    id: str
    name: str
    n_runs: int
    created_at: datetime | None
    artifact_location: str


@dataclass(frozen=True)
class RunSummary:
    id: str
    name: str
    experiment_id: str
    status: str
    start_time: datetime | None
    end_time: datetime | None
    params: dict[str, str]
    metrics: dict[str, float]  # the latest value of each metric key
    tags: dict[str, str]


def _summary(run: Run) -> RunSummary:
    info, data = run.info, run.data
    return RunSummary(
        id=info.run_id,
        name=info.run_name or "",
        experiment_id=info.experiment_id,
        status=info.status,
        start_time=_time(info.start_time),
        end_time=_time(info.end_time),
        params=dict(data.params),
        metrics={k: float(v) for k, v in data.metrics.items()},
        # MLflow's own bookkeeping tags (mlflow.user, mlflow.source.name: a path) are not shown
        tags={k: v for k, v in data.tags.items() if not k.startswith("mlflow.")},
    )


def _all_runs(c: MlflowClient, experiment_ids: list[str], filter_string: str = "") -> list[Run]:
    """Every run of the experiments matching ``filter_string``, newest first (all pages)."""
    from mlflow.exceptions import MlflowException

    runs: list[Run] = []
    token = None
    while True:
        try:
            page = c.search_runs(
                experiment_ids,
                filter_string=filter_string,
                max_results=_PAGE,
                order_by=["attributes.start_time DESC"],
                page_token=token,
            )
        except MlflowException as exc:
            if exc.error_code == "INVALID_PARAMETER_VALUE":
                raise ApiError(
                    422,
                    "invalid_filter",
                    f"MLflow refused the filter: {exc.message}",
                    fix="use MLflow's search syntax, e.g. metrics.\"val/cpm\" > 0.5 and params.x = 'y' "
                    "(https://mlflow.org/docs/latest/search-runs.html)",
                ) from None
            raise
        runs.extend(page)
        token = page.token
        if not token:
            return runs


@_tracking_errors
def list_experiments(settings: ServiceSettings) -> list[ExperimentSummary]:
    """The active experiments with their run counts, by name."""
    c = client(settings)
    out = []
    for exp in c.search_experiments():
        n = len(_all_runs(c, [exp.experiment_id]))
        out.append(
            ExperimentSummary(
                exp.experiment_id, exp.name, n, _time(exp.creation_time), exp.artifact_location or ""
            )
        )
    return sorted(out, key=lambda e: e.name)


def _experiment_ids(c: MlflowClient, experiment: str | None) -> list[str]:
    if not experiment:
        return [e.experiment_id for e in c.search_experiments()]
    exp = c.get_experiment_by_name(experiment)
    if exp is None and experiment.isdigit():
        from mlflow.exceptions import MlflowException

        try:
            exp = c.get_experiment(experiment)
        except MlflowException:
            exp = None
    if exp is None:
        raise ApiError(
            404,
            "not_found",
            f"no experiment named or numbered {experiment!r}",
            fix="list them with GET /api/v1/experiments",
        )
    return [exp.experiment_id]


@_tracking_errors
def search_runs(
    settings: ServiceSettings, *, filter_string: str = "", experiment: str | None = None
) -> list[RunSummary]:
    """The runs of one experiment (name or id; default all) that match an MLflow filter, newest first.

    Raises:
        ApiError: 422 for a filter MLflow refuses (with MLflow's reason), 404 for an unknown experiment.
    """
    c = client(settings)
    ids = _experiment_ids(c, experiment)
    return [_summary(r) for r in _all_runs(c, ids, filter_string)] if ids else []


# -- comparison -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Point:
    step: int
    value: float
    timestamp: datetime | None


@dataclass(frozen=True)
class Best:
    value: float
    step: int
    goal: str  # "max" | "min"


@dataclass(frozen=True)
class Artifact:
    path: str
    size: int | None
    source: str  # "mlflow" | "run_folder"


@dataclass
class RunComparison:
    run: RunSummary
    curves: dict[str, list[Point]]
    best: dict[str, Best]
    config_hash: str | None
    config_source: str | None  # "config_store" | "run_folder" | "params" | None (not found)
    artifacts: list[Artifact]
    config: dict[str, Any] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Comparison:
    runs: list[RunComparison]
    baseline: str  # the run every other run's configuration is compared with (the first)
    config_diffs: dict[str, list[Difference]]  # run id -> differing leaves (a: baseline, b: that run)


def metric_goal(key: str) -> str | None:
    """Which way a metric improves: CPM and sensitivities up; losses down -- ``train/loss`` and the loss
    terms ``LungCADModule`` logs as ``train/<term>`` / ``val/<term>`` (``val/heatmap``, ``val/total``);
    bookkeeping metrics (``epoch``, ``lr``, ``train/hard_negatives``) neither."""
    k = key.lower()
    if "cpm" in k or "sens" in k:
        return "max"
    if "loss" in k:
        return "min"
    if k.startswith(("train/", "val/")) and not k.endswith(("hard_negatives", "lr")):
        return "min"
    return None


def _best(curve: list[Point], goal: str) -> Best:
    pick = max if goal == "max" else min
    top = pick(curve, key=lambda p: p.value)
    return Best(top.value, top.step, goal)


def _artifacts(c: MlflowClient, run_id: str, folder: Path | None) -> list[Artifact]:
    out: list[Artifact] = []
    pending: list[str | None] = [None]
    while pending and len(out) < MAX_ARTIFACTS:
        for item in c.list_artifacts(run_id, pending.pop()):
            if item.is_dir:
                pending.append(item.path)
            else:
                out.append(Artifact(item.path, item.file_size, "mlflow"))
    if folder is not None:  # checkpoints and logs of the run folder (Lightning logs none to MLflow)
        for path in sorted(folder.rglob("*")):
            if path.is_file() and len(out) < MAX_ARTIFACTS:
                out.append(Artifact(path.relative_to(folder).as_posix(), path.stat().st_size, "run_folder"))
    return out


@_tracking_errors
def compare_runs(ctx: ServiceContext, run_ids: list[str]) -> Comparison:
    """Metric curves, best values, artefacts and configuration differences of 2 to ``MAX_COMPARE`` runs.

    Raises:
        ApiError: 422 for fewer than two or more than ``MAX_COMPARE`` distinct ids, 404 for an unknown run.
    """
    from mlflow.exceptions import MlflowException

    ids = list(dict.fromkeys(i.strip() for i in run_ids if i.strip()))
    if not 2 <= len(ids) <= MAX_COMPARE:
        raise ApiError(
            422,
            "invalid_request",
            f"compare needs 2 to {MAX_COMPARE} distinct run ids, got {len(ids)}",
            fix="pass runs=<id>,<id> (ids from GET /api/v1/experiments/runs)",
        )
    c = client(ctx.settings)
    out: list[RunComparison] = []
    for run_id in ids:
        try:
            run = _summary(c.get_run(run_id))
        except MlflowException:
            raise ApiError(
                404,
                "not_found",
                f"no MLflow run {run_id!r}",
                fix="list them with GET /api/v1/experiments/runs",
            ) from None
        curves = {
            key: sorted(
                (
                    Point(m.step, float(m.value), _time(m.timestamp))
                    for m in c.get_metric_history(run_id, key)
                ),
                key=lambda p: (p.step, p.timestamp or datetime.min.replace(tzinfo=UTC)),
            )
            for key in sorted(run.metrics)
        }
        best = {k: _best(v, g) for k, v in curves.items() if v and (g := metric_goal(k))}
        folder = run_folder(runs_root(ctx.settings), run.name, run.id)
        config, digest, source = resolve_config(ctx, run.tags, run.params, folder)
        artifacts = _artifacts(c, run_id, folder)
        out.append(RunComparison(run, curves, best, digest, source, artifacts, config))
    base = out[0]
    diffs = {
        r.run.id: diff_trees(base.config or {}, r.config or {})
        for r in out[1:]
        if base.config is not None and r.config is not None
    }
    return Comparison(out, base.run.id, diffs)
