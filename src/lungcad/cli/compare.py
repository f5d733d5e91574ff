"""``lungcad compare CURRENT PRIOR``: a scan against its prior (matches, growth, doubling time, Lung-RADS)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from lungcad.cli.common import console, err_console, get_config, print_json
from lungcad.cli.report import STUDY_KIND_HELP, print_report_files, study_kind_option
from lungcad.errors import InputError
from lungcad.fileio import check_output_dir

SIDE_HELP = (
    "a DICOM folder, .mhd or .nii.gz (detected on), or a `lungcad detect --out` folder (its result.json)"
)


def _days(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _table(comparison) -> Table:  # type: ignore[no-untyped-def]
    c = comparison
    table = Table(
        title=f"{len(c.nodules)} nodule(s): "
        + ", ".join(f"{k} {v}" for k, v in c.counts().items() if v)
        + f" - interval {c.interval_days if c.interval_days is not None else '?'} days - "
        f"priority Lung-RADS {c.priority or '-'}"
    )
    for col in (
        "status",
        "#now",
        "#prior",
        "diameter (mm)",
        "change",
        "volume",
        "VDT days [95 %]",
        "dist",
        "Lung-RADS",
        "rule",
    ):
        table.add_column(col)
    for n in c.nodules:
        vdt = n.doubling_time
        table.add_row(
            n.status.value,
            "-" if n.current_index is None else str(n.current_index + 1),
            "-" if n.prior_index is None else str(n.prior_index + 1),
            f"{n.prior_diameter_mm or 0:.1f} -> {n.current_diameter_mm or 0:.1f}"
            if n.prior_diameter_mm and n.current_diameter_mm
            else f"{n.current_diameter_mm or n.prior_diameter_mm or 0:.1f}",
            "-" if n.diameter_change_mm is None else f"{n.diameter_change_mm:+.1f} mm",
            "-" if n.volume_change_pct is None else f"{n.volume_change_pct:+.0f} %",
            "-"
            if vdt is None or vdt.days is None
            else f"{_days(vdt.days)} [{_days(vdt.low_days)}, "
            f"{_days(vdt.high_days) if vdt.high_days is not None else 'inf'}]",
            "-" if n.registered_distance_mm is None else f"{n.registered_distance_mm:.1f}",
            n.lung_rads.value if n.lung_rads else "-",
            escape(n.lung_rads_rule),
        )
    return table


def compare(
    current: Path = typer.Argument(..., help="the CURRENT (newer) study: " + SIDE_HELP),
    prior: Path = typer.Argument(..., help="the PRIOR (older) study: " + SIDE_HELP),
    out: Path | None = typer.Option(
        None, "--out", help="folder for comparison.json (+ each side's result.json)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print comparison.json instead of the table"),
    current_scan: Path | None = typer.Option(
        None, "--current-scan", help="the scan of a CURRENT detect folder"
    ),
    prior_scan: Path | None = typer.Option(None, "--prior-scan", help="the scan of a PRIOR detect folder"),
    current_date: str | None = typer.Option(None, "--current-date", help="YYYY-MM-DD (default: StudyDate)"),
    prior_date: str | None = typer.Option(None, "--prior-date", help="YYYY-MM-DD (default: StudyDate)"),
    bspline: bool = typer.Option(False, "--bspline", help="add a B-spline stage after the affine one"),
    metric: str = typer.Option(
        "mattes_mi", "--metric", help="registration metric: mattes_mi or mean_squares"
    ),
    min_probability: float | None = typer.Option(
        None,
        "--min-probability",
        min=0.0,
        max=1.0,
        help="compare findings from this p (default report threshold)",
    ),
    allow_different_patients: bool = typer.Option(
        False, "--allow-different-patients", help="compare scans whose PatientIDs differ (phantoms, research)"
    ),
    model: Path | None = typer.Option(None, "--model", help="model file (default: the shipped model)"),
    no_bf16: bool = typer.Option(False, "--no-bf16", help="run the network in fp32"),
    report: bool = typer.Option(
        False, "--report", help="also the CURRENT scan's report with the comparison, into OUT/current/"
    ),
    study_kind: str | None = typer.Option(
        None, "--study-kind", callback=study_kind_option, help=STUDY_KIND_HELP + " (with --report)"
    ),
) -> None:
    """Compare a scan with its prior: register, match nodules, growth, doubling time, Lung-RADS with priors.

    Each side is a scan (the detector runs on it) or the --out folder of `lungcad detect` (its result.json
    is reused; the scan comes from its report_input.json or --current-scan / --prior-scan). Exit 2 on bad
    input: a missing path, the prior dated after the current study, different PatientIDs.
    --report renders the current scan's report (HTML + PDF, DICOM SEG / SR / PDF) with the comparison
    section into OUT/current/; a CURRENT detect folder is copied there, never written to.
    """
    from lungcad.infer.detector import Detector
    from lungcad.infer.outputs import write_result_json
    from lungcad.longitudinal.compare import CompareSettings, compare_scans, write_comparison
    from lungcad.longitudinal.registration import RegistrationSettings
    from lungcad.longitudinal.sides import resolve_input

    if report and out is None:
        raise InputError("--report writes files, but no --out folder was given", fix="add --out DIR")
    cur_scan, cur_result = resolve_input(current, current_scan)
    pri_scan, pri_result = resolve_input(prior, prior_scan)
    settings_reg = RegistrationSettings(bspline=bspline, metric=metric)  # type: ignore[arg-type]
    if out is not None:
        out = check_output_dir(out)
    cfg = get_config()
    detector = Detector.load(model, bf16=not no_bf16, config=cfg)
    threshold = cfg.infer.report_threshold if min_probability is None else min_probability
    settings = CompareSettings(
        registration=settings_reg,
        min_probability=threshold,
        allow_different_patients=allow_different_patients,
    )
    comparison, cur, pri = compare_scans(
        cur_scan,
        pri_scan,
        detector=detector,
        current_result=cur_result,
        prior_result=pri_result,
        settings=settings,
        current_date=current_date,
        prior_date=prior_date,
    )
    written = []
    files = None
    if out is not None:
        written.append(write_comparison(comparison, out))
        for name, side, given in (("current", cur, cur_result), ("prior", pri, pri_result)):
            if given is None and not (report and name == "current"):  # the report writes its own
                (out / name).mkdir(exist_ok=True)  # detected here: keep the findings the indices refer to
                written.append(write_result_json(side.result, out / name / "result.json"))
    if report and out is not None:
        from lungcad.report.comparison_report import report_comparison

        files = report_comparison(
            comparison,
            cur,
            cur_scan,
            out / "current",
            detector=detector,
            current_folder=current if cur_result is not None else None,
            min_probability=threshold,
            study_kind=study_kind,
        )
        if cur_result is None:
            written.append(out / "current" / "result.json")
    for w in comparison.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(w)}", highlight=False, soft_wrap=True)
    if as_json:
        for path in written:
            err_console.print(f"wrote {escape(str(path))}", highlight=False, soft_wrap=True)
        if files is not None:
            print_report_files(files.as_dict(), files.skipped, stderr=True)
        print_json(comparison.to_dict())
        return
    q = comparison.registration
    console.print(
        f"registration {q.method} ({q.metric}): lung Dice {q.lung_dice_before:.3f} -> {q.lung_dice:.3f}, "
        f"mean surface distance {q.mean_surface_distance_mm:.1f} mm, {q.seconds:.1f} s"
        + ("" if q.ok else " [red]POOR[/]")
    )
    console.print(_table(comparison))
    for path in written:
        console.print(f"wrote {escape(str(path))}")
    if files is not None:
        print_report_files(files.as_dict(), files.skipped)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(compare)
