"""CLI: ``lungcad lidc`` (reader marks and consensus of a series)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from lungcad.annotations.consensus import ConsensusNodule, consensus_nodules
from lungcad.annotations.lidc_xml import find_lidc_xml, read_lidc_xml
from lungcad.annotations.lungrads import scan_priority
from lungcad.annotations.masks import SliceLocator, point_voxel
from lungcad.annotations.model import CHARACTERISTICS, LidcRead, PointMark
from lungcad.cli.common import console, get_config, print_json
from lungcad.errors import AnnotationError
from lungcad.io import load_ct
from lungcad.types import CTVolume

_RATINGS_HEADER = "ratings: sub int cal sph mar lob spi tex mal"


def _xyz(v: Any) -> list[float]:
    return [round(float(c), 2) for c in v]


def _point(mark: PointMark, volume: CTVolume, locator: SliceLocator) -> dict[str, Any]:
    zyx = np.asarray(point_voxel(mark, locator), dtype=np.float64)
    return {"id": mark.mark_id, "center_xyz_mm": _xyz(volume.voxel_to_world(zyx))}


def _reader_marks(read: LidcRead, volume: CTVolume, nodules: list[ConsensusNodule]) -> list[dict[str, Any]]:
    measured = {(m.reader_index, m.mark_id): m for n in nodules for m in n.marks if m.kind == "nodule"}
    locator = SliceLocator(volume)
    out = []
    for i, s in enumerate(read.sessions):
        contoured = []
        for nod in s.nodules:
            m = measured.get((i, nod.nodule_id))
            contoured.append(
                {
                    "id": nod.nodule_id,
                    "n_contours": len(nod.rois),
                    "n_exclusions": sum(not r.inclusion for r in nod.rois),
                    "center_xyz_mm": _xyz(m.center_xyz_mm) if m else None,
                    "diameter_mm": round(m.diameter_mm, 2) if m and m.diameter_mm else None,
                    "characteristics": nod.characteristics,
                }
            )
        out.append(
            {
                "reader_id": s.reader_id,
                "nodules": contoured,
                "small_nodules": [_point(p, volume, locator) for p in s.small_nodules],
                "non_nodules": [_point(p, volume, locator) for p in s.non_nodules],
            }
        )
    return out


def _nodule_dict(n: ConsensusNodule) -> dict[str, Any]:
    return {
        "center_xyz_mm": _xyz(n.center_xyz_mm),
        "diameter_mm": None if n.diameter_mm is None else round(n.diameter_mm, 2),
        "volume_mm3": None if n.volume_mm3 is None else round(n.volume_mm3, 1),
        "n_readers": n.n_readers,
        "reader_ids": list(n.reader_ids),
        "small_mark_readers": len(n.small_reader_ids),
        "characteristics": n.characteristics,
        "texture": n.texture.value if n.texture else None,
        "lung_rads": n.lung_rads.value,
        "actionable": n.actionable,
        "truncated": n.truncated,
        "fraction_inside": round(n.fraction_inside, 3),
    }


def lidc(
    series_dir: Path = typer.Argument(..., help="DICOM series folder holding its LIDC XML"),
    xml: Path | None = typer.Option(None, "--xml", help="the LIDC XML, when it is not in the folder"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON document instead of tables"),
) -> None:
    """Print every reader's marks and the consensus nodules (world mm, size, Lung-RADS, triage)."""
    cfg = get_config().annotations
    xml_path = xml or find_lidc_xml(series_dir)
    read = read_lidc_xml(xml_path)
    volume = load_ct(series_dir, read.series_uid or None)
    if read.series_uid and volume.metadata.series_uid and read.series_uid != volume.metadata.series_uid:
        raise AnnotationError(
            f"the XML annotates series {read.series_uid}, the folder holds {volume.metadata.series_uid}",
            path=xml_path,
            fix="pass the XML of this series (--xml)",
        )
    nodules = consensus_nodules(
        read,
        volume,
        cluster_distance_mm=cfg.cluster_distance_mm,
        agreement_level=cfg.agreement_level,
        include_small=True,
    )
    priority = scan_priority(n.lung_rads for n in nodules)
    summary = {
        "series_uid": read.series_uid,
        "xml": str(xml_path),
        "readers": _reader_marks(read, volume, nodules),
        "consensus": [_nodule_dict(n) for n in nodules],
        "scan_priority_lung_rads": priority.value,
        "agreement_level": cfg.agreement_level,
        "cluster_distance_mm": cfg.cluster_distance_mm,
    }
    if as_json:
        print_json(summary)
        return
    console.print(f"series {read.series_uid} ({len(read.sessions)} readers) from {escape(str(xml_path))}")
    for reader in summary["readers"]:
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
        console.print(table)
    table = Table(
        title=f"consensus nodules (agreement {cfg.agreement_level:g}); scan priority {priority.value}"
    )
    for col in (
        "x, y, z (mm)",
        "diam (mm)",
        "vol (mm3)",
        "readers",
        "texture",
        "malignancy",
        "Lung-RADS",
        "actionable",
        "truncated",
    ):
        table.add_column(col)
    for n in nodules:
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
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("lidc")(lidc)
