"""An LIDC-IDRI case: find the CT series and its reader XML under any folder, and summarise the reads.

``lungcad lidc`` accepts what ``info``, ``ingest`` and ``detect`` accept: a series folder, a study folder or
a patient folder (e.g. ``LIDC-IDRI-0001``, which holds a CT study and a chest-radiograph study, each with
an XML).  The series is chosen the way intake chooses it, with one refinement: among the CT series, those
that have an LIDC CT read XML (``<LidcReadMessage>``, matched on its SeriesInstanceUid) come first.

Worked example: ``LIDC-IDRI-0001/`` -> discovery finds a CT series (133 slices, ``069.xml`` beside it, the
XML names that series) and a CR series (``068.xml``, an ``<IdriReadMessage>``): the CT series and
``069.xml`` are chosen.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lungcad.annotations.consensus import ConsensusNodule, consensus_nodules
from lungcad.annotations.lidc_xml import LIDC_ROOT, read_lidc_xml, xml_root_tag
from lungcad.annotations.lungrads import LungRads, scan_priority
from lungcad.annotations.masks import SliceLocator, point_voxel
from lungcad.annotations.model import LidcRead, PointMark
from lungcad.config import AnnotationConfig
from lungcad.errors import AnnotationError
from lungcad.io.dicom import load_dicom_series
from lungcad.io.discover import Discovery, SeriesInfo, choose_series, discover
from lungcad.types import CTVolume


@dataclass(frozen=True)
class LidcCase:
    """One CT series, its LIDC XML and the parsed reads."""

    root: Path  # the folder the user passed
    series: SeriesInfo
    xml_path: Path
    read: LidcRead
    found: Discovery


def _lidc_xmls(root: Path) -> tuple[dict[Path, str], dict[str, list[Path]]]:
    """Every ``*.xml`` under ``root`` with its root tag, and the LIDC CT reads by the series they annotate."""
    xmls = sorted(p for p in ([root] if root.is_file() else root.rglob("*.xml")) if p.is_file())
    tags = {p: xml_root_tag(p) for p in xmls if p.suffix.lower() == ".xml"}
    by_series: dict[str, list[Path]] = {}
    for p, tag in tags.items():
        if tag == LIDC_ROOT:
            by_series.setdefault(read_lidc_xml(p).series_uid, []).append(p)
    return tags, by_series


def _no_xml_error(root: Path, series: SeriesInfo, tags: dict[Path, str]) -> AnnotationError:
    seen = ", ".join(
        f"{p.relative_to(root) if root.is_dir() else p.name} (<{t or 'not XML'}>)" for p, t in tags.items()
    )
    return AnnotationError(
        f"no LIDC CT read XML (<{LIDC_ROOT}>) for series {series.series_uid}; "
        f"found: {seen or 'no .xml files'}",
        path=root,
        fix="put the series' LIDC XML next to its DICOM slices, or pass it with --xml",
    )


def _choose(found: Discovery, annotated: set[str], series_uid: str | None) -> SeriesInfo:
    """``choose_series``, preferring CT series that have an XML when no series is named."""
    if series_uid is None:
        with_xml = [s for s in found.ct_series() if s.series_uid in annotated]
        if with_xml:
            return choose_series(Discovery(found.root, with_xml, found.skipped, found.damaged))
    return choose_series(found, series_uid)


def locate_lidc_case(
    path: str | Path, *, xml: str | Path | None = None, series_uid: str | None = None
) -> LidcCase:
    """Find the CT series and its LIDC XML under a series, study or patient folder.

    Args:
        path: folder (searched recursively) or one DICOM file.
        xml: the LIDC XML, when it is elsewhere; its SeriesInstanceUid then picks the series.
        series_uid: the series to use, when the folder holds several annotated CT series.

    Raises:
        InputError: no CT series (or not the named one) under ``path``.
        AnnotationError: no LIDC XML for the chosen series (the message lists the XML files seen), several
            for it, a bad XML, or an XML that annotates another series.
    """
    root = Path(path)
    found = discover(root)
    if xml is not None:
        xml_path = Path(xml)
        read = read_lidc_xml(xml_path)
        series = _choose(found, set(), series_uid or read.series_uid or None)
    else:
        tags, by_series = _lidc_xmls(root)
        series = _choose(found, set(by_series) - {""}, series_uid)
        candidates = by_series.get(series.series_uid) or [
            p for p in by_series.get("", []) if p.parent == series.files[0].parent
        ]  # an XML without a SeriesInstanceUid counts for the series in its own folder
        if not candidates:
            raise _no_xml_error(root, series, tags)
        if len(candidates) > 1:
            raise AnnotationError(
                f"several LIDC XML files for series {series.series_uid}: "
                + ", ".join(str(p) for p in candidates),
                path=root,
                fix="keep one XML per series, or pass the one to use with --xml",
            )
        xml_path = candidates[0]
        read = read_lidc_xml(xml_path)
    if read.series_uid and read.series_uid != series.series_uid:
        raise AnnotationError(
            f"the XML annotates series {read.series_uid}, the folder holds {series.series_uid}",
            path=xml_path,
            fix="pass the XML of this series (--xml)",
        )
    return LidcCase(root, series, xml_path, read, found)


def _xyz(v: Any) -> list[float]:
    return [round(float(c), 2) for c in v]


@dataclass(frozen=True)
class LidcReport:
    """Every reader's marks and the consensus nodules of one case, in world mm."""

    case: LidcCase
    volume: CTVolume
    nodules: list[ConsensusNodule]
    priority: LungRads
    config: AnnotationConfig

    def reader_marks(self) -> list[dict[str, Any]]:
        """Per reader: contoured nodules (with their consensus centre and diameter), points, non-nodules."""
        measured = {
            (m.reader_index, m.mark_id): m for n in self.nodules for m in n.marks if m.kind == "nodule"
        }
        locator = SliceLocator(self.volume)

        def point(mark: PointMark) -> dict[str, Any]:
            zyx = np.asarray(point_voxel(mark, locator), dtype=np.float64)
            return {"id": mark.mark_id, "center_xyz_mm": _xyz(self.volume.voxel_to_world(zyx))}

        out = []
        for i, s in enumerate(self.case.read.sessions):
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
                    "small_nodules": [point(p) for p in s.small_nodules],
                    "non_nodules": [point(p) for p in s.non_nodules],
                }
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        """The ``lungcad lidc --json`` document."""
        return {
            "series_uid": self.case.read.series_uid,
            "xml": str(self.case.xml_path),
            "readers": self.reader_marks(),
            "consensus": [consensus_dict(n) for n in self.nodules],
            "scan_priority_lung_rads": self.priority.value,
            "agreement_level": self.config.agreement_level,
            "cluster_distance_mm": self.config.cluster_distance_mm,
        }


def consensus_dict(n: ConsensusNodule) -> dict[str, Any]:
    """One consensus nodule as JSON (rounded: 0.01 mm, 0.1 mm3)."""
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


def lidc_report(
    path: str | Path,
    config: AnnotationConfig,
    *,
    xml: str | Path | None = None,
    series_uid: str | None = None,
) -> LidcReport:
    """Locate the case under ``path``, load its CT and build the readers' consensus (``include_small``).

    Raises:
        InputError / AnnotationError: see ``locate_lidc_case``; an unusable CT (see ``lungcad.io``).
    """
    case = locate_lidc_case(path, xml=xml, series_uid=series_uid)
    case.found.check_not_damaged(case.series)
    volume = load_dicom_series(case.series)
    nodules = consensus_nodules(
        case.read,
        volume,
        cluster_distance_mm=config.cluster_distance_mm,
        agreement_level=config.agreement_level,
        include_small=True,
    )
    return LidcReport(case, volume, nodules, scan_priority(n.lung_rads for n in nodules), config)
