"""Measure ``lungcad compare`` on a synthetic follow-up cohort (``lungcad synth --follow-up``).

    python scripts/compare_eval.py COHORT [--inputs detect|truth] [--cache DIR] [--json OUT.json]

``--inputs truth`` compares the ground-truth nodules of each scan (registration + matching alone: the
images are registered, the findings are the manifest's exact centres and nominal sizes); ``detect`` (the
default) runs the detector on both scans, as ``lungcad compare`` does, and scores the end-to-end result.
Detections are cached per series in ``--cache`` (result.json files), so a re-run only re-compares.

Printed (and written to ``--json``):

* matching accuracy: of the nodules on both scans (stable / growing / shrinking) whose two findings are
  in the comparison (truth: all; detect: both detected, each within max(radius, 3 mm) of the truth), the
  share paired with each other;
* new / resolved: of the new nodules found on the current scan, the share called ``new``; of the
  resolved ones found on the prior scan, the share called ``resolved``; matched nodules wrongly called
  new or resolved;
* interval change: confusion of stable / growing / shrinking against the truth's nominal diameters under
  the same rule (> 1.5 mm), for matched pairs;
* doubling time: median relative error |VDT - VDT_true| / VDT_true over correctly matched growing
  nodules, its bootstrap 95 % interval, and the share of true VDTs inside the reported 95 % interval;
* registration: residual (target registration error) at the nodule centres, from the exact
  ``prior_to_current``; lung Dice and surface distance;
* the measured volume repeatability: SD of ln(V2/V1)_measured - ln(V2/V1)_true over correctly matched
  pairs, divided by sqrt(2) (what ``lungcad.longitudinal.growth.VOLUME_ERROR`` is set from); the same as
  a root mean square (bias included); both per diameter band (< 8 mm, >= 8 mm: small nodules' volumes
  vary more, partial volume), and the per-pair errors with their true and measured diameters
  (``volume_log_errors``: [error, prior, current, measured prior, measured current]).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from lungcad.annotations.lungrads import interval_change
from lungcad.infer.detector import Detector
from lungcad.infer.outputs import write_result_json
from lungcad.longitudinal.compare import CompareSettings, compare_sides
from lungcad.longitudinal.sides import Side, load_side, read_result_json
from lungcad.synth.followup_manifest import FollowupPatient, load_followup_manifest
from lungcad.types import Finding, ScanResult, Texture


def truth_result(patient: FollowupPatient, when: str) -> tuple[ScanResult, list[str]]:
    """The manifest's nodules on one scan as a ScanResult (and the nodule id of each finding)."""
    findings, ids = [], []
    for n in patient.nodules:
        tp = getattr(n, when)
        if tp is None or n.micronodule:
            continue
        findings.append(
            Finding(
                tuple(tp.center_xyz_mm), tp.diameter_mm, volume_mm3=tp.volume_mm3, texture=Texture(n.texture)
            )
        )
        ids.append(n.nodule_id)
    return ScanResult(getattr(patient, when).series_uid, findings), ids


def assign_truth(result: ScanResult, patient: FollowupPatient, when: str, min_p: float) -> list[str | None]:
    """Per finding, the nodule id it hits (within max(radius, 3 mm)), or None."""
    out: list[str | None] = []
    for f in result.findings:
        hit = None
        if f.probability >= min_p:
            best = math.inf
            for n in patient.nodules:
                tp = getattr(n, when)
                if tp is None:
                    continue
                d = float(np.linalg.norm(np.subtract(f.center_xyz_mm, tp.center_xyz_mm)))
                if d <= max(tp.diameter_mm / 2, 3.0) and d < best:
                    hit, best = n.nodule_id, d
        out.append(hit)
    return out


def detected_side(detector: Detector, path: Path, cache: Path | None) -> Side:
    if cache is not None:
        cached = cache / f"{path.parent.parent.parent.name}_{path.parent.name}_{path.name}.json"
        if cached.is_file():
            return load_side(path, result=read_result_json(cached), preprocess=detector.cfg.preprocess)
        side = load_side(path, detector=detector)
        cache.mkdir(parents=True, exist_ok=True)
        write_result_json(side.result, cached)
        return side
    return load_side(path, detector=detector)


def bootstrap_median(values: list[float], seed: int = 0, n: int = 2000) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    arr = np.asarray(values)
    meds = [float(np.median(rng.choice(arr, arr.size))) for _ in range(n)]
    return float(np.percentile(meds, 2.5)), float(np.percentile(meds, 97.5))


def evaluate_patient(
    patient: FollowupPatient,
    cohort: Path,
    detector: Detector | None,
    cache: Path | None,
    settings: CompareSettings,
) -> dict:
    """One patient's outcomes (what ``summarise`` adds up), JSON-ready."""
    t0 = time.perf_counter()
    sides, ids = {}, {}
    for when in ("prior", "current"):
        scan = cohort / getattr(patient, when).image()
        if detector is None:
            result, ids[when] = truth_result(patient, when)
            sides[when] = load_side(scan, result=result)
        else:
            sides[when] = detected_side(detector, scan, cache)
            ids[when] = assign_truth(sides[when].result, patient, when, settings.floor_probability)
    c = compare_sides(sides["current"], sides["prior"], settings)
    out: dict = {
        "patient": patient.patient_id,
        "both": [0, 0],
        "new": [0, 0],
        "resolved": [0, 0],
        "false_new": 0,
        "false_resolved": 0,
        "confusion": [],
        "vdt_err": [],
        "vdt_cover": [],
        "tre": [],
        "log_err": [],
        "log_err_mm": [],
        "dice": c.registration.lung_dice,
        "msd": c.registration.mean_surface_distance_mm,
        "counts": c.counts(),
    }
    pairs: dict[str, list] = {}  # nodule id -> the comparison entries holding it
    for entry in c.nodules:
        cid = ids["current"][entry.current_index] if entry.current_index is not None else None
        pid = ids["prior"][entry.prior_index] if entry.prior_index is not None else None
        for key in {cid, pid} - {None}:
            pairs.setdefault(key, []).append((entry, cid, pid))
    for n in patient.nodules:
        nid = n.nodule_id
        if n.micronodule:
            continue
        entries = pairs.get(nid, [])
        if n.prior is not None and n.current is not None:
            mapped = patient.map_prior_to_current(np.asarray(n.prior.center_xyz_mm))
            found = [e for e in entries if e[1] == nid and e[2] == nid]
            on_both = {e[1] for e in entries} >= {nid} and {e[2] for e in entries} >= {nid}
            if detector is None or on_both:
                out["both"][1] += 1
                out["both"][0] += bool(found)
            if found:
                e = found[0][0]
                out["tre"].append(
                    float(np.linalg.norm(np.subtract(e.prior_center_registered_xyz_mm, mapped)))
                )
                want = interval_change(round(n.current.diameter_mm, 1) - round(n.prior.diameter_mm, 1))
                out["confusion"].append([want.value, e.status.value])
                true_r = math.log(n.current.volume_mm3 / n.prior.volume_mm3)
                if e.doubling_time is not None:
                    out["log_err"].append(e.doubling_time.log_ratio - true_r)
                    # the pair's sizes (truth prior / current, then measured) for the error-by-size check
                    out["log_err_mm"].append(
                        [
                            n.prior.diameter_mm,
                            n.current.diameter_mm,
                            e.prior_diameter_mm,
                            e.current_diameter_mm,
                        ]
                    )
                if n.vdt_days is not None and n.vdt_days > 0 and e.doubling_time is not None:
                    d = e.doubling_time
                    est = d.days if d.days is not None else math.inf
                    out["vdt_err"].append(min(abs(est - n.vdt_days) / n.vdt_days, 1e9))
                    lo = d.low_days if d.low_days is not None else 0.0
                    hi = d.high_days if d.high_days is not None else math.inf
                    out["vdt_cover"].append(bool(lo <= n.vdt_days <= hi))
            else:
                out["false_new"] += any(e[0].status.value == "new" and e[1] == nid for e in entries)
                out["false_resolved"] += any(e[0].status.value == "resolved" and e[2] == nid for e in entries)
        elif n.current is not None and any(e[1] == nid for e in entries):
            out["new"][1] += 1
            out["new"][0] += any(e[1] == nid and e[0].status.value == "new" for e in entries)
        elif n.prior is not None and any(e[2] == nid for e in entries):
            out["resolved"][1] += 1
            out["resolved"][0] += any(e[2] == nid and e[0].status.value == "resolved" for e in entries)
    out["seconds"] = time.perf_counter() - t0
    return out


def sized_errors(records: list[dict]) -> list[tuple[float, list[float]]]:
    """(log-ratio error, [prior, current, measured prior, measured current] diameters mm) per matched pair."""
    # strict=False: records written before the sizes were kept have log_err but no log_err_mm
    return [pair for r in records for pair in zip(r["log_err"], r.get("log_err_mm", []), strict=False)]


SIZE_BANDS_MM = (8.0,)  # band edges on the pair's mean true diameter: < 8 mm, >= 8 mm


def repeatability_by_size(records: list[dict], edges: tuple[float, ...] = SIZE_BANDS_MM) -> list[dict]:
    """Volume repeatability per diameter band of the pair's mean true diameter (mm).

    Per band: ``n``, ``sd`` (SD of the log-ratio error / sqrt 2, as ``volume_repeatability_sd``), ``rms``
    (root mean square / sqrt 2: includes the band's bias, which the doubling-time interval must also cover)
    and ``bias`` (mean log-ratio error).  Records written before the sizes were kept are skipped.
    """
    pairs = [(err, (mm[0] + mm[1]) / 2) for err, mm in sized_errors(records)]
    bounds = [0.0, *edges, math.inf]
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        errs = np.asarray([e for e, d in pairs if lo <= d < hi])
        out.append(
            {
                "band_mm": [lo, hi if math.isfinite(hi) else None],
                "n": int(errs.size),
                "sd": float(np.std(errs, ddof=1) / math.sqrt(2)) if errs.size > 2 else None,
                "rms": float(np.sqrt(np.mean(errs**2)) / math.sqrt(2)) if errs.size else None,
                "bias": float(np.mean(errs)) if errs.size else None,
            }
        )
    return out


def summarise(records: list[dict], cohort: Path, inputs: str, seed: object, volume_error: float) -> dict:
    def total(key: str) -> list[int]:
        return [sum(r[key][0] for r in records), sum(r[key][1] for r in records)]

    def cat(key: str) -> list:
        return [v for r in records for v in r[key]]

    both, vdt_err, vdt_cover, tre, log_err = (
        total("both"),
        cat("vdt_err"),
        cat("vdt_cover"),
        cat("tre"),
        cat("log_err"),
    )
    confusion = Counter(f"{a}->{b}" for a, b in cat("confusion"))
    return {
        "cohort": str(cohort),
        "seed": seed,
        "inputs": inputs,
        "patients": len(records),
        "matching_accuracy": both[0] / both[1] if both[1] else None,
        "matching_counts": both,
        "new_called_new": total("new"),
        "resolved_called_resolved": total("resolved"),
        "matched_nodules_called_new": sum(r["false_new"] for r in records),
        "matched_nodules_called_resolved": sum(r["false_resolved"] for r in records),
        "interval_change_confusion": dict(sorted(confusion.items())),
        "vdt_n": len(vdt_err),
        "vdt_median_relative_error": float(np.median(vdt_err)) if vdt_err else None,
        "vdt_median_relative_error_ci95": bootstrap_median(vdt_err) if len(vdt_err) > 1 else None,
        "vdt_interval_coverage": float(np.mean(vdt_cover)) if vdt_cover else None,
        "tre_mm_mean": float(np.mean(tre)) if tre else None,
        "tre_mm_max": float(np.max(tre)) if tre else None,
        "lung_dice_mean": float(np.mean([r["dice"] for r in records])),
        "lung_dice_min": float(np.min([r["dice"] for r in records])),
        "surface_distance_mm_mean": float(np.mean([r["msd"] for r in records])),
        "volume_repeatability_sd": float(np.std(log_err, ddof=1) / math.sqrt(2))
        if len(log_err) > 2
        else None,
        "volume_log_ratio_bias": float(np.mean(log_err)) if log_err else None,
        "volume_repeatability_rms": float(np.sqrt(np.mean(np.square(log_err))) / math.sqrt(2))
        if log_err
        else None,
        "volume_repeatability_by_size": repeatability_by_size(records),
        "volume_log_errors": [[round(e, 4), *mm] for e, mm in sized_errors(records)],
        "seconds_per_pair_mean": float(np.mean([r["seconds"] for r in records])),
        "volume_error_used": volume_error,
    }


def evaluate(
    cohort: Path,
    inputs: str,
    cache: Path | None,
    model: Path | None,
    records_path: Path | None,
    limit: int | None = None,
    summarise_only: bool = False,
    skip: int = 0,
) -> dict:
    """Evaluate every patient (resuming from ``records_path``: one JSON line per patient done)."""
    manifest = load_followup_manifest(cohort)
    records = []
    if records_path is not None and records_path.is_file():
        records = [json.loads(line) for line in records_path.read_text().splitlines() if line.strip()]
    done = {r["patient"] for r in records}
    detector = Detector.load(model) if inputs == "detect" and not summarise_only else None
    threshold = detector.cfg.infer.report_threshold if detector else 0.5
    settings = CompareSettings(min_probability=threshold)
    patients = manifest.patients[skip:][:limit] if limit else manifest.patients[skip:]
    for patient in [] if summarise_only else patients:
        if patient.patient_id in done:
            continue
        record = evaluate_patient(patient, cohort, detector, cache, settings)
        records.append(record)
        if records_path is not None:
            with records_path.open("a") as fh:
                fh.write(json.dumps(record) + "\n")
        print(
            f"{patient.patient_id}: {record['counts']} dice {record['dice']:.3f} {record['seconds']:.1f} s",
            file=sys.stderr,
        )
    return summarise(records, cohort, inputs, manifest.config.get("seed"), settings.volume_error)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cohort", type=Path)
    parser.add_argument("--inputs", choices=("detect", "truth"), default="detect")
    parser.add_argument("--cache", type=Path, default=None, help="folder for cached detections")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    parser.add_argument(
        "--records", type=Path, default=None, help="per-patient outcomes (JSON lines; resumes)"
    )
    parser.add_argument("--limit", type=int, default=None, help="only the first N patients")
    parser.add_argument("--skip", type=int, default=0, help="start at patient N (to split a run in two)")
    parser.add_argument("--summarise", action="store_true", help="only add up --records, run nothing")
    args = parser.parse_args(argv)
    report = evaluate(
        args.cohort, args.inputs, args.cache, args.model, args.records, args.limit, args.summarise, args.skip
    )
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
