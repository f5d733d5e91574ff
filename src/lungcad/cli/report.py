"""``lungcad report RESULT_DIR``: (re)render the clinician report, figures and DICOM objects of a result."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from lungcad.cli.common import console, err_console, print_json
from lungcad.report.shown import StudyKind

STUDY_KIND_HELP = "screening (Lung-RADS v2022 management) or incidental (Fleischner 2017 recommendations)"


def study_kind_option(value: str | None) -> StudyKind | None:
    """Parse ``--study-kind`` (typer callback): one of the ``StudyKind`` values, or a usage error."""
    if value is None:
        return None
    try:
        return StudyKind(value.lower())
    except ValueError:
        raise typer.BadParameter(f"must be one of {[k.value for k in StudyKind]}, got {value!r}") from None


def print_report_files(files: dict[str, str], skipped: list[str], *, stderr: bool = False) -> None:
    """The "wrote ..." lines of a report, and what was not written (always on stderr)."""
    out = err_console if stderr else console
    for key, value in files.items():
        out.print(f"wrote {key}: {escape(value)}", highlight=False, soft_wrap=True)
    for reason in skipped:
        err_console.print(f"[yellow]not written:[/] {escape(reason)}", highlight=False, soft_wrap=True)


def report(
    result_dir: Path = typer.Argument(..., help="the --out folder of `lungcad detect` (holds result.json)"),
    scan: Path | None = typer.Option(
        None, "--scan", help="the scan the result came from (default: the path recorded at detection)"
    ),
    min_probability: float | None = typer.Option(
        None,
        "--min-probability",
        min=0.0,
        max=1.0,
        help="show findings from this probability, 0 to 1 (default: the one used before, else 0.5)",
    ),
    study_kind: str | None = typer.Option(
        None, "--study-kind", callback=study_kind_option, help=STUDY_KIND_HELP + " (default: as before)"
    ),
    no_dicom: bool = typer.Option(False, "--no-dicom", help="skip the DICOM SEG, SR and Encapsulated PDF"),
    as_json: bool = typer.Option(False, "--json", help="print the written files as JSON"),
) -> None:
    """Render a detection result's report again: HTML + PDF, figures, nodules.nii.gz, DICOM SEG/SR/PDF."""
    from lungcad.report.rerender import rerender

    files = rerender(
        result_dir, scan=scan, min_probability=min_probability, study_kind=study_kind, dicom=not no_dicom
    )
    if as_json:
        print_json({"files": files.as_dict(), "skipped": files.skipped, "timings_s": files.timings_s})
        return
    print_report_files(files.as_dict(), files.skipped)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(report)
