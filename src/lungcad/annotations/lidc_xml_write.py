"""Write ``LidcRead`` objects as LIDC-IDRI ``LidcReadMessage`` XML (the parser is ``lidc_xml.py``).

``read_lidc_xml`` of the written file gives back the same objects: floats are written with ``repr``,
characteristics in the LIDC order, and the one rule that tells a nodule < 3 mm from a contoured nodule
(``is_small_nodule_shape``) is shared with the parser.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from xml.sax.saxutils import escape

from lungcad.annotations.model import CHARACTERISTICS, LidcRead, ReaderNodule, ReadingSession, Roi
from lungcad.errors import AnnotationError
from lungcad.fileio import atomic_open

LIDC_NAMESPACE = "http://www.nih.gov"
LIDC_ROOT = "LidcReadMessage"


def is_small_nodule_shape(characteristics: Mapping[str, int] | None, rois: Sequence[Roi]) -> bool:
    """LIDC's encoding of a nodule < 3 mm: no characteristics, one inclusion ``roi`` with one point."""
    return (
        characteristics is None and len(rois) == 1 and len(rois[0].points_colrow) == 1 and rois[0].inclusion
    )


def _e(tag: str, value: object, indent: str) -> str:
    return f"{indent}<{tag}>{escape(str(value))}</{tag}>\n"


def _roi_xml(roi: Roi, indent: str) -> str:
    inner = indent + "  "
    out = [f"{indent}<roi>\n", _e("imageZposition", repr(float(roi.z_mm)), inner)]
    out.append(_e("imageSOP_UID", roi.sop_uid, inner))
    out.append(_e("inclusion", "TRUE" if roi.inclusion else "FALSE", inner))
    for col, row in roi.points_colrow:
        out.append(f"{inner}<edgeMap><xCoord>{int(col)}</xCoord><yCoord>{int(row)}</yCoord></edgeMap>\n")
    out.append(f"{indent}</roi>\n")
    return "".join(out)


def _nodule_xml(nodule: ReaderNodule, tag: str, indent: str) -> str:
    inner = indent + "  "
    out = [f"{indent}<{tag}>\n", _e("noduleID", nodule.nodule_id, inner)]
    if nodule.characteristics is not None:
        out.append(f"{inner}<characteristics>\n")
        for name in CHARACTERISTICS:
            if name in nodule.characteristics:
                out.append(_e(name, int(nodule.characteristics[name]), inner + "  "))
        out.append(f"{inner}</characteristics>\n")
    out.extend(_roi_xml(r, inner) for r in nodule.rois)
    out.append(f"{indent}</{tag}>\n")
    return "".join(out)


def _session_xml(session: ReadingSession) -> str:
    tag = "blindedReadNodule" if session.blinded else "unblindedReadNodule"
    ind = "    "
    out = ["  <readingSession>\n"]
    if session.annotation_version:
        out.append(_e("annotationVersion", session.annotation_version, ind))
    out.append(_e("servicingRadiologistID", session.reader_id, ind))
    out.extend(_nodule_xml(n, tag, ind) for n in session.nodules)
    for mark in session.small_nodules:
        roi = Roi(mark.z_mm, mark.sop_uid, True, ((mark.col, mark.row),))
        out.append(_nodule_xml(ReaderNodule(mark.mark_id, (roi,), None), tag, ind))
    for mark in session.non_nodules:
        out.append(f"{ind}<nonNodule>\n")
        out.append(_e("nonNoduleID", mark.mark_id, ind + "  "))
        out.append(_e("imageZposition", repr(float(mark.z_mm)), ind + "  "))
        out.append(_e("imageSOP_UID", mark.sop_uid, ind + "  "))
        out.append(
            f"{ind}  <locus><xCoord>{int(mark.col)}</xCoord><yCoord>{int(mark.row)}</yCoord></locus>\n"
        )
        out.append(f"{ind}</nonNodule>\n")
    out.append("  </readingSession>\n")
    return "".join(out)


def write_lidc_xml(read: LidcRead, path: str | Path) -> None:
    """Write ``read`` as an LIDC ``LidcReadMessage`` XML file (atomically: temp file, then rename).

    The output uses the LIDC namespace and element names, so ``read_lidc_xml(path) == read``.  A small
    nodule (``PointMark`` in ``small_nodules``) becomes an ``unblindedReadNodule`` with one single-point
    ``roi`` and no characteristics, exactly as LIDC stores nodules < 3 mm.

    Raises:
        AnnotationError: a ``ReaderNodule`` that would read back as a small nodule (no characteristics and
            a single one-point inclusion contour), which would break the round trip.
    """
    for session in read.sessions:
        for nodule in session.nodules:
            if is_small_nodule_shape(nodule.characteristics, nodule.rois):
                raise AnnotationError(
                    f"reader {session.reader_id!r} nodule {nodule.nodule_id!r} has one one-point contour and "
                    "no characteristics: LIDC stores that as a nodule < 3 mm",
                    path=path,
                    fix="put it in ReadingSession.small_nodules as a PointMark, or give it characteristics",
                )
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<{LIDC_ROOT} xmlns="{LIDC_NAMESPACE}">\n',
        "  <ResponseHeader>\n",
        _e("SeriesInstanceUid", read.series_uid, "    "),
        _e("StudyInstanceUID", read.study_uid, "    "),
        "  </ResponseHeader>\n",
        *(_session_xml(s) for s in read.sessions),
        f"</{LIDC_ROOT}>\n",
    ]
    with atomic_open(path) as handle:
        handle.write("".join(parts))
