"""``lungcad detect`` (the main job) and ``lungcad export-model``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from lungcad.cli.common import console, err_console, get_config, print_json
from lungcad.cli.report import STUDY_KIND_HELP, study_kind_option
from lungcad.errors import InputError
from lungcad.fileio import check_output_dir
from lungcad.log import timed_stage
from lungcad.types import CheckStatus, Finding, ScanResult, ScanStatus


def _brock_cell(f: Finding) -> str:
    """The Brock risk in percent ("n/a" when calcified, "-" when not computed)."""
    r = f.malignancy_risk
    if r is None:
        return "-"
    return "n/a" if r.probability is None else f"{100 * r.probability:.1f}%"


def _findings_table(result: ScanResult, min_probability: float) -> Table:
    shown = [f for f in result.findings if f.probability >= min_probability]
    table = Table(
        title=f"{len(shown)} nodule(s) with p >= {min_probability:g} ({len(result.findings)} candidates in "
        f"result.json) - scan priority Lung-RADS {result.priority or '-'}"
    )
    cols = (
        "#",
        "x, y, z (mm)",
        "diameter",
        "volume",
        "type",
        "Lung-RADS",
        "p(nodule)",
        "p(actionable)",
        "Brock",
    )
    for col in cols:
        table.add_column(col)
    for k, f in enumerate(shown, start=1):
        table.add_row(
            str(k),
            ", ".join(f"{v:.1f}" for v in f.center_xyz_mm),
            f"{f.diameter_mm:.1f} mm",
            f"{f.volume_mm3 or 0:.0f} mm3",
            f.texture.value if f.texture else "-",
            f.lung_rads.value if f.lung_rads else "-",
            f"{f.probability:.2f}",
            f"{f.triage_probability or 0:.2f}",
            _brock_cell(f),
        )
    return table


def detect(
    paths: list[Path] = typer.Argument(..., help="DICOM folder(s), .mhd or .nii.gz file(s)"),
    out: Path | None = typer.Option(None, "--out", help="output folder (one sub-folder per scan if several)"),
    model: Path | None = typer.Option(
        None, "--model", help="model file (default: $LUNGCAD_MODEL, infer.model_file, or the shipped model)"
    ),
    series: str | None = typer.Option(None, "--series", help="SeriesInstanceUID when a folder holds several"),
    no_bf16: bool = typer.Option(False, "--no-bf16", help="run the network in fp32"),
    backend: str = typer.Option("torch", "--backend", help="torch, or onnx (ONNX Runtime, fp32)"),
    min_probability: float | None = typer.Option(
        None,
        "--min-probability",
        min=0.0,
        max=1.0,
        help="show findings from this probability, 0 to 1 (default infer.report_threshold)",
    ),
    as_json: bool = typer.Option(
        False, "--json", help="print the result JSON (docs/schema) instead of tables; written files on stderr"
    ),
    report: bool = typer.Option(
        False, "--report", help="also write the clinician report (HTML, PDF), figures and DICOM SEG/SR/PDF"
    ),
    explain: bool = typer.Option(
        False, "--explain", help="add Grad-CAM maps to the report (implies --report)"
    ),
    study_kind: str | None = typer.Option(
        None, "--study-kind", callback=study_kind_option, help=STUDY_KIND_HELP + " (default screening)"
    ),
    family_history: str | None = typer.Option(
        None, "--family-history", help="Brock risk: a first-degree relative with lung cancer, yes|no"
    ),
    age: float | None = typer.Option(
        None, "--age", help="Brock risk: age in years (overrides the DICOM header)"
    ),
    sex: str | None = typer.Option(None, "--sex", help="Brock risk: M|F (overrides the DICOM header)"),
    emphysema: str | None = typer.Option(
        None, "--emphysema", help="Brock risk: emphysema on a visual read, yes|no (overrides %LAA-950)"
    ),
    spiculation: str | None = typer.Option(
        None, "--spiculation", help="Brock risk: the nodules' margins are spiculated, yes|no (all findings)"
    ),
) -> None:
    """Detect lung nodules: findings table, result.json, LUNA16 CSV rows and key images per nodule.

    Each finding gets its Brock (PanCan) malignancy risk; what the scan cannot tell (family history,
    spiculation) is assumed absent unless given, and listed as assumed in result.json and the report.
    """
    from lungcad.infer.batch import prefetch
    from lungcad.infer.detector import Detector
    from lungcad.infer.risk import RiskOptions, parse_sex, parse_yes_no
    from lungcad.report.analyse import analyse_scan

    risk = RiskOptions(
        family_history=parse_yes_no(family_history, "--family-history"),
        age_years=age,
        sex=parse_sex(sex),
        emphysema=parse_yes_no(emphysema, "--emphysema"),
        spiculation=parse_yes_no(spiculation, "--spiculation"),
    )

    if (report or explain) and out is None:
        raise InputError(
            "--report / --explain write files, but no --out folder was given", fix="add --out DIR"
        )
    if out is not None:
        out = check_output_dir(out)  # before loading the model: a bad --out fails at once
    cfg = get_config()
    with timed_stage("model_load", "lungcad.cli", backend=backend):
        detector = Detector.load(model, bf16=not no_bf16, config=cfg, backend=backend)
    shown = cfg.infer.report_threshold if min_probability is None else min_probability
    results = []
    with Progress(disable=as_json or len(paths) == 1, console=console) as progress:
        task = progress.add_task("detecting", total=len(paths))
        # several scans: the next is read while this one is analysed (lungcad.infer.batch), a read error
        # raised here, in order, as without the read-ahead; one scan: read by the detector (its load time)
        read = (lambda p: detector.load_volume(p, series)) if len(paths) > 1 else (lambda p: p)
        for item in prefetch(paths, read):
            path = item.item
            done = analyse_scan(
                detector,
                item.get(),
                out,
                series_uid=series,
                report=report,
                explain=explain,
                study_kind=study_kind or "screening",
                min_probability=shown,
                series_subfolder=len(paths) > 1,
                risk=risk,
            )
            results.append((path, done.result, done.files))
            progress.advance(task)
    if as_json:
        # stdout is exactly the result document(s) of docs/schema/scan_result-<version>.json (one object,
        # or an array of them for several scans); the files written go to stderr
        for _, _, files in results:
            for key, value in files.items():
                err_console.print(f"wrote {key}: {escape(value)}", highlight=False, soft_wrap=True)
        docs = [r.to_dict() for _, r, _ in results]
        print_json(docs[0] if len(docs) == 1 else docs)
        return
    for path, result, files in results:
        console.print(f"[bold]{escape(str(path))}[/] series {result.series_uid}")
        if result.status is ScanStatus.QA_FAILED:
            console.print(f"[red]QA failed:[/] {escape(result.reason or '')} - no detection was run")
        else:
            if result.status is ScanStatus.QA_WARNING:
                failed = [c.name for c in result.qa.checks if c.status is CheckStatus.FAIL]
                console.print(f"[yellow]QA failed checks: {', '.join(failed)} - read findings with care[/]")
            console.print(_findings_table(result, shown))
        t = result.timings_s
        console.print(" ".join(f"{k}={v:.2f}s" for k, v in t.items()))
        for key, value in files.items():
            console.print(f"wrote {key}: {escape(value)}")


def export_model(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Lightning checkpoint (best.ckpt / last.ckpt)"),
    out: Path = typer.Option(..., "--out", help="model file to write (.pt)"),
    model_id: str | None = typer.Option(
        None, "--model-id", help="model id (default: the name of the checkpoint's run folder)"
    ),
    model_version: str | None = typer.Option(
        None, "--model-version", help="model version (default 0.0.0+stepN, N the checkpoint's step)"
    ),
    calibrate_on: Path | None = typer.Option(
        None,
        "--calibrate-on",
        help="cohort folder, or a run folder (its validation split), to fit calibration on",
    ),
    card: Path | None = typer.Option(None, "--card", help="JSON file of model-card facts to embed"),
    as_json: bool = typer.Option(False, "--json", help="print what was written as JSON"),
) -> None:
    """Turn a training checkpoint into a model file (weights, config, calibration, model card).

    Without --model-id / --model-version the model is named after its run and step (run "ft", step 1200:
    "ft" 0.0.0+step1200), never after the shipped model. Calibrating on scans of the run's training split
    is warned about (stderr, and in the card's calibration entry).
    """
    import json

    from lungcad.train.export import export_checkpoint

    result = export_checkpoint(
        checkpoint,
        out,
        model_id=model_id,
        model_version=model_version,
        calibrate_on=calibrate_on,
        card=json.loads(card.read_text()) if card is not None else None,
    )
    bundle, path, report, warnings = result.bundle, result.path, result.calibration, result.warnings
    for warning in warnings:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    if as_json:
        print_json(
            {
                "path": str(path),
                "model_id": bundle.model_id,
                "model_version": bundle.model_version,
                "size_bytes": path.stat().st_size,
                "calibration": report,
                "warnings": warnings,
            }
        )
        return
    if report is not None:
        console.print(f"calibration: {report}", highlight=False)
    console.print(
        f"wrote {escape(str(path))}: {bundle.model_id} {bundle.model_version} "
        f"({path.stat().st_size / 1e6:.1f} MB)",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(detect)
    app.command("export-model")(export_model)
