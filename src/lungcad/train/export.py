"""A training checkpoint -> a model file (weights, configuration, calibration, model card).

:func:`export_checkpoint` is what ``lungcad export-model`` runs and what the service's model registry runs
(``POST /training-jobs/{id}/export``): one implementation of the naming defaults, the calibration and the
"calibrating on training data" warning.  :func:`run_card` gathers the model-card facts a run folder knows
(data, steps, epochs, wall time, best validation CPM).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lungcad.model.bundle import DEFAULT_MODEL_NAME, ModelBundle, bundle_from_checkpoint, save_bundle
from lungcad.train.run_folder import checkpoint_step, read_run_info, run_of_checkpoint, training_scan_ids
from lungcad.train.state import STATUS_FILE, TrainingState


@dataclass
class ExportResult:
    """What :func:`export_checkpoint` wrote: the file, its bundle, the calibration report (``None``: not
    calibrated) and warnings for the user."""

    path: Path
    bundle: ModelBundle
    calibration: dict[str, Any] | None
    warnings: list[str] = field(default_factory=list)


def default_model_id(checkpoint: Path) -> str:
    """The run folder's name (else the checkpoint's stem), never the shipped model's name."""
    run = run_of_checkpoint(checkpoint)
    model_id = run.name if run is not None else checkpoint.stem
    if model_id == Path(DEFAULT_MODEL_NAME).stem:  # a run folder named like the shipped model
        model_id += "-run"
    return model_id


def export_checkpoint(
    checkpoint: Path,
    out: Path,
    *,
    model_id: str | None = None,
    model_version: str | None = None,
    calibrate_on: Path | None = None,
    card: dict[str, Any] | None = None,
) -> ExportResult:
    """Write the model file ``out`` from a Lightning ``checkpoint`` of a lungcad run.

    Args:
        model_id: default :func:`default_model_id`; model_version: default ``0.0.0+stepN`` (N the step).
        calibrate_on: a cohort folder, or a run folder (its validation split), to fit the detection and
            triage calibrators on (runs the detector over those scans: seconds per scan); ``None``: none.
        card: model-card facts to embed (the calibration report is added under ``calibration``).

    Raises:
        InputError: the checkpoint is missing or not a lungcad training checkpoint; a bad cohort.
    """
    bundle = bundle_from_checkpoint(checkpoint, model_id or "", model_version or "")
    run = run_of_checkpoint(checkpoint)
    bundle.model_id = model_id or default_model_id(checkpoint)
    bundle.model_version = model_version or f"0.0.0+step{checkpoint_step(checkpoint)}"
    if card is not None:
        bundle.card = dict(card)
    warnings: list[str] = []
    report = None
    if calibrate_on is not None:
        from lungcad.evaluate.calibrate import calibrate_bundle, calibration_records

        if run is not None:
            ids = {r.scan_id for r in calibration_records(calibrate_on)}
            seen = ids & training_scan_ids(run)
            if seen:
                warnings.append(
                    f"calibrating on training data: {len(seen)} of {len(ids)} scans of {calibrate_on} are "
                    f"in the training split of run {run}, so the calibrated probabilities come out "
                    f"over-confident; pass --calibrate-on {run} (its validation split) or a held-out cohort"
                )
        report = calibrate_bundle(bundle, calibrate_on)
        if warnings:
            report["warning"] = warnings[-1]
        bundle.card["calibration"] = report
    path = save_bundle(bundle, out)
    return ExportResult(path, bundle, report, warnings)


def run_card(run: Path) -> dict[str, Any]:
    """Model-card facts of a run folder: cohort folders, initial weights, config hash, steps, epochs, wall
    time (seconds) and best validation CPM (``None`` while not measured).  Empty keys are left out."""
    info = read_run_info(run)
    card: dict[str, Any] = {}
    data = info.get("data_dirs") or ([info["data_dir"]] if info.get("data_dir") else [])
    if data:
        card["training_data"] = ", ".join(str(d) for d in data) + " (patient split in splits.json)"
    if info.get("init_from"):
        card["initialised_from"] = info["init_from"]
    if (run / STATUS_FILE).is_file():
        state = TrainingState.read(run)
        card |= {
            "config_hash": state.config_hash,
            "training_steps": state.step,
            "training_epochs": state.epoch,
            "training_wall_time_s": round(state.updated_at - state.started_at),
            "validation_cpm_best": state.best_cpm,
        }
    return card
