"""``lungcad evaluate``: detection over a cohort, FROC / CPM and per-nodule metrics, JSON + PNG report."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from lungcad.cli.common import console, get_config, print_json
from lungcad.errors import InputError


def evaluate(
    data: Path = typer.Option(..., "--data", help="cohort folder (lungcad synth, LUNA16 or LIDC layout)"),
    model: Path | None = typer.Option(None, "--model", help="model file (default models/lungcad-default.pt)"),
    out: Path = typer.Option(Path("eval_out"), "--out", help="report folder"),
    threshold: float = typer.Option(0.5, "--threshold", help="operating point on the detection probability"),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="FROC bootstrap samples over scans (0: none)"),
    no_bf16: bool = typer.Option(False, "--no-bf16", help="run the network in fp32"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """FROC + CPM (LUNA16 rules, bootstrap CI), sensitivity by size and type, Dice, localisation and size
    error, triage AUC / calibration, Lung-RADS confusion; writes summary.json and PNGs to --out."""
    from lungcad.data.cohort import read_cohort
    from lungcad.evaluate.froc import ScanDetections, froc_of_detections
    from lungcad.evaluate.metrics import detected_pairs, match_findings
    from lungcad.evaluate.runner import run_detector
    from lungcad.evaluate.summary import summarise
    from lungcad.evaluate.summary_report import write_report
    from lungcad.infer.detector import Detector

    detector = Detector.load(model, bf16=not no_bf16, config=get_config())
    records = read_cohort(data, evaluation=True)
    evals = run_detector(detector, records, show_progress=not as_json, with_masks=True)
    e = get_config().evaluate
    froc = froc_of_detections(
        [
            ScanDetections(ev.record.scan_id, ev.record.nodules, ev.record.excluded, ev.result.findings)
            for ev in evals
        ],
        max_candidates_per_scan=e.max_candidates_per_scan,
        bootstrap_samples=bootstrap,
    )
    if froc is None:
        raise InputError(
            "no nodule in the evaluated scans: FROC and CPM are undefined",
            path=data,
            fix="evaluate on a cohort whose annotations hold nodules",
        )
    matches = [
        match_findings(ev.record.nodules, ev.result.findings, ev.record.excluded, scan_id=ev.record.scan_id)
        for ev in evals
    ]
    segmentations = []
    for pair in detected_pairs(matches, threshold):
        f = pair.finding
        truth = evals[pair.scan_index].gt_masks[pair.gt_index] if evals[pair.scan_index].gt_masks else None
        offset = f.extra.get("mask_offset_zyx")
        if truth is not None and f.mask is not None and offset is not None:
            segmentations.append(((tuple(offset), f.mask), truth))
    summary = summarise(matches, threshold=threshold, froc=froc, segmentations=segmentations)
    files = write_report(summary, out)
    doc = summary.to_dict()
    doc["model"] = {
        "id": detector.bundle.model_id,
        "version": detector.bundle.model_version,
        "config_hash": detector.bundle.config_hash,
    }
    doc["cohort"] = str(data)
    doc["n_scans"] = len(evals)
    doc["mean_seconds_per_scan"] = round(
        sum(ev.result.timings_s.get("total", 0.0) for ev in evals) / max(1, len(evals)), 2
    )
    if as_json:
        print_json(doc | {"outputs": {k: str(v) for k, v in files.items()}})
        return
    table = Table(title=f"FROC on {len(evals)} scans ({froc.counts.n_nodules} nodules)")
    for col in ("FPs/scan", *[f"{r:g}" for r in froc.fp_rates], "CPM"):
        table.add_column(col)
    table.add_row("sensitivity", *[f"{s:.3f}" for s in froc.sensitivities], f"{froc.cpm:.3f}")
    b = froc.bootstrap
    if b is not None:
        table.add_row(
            f"{b.confidence:.0%} CI",
            *[f"{lo:.2f}-{hi:.2f}" for lo, hi in zip(b.sensitivities_low, b.sensitivities_high, strict=True)],
            f"{b.cpm_low:.3f}-{b.cpm_high:.3f}",
        )
    console.print(table)
    console.print(f"report: {out} ({', '.join(sorted(p.name for p in files.values()))})")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(evaluate)
