"""CLI: ``lungcad lidc`` (reader marks and consensus of a series)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from lungcad.annotations.lidc_case import LidcReport, lidc_report
from lungcad.annotations.model import CHARACTERISTICS
from lungcad.cli.common import console, get_config, print_json

_RATINGS_HEADER = "ratings: sub int cal sph mar lob spi tex mal"


def _reader_table(reader: dict[str, Any]) -> Table:
    table = Table(title=f"reader {escape(reader['reader_id'])}")
    for col in ("mark", "id", "x, y, z (mm)", "diameter (mm)", "contours", _RATINGS_HEADER):
        table.add_column(col)
    for nod in reader["nodules"]:
        ratings = nod["characteristics"] or {}
        chars = " ".join(str(ratings.get(k, "-")) for k in CHARACTERISTICS) if ratings else "-"
        c = nod["center_xyz_mm"]
        table.add_row(
            "nodule >= 3 mm", escape(nod["id"]), ", ".join(f"{v:.1f}" for v in c) if c else "-",
            f"{nod['diameter_mm']:.1f}" if nod["diameter_mm"] else "-", str(nod["n_contours"]), chars,
        )  # fmt: skip
    for kind, key in (("nodule < 3 mm", "small_nodules"), ("non-nodule", "non_nodules")):
        for p in reader[key]:
            table.add_row(
                kind, escape(p["id"]), ", ".join(f"{v:.1f}" for v in p["center_xyz_mm"]), "", "", ""
            )
    return table


def _consensus_table(report: LidcReport) -> Table:
    table = Table(
        title=f"consensus nodules (agreement {report.config.agreement_level:g}); "
        f"scan priority {report.priority.value}"
    )
    for col in ("x, y, z (mm)", "diam (mm)", "vol (mm3)", "readers", "texture", "malignancy", "Lung-RADS",
                "actionable", "truncated"):  # fmt: skip
        table.add_column(col)
    for n in report.nodules:
        table.add_row(
            ", ".join(f"{v:.1f}" for v in n.center_xyz_mm),
            "< 3" if n.diameter_mm is None else f"{n.diameter_mm:.1f}",
            "-" if n.volume_mm3 is None else f"{n.volume_mm3:.0f}",
            f"{n.n_readers}" + (f" (+{len(n.small_reader_ids)} < 3 mm)" if n.small_reader_ids else ""),
            n.texture.value if n.texture else "-",
            f"{n.characteristics['malignancy']:g}" if "malignancy" in n.characteristics else "-",
            n.lung_rads.value,
            "yes" if n.actionable else "no",
            f"yes ({100 * n.fraction_inside:.0f} % inside)" if n.truncated else "no",
        )
    return table


def lidc(
    path: Path = typer.Argument(..., help="LIDC-IDRI patient, study or series folder (with its LIDC XML)"),
    xml: Path | None = typer.Option(None, "--xml", help="the LIDC XML, when it is not in the folder"),
    series: str | None = typer.Option(None, "--series", help="SeriesInstanceUID, when several are annotated"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON document instead of tables"),
) -> None:
    """Print every reader's marks and the consensus nodules (world mm, size, Lung-RADS, triage)."""
    report = lidc_report(path, get_config().annotations, xml=xml, series_uid=series)
    summary = report.to_dict()
    if as_json:
        print_json(summary)
        return
    read = report.case.read
    console.print(
        f"series {read.series_uid} ({len(read.sessions)} readers) from {escape(str(report.case.xml_path))}"
    )
    for reader in summary["readers"]:
        console.print(_reader_table(reader))
    console.print(_consensus_table(report))


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("lidc")(lidc)
