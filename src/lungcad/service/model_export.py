"""The model registry's intake from training: a run's checkpoint -> a registered model file with lineage.

:func:`export_run` runs what ``lungcad export-model`` runs (``lungcad.train.export.export_checkpoint``:
weights, configuration, calibration, card) into a staging folder, registers the file
(``models_registry.register_model``, which validates it by loading it) and records its lineage -- the
training job and run (with its MLflow run id), the data (cohort ids and folders), the configuration hash
and the metrics (best and last validation CPM, steps, epochs).  :func:`export_job` does it for a training
job of the service (``POST /training-jobs/{id}/export``), :func:`export_run_folder` for any run folder
under ``D/runs`` (``POST /models/export``: runs trained with the CLI).

Calibration runs the detector over the run's validation split (seconds per scan), so an export takes as
long as that; the route runs it in the request (admin only, rare).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from lungcad.errors import InputError
from lungcad.service.db.models import Cohort, ModelFile, TrainingJob, TrainingJobState
from lungcad.service.errors import ApiError
from lungcad.service.experiments import runs_root
from lungcad.service.model_upload import safe_filename
from lungcad.service.models_registry import record_config, register_model

if TYPE_CHECKING:
    from lungcad.service.context import ServiceContext

BEST_CKPT = Path("checkpoints") / "best.ckpt"
LAST_CKPT = Path("last.ckpt")


class ExportError(InputError):
    """An export that cannot be made as asked; ``status_code`` / ``code`` go into the API's error body."""

    def __init__(self, message: str, *, status_code: int, code: str, fix: str) -> None:
        super().__init__(message, fix=fix)
        self.status_code = status_code
        self.code = code


def pick_checkpoint(run_dir: Path, which: str = "best") -> Path:
    """``checkpoints/best.ckpt`` (by validation CPM; ``last.ckpt`` while none was measured) or ``last.ckpt``.

    Raises:
        ExportError: 409, the run has no checkpoint yet.
    """
    order = [BEST_CKPT, LAST_CKPT] if which == "best" else [LAST_CKPT]
    for rel in order:
        if (run_dir / rel).is_file():
            return run_dir / rel
    raise ExportError(
        f"run {run_dir.name!r} has no {'checkpoint' if which == 'best' else 'last.ckpt'} yet",
        status_code=409,
        code="conflict",
        fix="export after the run's first epoch ends (or pause it: a pause writes last.ckpt)",
    )


def run_lineage(run_dir: Path, checkpoint: Path) -> dict[str, Any]:
    """What the run folder says about a model's origin (see the module docstring)."""
    from lungcad.train.run_folder import checkpoint_step, read_run_info
    from lungcad.train.state import STATUS_FILE, TrainingState

    info = read_run_info(run_dir)
    lineage: dict[str, Any] = {
        "run": run_dir.name,
        "checkpoint": checkpoint.relative_to(run_dir).as_posix(),
        "checkpoint_step": checkpoint_step(checkpoint),
        "data": [
            {"path": d} for d in info.get("data_dirs") or ([info["data_dir"]] if info.get("data_dir") else [])
        ],
        "init_from": info.get("init_from"),
    }
    if (run_dir / STATUS_FILE).is_file():
        state = TrainingState.read(run_dir)
        lineage["mlflow_run_id"] = state.mlflow_run_id
        lineage["config_hash"] = state.config_hash
        lineage["metrics"] = {
            "best_cpm": state.best_cpm,
            "last_cpm": state.last_cpm,
            "steps": state.step,
            "epochs": state.epoch,
        }
    return lineage


def export_run(
    ctx: ServiceContext,
    run_dir: Path,
    *,
    calibrate_on: Path | None,
    model_id: str | None,
    model_version: str | None,
    lineage: dict[str, Any],
    checkpoint: str = "best",
    activate: bool = False,
    by: str | None = None,
) -> ModelFile:
    """Export the run's checkpoint (``checkpoint``: best or last), register it, record its lineage.

    ``lineage`` adds to (and overrides) what the run folder says (:func:`run_lineage`).  The training
    configuration goes into the configuration store, so the lineage's ``config_hash`` resolves with
    ``GET /configs/{hash}``.

    Raises:
        ExportError: 409 no checkpoint; InputError (422): a checkpoint that is not lungcad's.
    """
    from lungcad.train.export import export_checkpoint, run_card

    ckpt = pick_checkpoint(run_dir, checkpoint)
    facts = run_lineage(run_dir, ckpt) | lineage
    staging = ctx.storage.staging_dir("model-export")
    try:
        result = export_checkpoint(
            ckpt,
            staging / "model.pt",
            model_id=model_id,
            model_version=model_version,
            calibrate_on=calibrate_on,
            card=run_card(run_dir),
        )
        facts["config_hash"] = record_config(ctx, result.bundle.config)
        facts["calibration"] = (result.calibration or {}).get("method")
        if result.warnings:
            facts["warnings"] = result.warnings
        # display only; reduced like an upload's name (a free-form id and version could pass 255 characters)
        filename = safe_filename(f"{result.bundle.model_id}-{result.bundle.model_version}")[:196] + ".pt"
        return register_model(
            ctx, result.path, filename=filename, activate=activate, move=True, lineage=facts, by=by
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _run_dir(ctx: ServiceContext, name: str) -> Path:
    folder = runs_root(ctx.settings) / name
    if "/" in name or name.startswith(".") or not folder.is_dir():
        raise ApiError(
            404, "not_found", f"no run folder {name!r}", fix="name a folder under the data folder's runs/"
        )
    return folder


def export_run_folder(ctx: ServiceContext, name: str, **options: Any) -> ModelFile:
    """:func:`export_run` of ``D/runs/<name>`` (calibrated on its validation split when ``calibrate``)."""
    run_dir = _run_dir(ctx, name)
    calibrate = options.pop("calibrate", True)
    return export_run(ctx, run_dir, calibrate_on=run_dir if calibrate else None, lineage={}, **options)


def export_job(ctx: ServiceContext, job_id: str, **options: Any) -> ModelFile:
    """:func:`export_run` of a training job's run folder, with the job and its cohorts in the lineage.

    Raises:
        ApiError: 404 unknown job; 409 a job whose process may be writing checkpoints (pause it first).
    """
    with ctx.sessions() as s:
        job = s.get(TrainingJob, job_id)
        if job is None:
            raise ApiError(
                404,
                "not_found",
                f"no training job {job_id!r}",
                fix="list them with GET /api/v1/training-jobs",
            )
        if job.state.live or job.state is TrainingJobState.QUEUED:
            raise ApiError(
                409,
                "conflict",
                f"training job {job_id} is {job.state.value}",
                fix="pause or stop it first (POST /api/v1/training-jobs/{id}/pause), or wait until it ends",
            )
        cohorts = {c.id: c for c in s.scalars(select(Cohort).where(Cohort.id.in_(list(job.data or []))))}
        data = [
            {
                "cohort_id": cid,
                "name": getattr(cohorts.get(cid), "name", None),
                "path": getattr(cohorts.get(cid), "path", None),
            }
            for cid in job.data or []
        ]
        lineage = {"training_job": job.id, "data": data, "init_from": job.init_from}
        run_name = job.run_dir
    run_dir = _run_dir(ctx, run_name)
    calibrate = options.pop("calibrate", True)
    return export_run(ctx, run_dir, calibrate_on=run_dir if calibrate else None, lineage=lineage, **options)
