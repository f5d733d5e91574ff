"""``generate_followup_cohort``: ``cfg.n_scans`` follow-up patients written as two cohorts plus
``followup.json`` (layout and fields: ``lungcad.synth.followup_manifest``).

Each patient is generated and written by a worker process (both scans), and only its small manifest
entries come back.  ``followup.json`` is written last, atomically; each timepoint folder carries the
unfinished-run marker of ``lungcad synth`` until its ``manifest.json`` is written, so an interrupted run is
never read as a cohort.  An interrupted run is not resumed: rerun it with ``--overwrite``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lungcad.config import SynthConfig
from lungcad.errors import InputError
from lungcad.fileio import atomic_write_json
from lungcad.log import get_logger, log_stage
from lungcad.synth.cohort import (
    FORMATS,
    MANIFEST,
    PARTIAL,
    Format,
    _generate,
    _progress,
    _write_cohort_files,
    sha256_file,
    write_scan,
)
from lungcad.synth.followup import FollowupPair, generate_followup_pair, nominal_volume
from lungcad.synth.followup_manifest import (
    FOLLOWUP_MANIFEST,
    TIMEPOINTS,
    FollowupManifest,
    FollowupNodule,
    FollowupPatient,
    NoduleTimepoint,
    PoseChange,
    TimepointScan,
)
from lungcad.synth.scan import GENERATOR_VERSION, SynthScan


def _timepoint_scan(which: str, entry: dict[str, Any], date: str) -> TimepointScan:
    def rel(key: str) -> str | None:
        return f"{which}/{entry[key]}" if key in entry else None

    return TimepointScan(
        cohort=which,  # type: ignore[arg-type]
        scan_id=entry["scan_id"],
        series_uid=entry["series_uid"],
        study_uid=entry["study_uid"],
        study_date=date,
        dicom_dir=rel("dicom_dir"),
        mhd=rel("mhd"),
        mask=rel("mask") or "",
        xml=rel("xml") or "",
    )


def _on_scan(scan: SynthScan, label: int, spec) -> NoduleTimepoint:
    nod = next(n for n in scan.nodules if n.label == label)
    return NoduleTimepoint(
        center_xyz_mm=nod.center_xyz_mm,
        center_zyx_vox=nod.center_zyx_vox,
        diameter_mm=nod.diameter_mm,
        volume_mm3=nominal_volume(spec),
        mask_volume_mm3=nod.volume_mm3,
        in_annotations=nod.accepted,
        readers_contoured=nod.readers_contoured,
    )


def patient_record(pair: FollowupPair, prior_entry: dict[str, Any], current_entry: dict[str, Any]):
    """The ``FollowupPatient`` of a generated pair whose scans were written as ``*_entry``."""
    nodules = []
    for fate in pair.fates:
        spec = fate.prior if fate.prior is not None else fate.current
        nodules.append(
            FollowupNodule(
                nodule_id=f"{pair.patient_id}-N{fate.label:02d}",
                label=fate.label,
                status=fate.status,
                vdt_days=fate.vdt_days,
                texture=spec.texture.value,  # type: ignore[union-attr]
                shape=spec.shape.value,  # type: ignore[union-attr]
                location=spec.location.value,  # type: ignore[union-attr]
                micronodule=spec.micronodule,  # type: ignore[union-attr]
                prior=_on_scan(pair.prior, fate.label, fate.prior) if fate.prior is not None else None,
                current=_on_scan(pair.current, fate.label, fate.current)
                if fate.current is not None
                else None,
            )
        )
    p = pair.pose
    return FollowupPatient(
        patient_id=pair.patient_id,
        index=pair.index,
        prior=_timepoint_scan("prior", prior_entry, pair.prior_date),
        current=_timepoint_scan("current", current_entry, pair.current_date),
        interval_days=pair.interval_days,
        prior_to_current=tuple(tuple(float(v) for v in row) for row in pair.prior_to_current),  # type: ignore[arg-type]
        pose_change=PoseChange(
            roll_deg=p.roll_deg, tilt_deg=p.tilt_deg, shift_mm=p.shift_mm, inspiration_scale_xyz=p.scale_xyz
        ),
        nodules=tuple(nodules),
    )


def _worker(cfg_json: str, index: int, out_dir: str, fmt: Format) -> dict[str, Any]:
    start = time.perf_counter()
    cfg = SynthConfig.model_validate_json(cfg_json)
    out = Path(out_dir)
    pair = generate_followup_pair(cfg, index)
    prior = write_scan(pair.prior, out / "prior", fmt, study_date=pair.prior_date)
    current = write_scan(pair.current, out / "current", fmt, study_date=pair.current_date)
    record = patient_record(pair, prior, current)
    return {
        "prior": prior,
        "current": current,
        "patient": record.model_dump(mode="json"),
        "_seconds": time.perf_counter() - start,
    }


def generate_followup_cohort(
    cfg: SynthConfig,
    out_dir: str | Path,
    fmt: Format | None = None,
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> FollowupManifest:
    """Generate ``cfg.n_scans`` follow-up patients (a prior and a current scan each) into ``out_dir``.

    Args:
        cfg: synthesis settings; ``cfg.followup`` says how the scans of a patient differ.
        out_dir: output folder (created): ``prior/``, ``current/`` and ``followup.json``.
        fmt: ``dicom``, ``mhd`` or ``both`` (default ``cfg.output_format``).
        overwrite: allow writing into a folder that already holds a follow-up cohort.
        progress: show a progress bar on stderr.

    Returns:
        The manifest (also written to ``out_dir/followup.json``, last).

    Raises:
        InputError: unknown format, or ``out_dir`` already holds a cohort and ``overwrite`` is false.
    """
    fmt = fmt or cfg.output_format
    if fmt not in FORMATS:
        raise InputError(f"format must be one of {FORMATS}, got {fmt!r}", fix="use dicom, mhd or both")
    out = Path(out_dir)
    if (out / MANIFEST).exists():  # --overwrite would leave its scans and manifest beside prior/ and current/
        raise InputError(
            "output folder holds a single-timepoint cohort (manifest.json), not a follow-up cohort",
            path=out,
            fix="choose another folder for the follow-up cohort",
        )
    held = [p for p in (out / FOLLOWUP_MANIFEST,) if p.exists()]
    held += [out / t / MANIFEST for t in TIMEPOINTS if (out / t / MANIFEST).exists()]
    if held and not overwrite:
        raise InputError(
            f"output folder already holds a cohort ({held[0].relative_to(out)})",
            path=out,
            fix="choose an empty folder or pass --overwrite",
        )
    settings = {"format": fmt, "generator_version": GENERATOR_VERSION, "followup": True}
    for t in TIMEPOINTS:
        (out / t).mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / t / PARTIAL, settings)  # the folder reads as unfinished from here on
    (out / FOLLOWUP_MANIFEST).unlink(missing_ok=True)
    for t in TIMEPOINTS:
        (out / t / MANIFEST).unlink(missing_ok=True)
    log = get_logger("lungcad.synth")
    log.info("synth.followup.start", patients=cfg.n_scans, format=fmt, workers=cfg.workers)
    start = time.perf_counter()
    results: list[dict[str, Any]] = []
    with _generate(cfg, out, fmt, list(range(cfg.n_scans)), _worker) as stream, _progress(progress) as bar:
        task = bar.add_task("synthesising follow-up pairs", total=cfg.n_scans)
        for result in stream:
            log_stage(
                "synth_followup_pair", result.pop("_seconds"), "lungcad.synth", index=result["prior"]["index"]
            )
            results.append(result)
            bar.advance(task)
    results.sort(key=lambda r: r["prior"]["index"])
    for t in TIMEPOINTS:
        _write_cohort_files(cfg, out / t, fmt, [r[t] for r in results])
        (out / t / PARTIAL).unlink(missing_ok=True)
    manifest = FollowupManifest(
        generator_version=GENERATOR_VERSION,
        format=fmt,  # type: ignore[arg-type]
        config=cfg.model_dump(mode="json", exclude={"n_scans", "workers", "output_format"}),
        n_patients=len(results),
        files={f"{t}/{MANIFEST}": sha256_file(out / t / MANIFEST) for t in TIMEPOINTS},
        patients=tuple(FollowupPatient.model_validate(r["patient"]) for r in results),
    )
    atomic_write_json(out / FOLLOWUP_MANIFEST, manifest.model_dump(mode="json"), indent=1, sort_keys=True)
    log_stage("synth_followup", time.perf_counter() - start, "lungcad.synth", patients=len(results))
    return manifest


def followup_summary(manifest: FollowupManifest, out: Path, seconds: float) -> dict[str, Any]:
    """What ``lungcad synth --follow-up`` prints: counts per status, intervals, time."""
    statuses: dict[str, int] = {}
    for patient in manifest.patients:
        for nod in patient.nodules:
            statuses[nod.status.value] = statuses.get(nod.status.value, 0) + 1
    days = [p.interval_days for p in manifest.patients]
    return {
        "out": str(out),
        "patients": manifest.n_patients,
        "scans": 2 * manifest.n_patients,
        "format": manifest.format,
        "nodules": sum(statuses.values()),
        "status": dict(sorted(statuses.items())),
        "interval days (min-max)": f"{min(days)}-{max(days)}" if days else "-",
        "ground truth": str(out / FOLLOWUP_MANIFEST),
        "seconds": round(seconds, 1),
    }
