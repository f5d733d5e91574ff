"""LIDC-IDRI reader XML (``LidcReadMessage``): parser and writer.

Each LIDC-IDRI CT series comes with one XML file holding up to four radiologists' reads
(``readingSession``).  Per reader it lists

* ``unblindedReadNodule`` with contours (``roi``) on each slice: nodules >= 3 mm, usually with the nine
  ``characteristics`` -> ``ReaderNodule``;
* ``unblindedReadNodule`` with one ``roi`` holding one ``edgeMap`` point and no characteristics: a nodule
  < 3 mm -> ``PointMark`` in ``ReadingSession.small_nodules``;
* ``nonNodule`` with one ``locus`` point: a non-nodule finding -> ``PointMark`` in ``non_nodules``.

Quirks of the real files handled here: the default namespace (``http://www.nih.gov``; some files have none,
tags are matched on their local name), numbers padded with spaces (``-125.000000 ``), characteristics that
are absent (``None``) or partly empty (only the present keys), exclusion contours (``inclusion`` FALSE: holes
to subtract, see ``masks.py``), reader IDs that are negative numbers or ``anonymous``.  A chest-radiograph
read (``IdriReadMessage``) is rejected with a message that says what it is.

The writer lives in ``lidc_xml_write.py`` and is re-exported here (``write_lidc_xml``).

Errors name the file and the line: the tree is built with expat directly (``xml.parsers.expat``) so that
every element keeps its line number; expat does not fetch external entities.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from xml.parsers import expat

from lungcad.annotations.lidc_xml_write import (
    LIDC_NAMESPACE,
    LIDC_ROOT,
    is_small_nodule_shape,
    write_lidc_xml,
)
from lungcad.annotations.model import LidcRead, PointMark, ReaderNodule, ReadingSession, Roi
from lungcad.errors import AnnotationError

__all__ = [
    "CHARACTERISTIC_RANGES",
    "IDRI_ROOT",
    "LIDC_NAMESPACE",
    "LIDC_ROOT",
    "find_lidc_xml",
    "read_lidc_xml",
    "write_lidc_xml",
    "xml_root_tag",
]

IDRI_ROOT = "IdriReadMessage"

# Allowed values of each characteristic (LIDC-IDRI documentation; Armato et al., Med Phys 38:915, 2011).
CHARACTERISTIC_RANGES: dict[str, tuple[int, int]] = {
    "subtlety": (1, 5),
    "internalStructure": (1, 4),
    "calcification": (1, 6),
    "sphericity": (1, 5),
    "margin": (1, 5),
    "lobulation": (1, 5),
    "spiculation": (1, 5),
    "texture": (1, 5),
    "malignancy": (1, 5),
}


@dataclass
class _Node:
    """One XML element: local tag name, 1-based line, text, children."""

    tag: str
    line: int
    text: str = ""
    children: list[_Node] = field(default_factory=list)

    def all(self, tag: str) -> list[_Node]:
        return [c for c in self.children if c.tag == tag]

    def first(self, *tags: str) -> _Node | None:
        for child in self.children:
            if child.tag in tags:
                return child
        return None


class _Reader:
    """Parses one XML file into ``_Node`` trees and raises errors that carry file and line."""

    def __init__(self, path: Path, *, strict: bool) -> None:
        self.path = path
        self.strict = strict

    def error(self, line: int, message: str, fix: str | None = None) -> AnnotationError:
        return AnnotationError(f"LIDC XML line {line}: {message}", path=self.path, fix=fix)

    def tree(self, data: bytes) -> _Node:
        parser = expat.ParserCreate(namespace_separator="}")
        stack: list[_Node] = []
        root: list[_Node] = []
        texts: list[list[str]] = []

        def start(name: str, _attrs: dict[str, str]) -> None:
            node = _Node(name.rsplit("}", 1)[-1], parser.CurrentLineNumber)
            if stack:
                stack[-1].children.append(node)
            else:
                root.append(node)
            stack.append(node)
            texts.append([])

        def end(_name: str) -> None:
            stack.pop().text = "".join(texts.pop()).strip()

        def chars(data: str) -> None:
            if texts:
                texts[-1].append(data)

        parser.StartElementHandler = start
        parser.EndElementHandler = end
        parser.CharacterDataHandler = chars
        try:
            parser.Parse(data, True)
        except expat.ExpatError as exc:
            reason = expat.ErrorString(exc.code)
            truncated = exc.code in _TRUNCATION_CODES or exc.lineno >= data.count(b"\n") + 1
            hint = "the file ends before the XML is complete (truncated?)" if truncated else "malformed XML"
            raise self.error(
                exc.lineno,
                f"{reason} (column {exc.offset + 1}): {hint}",
                fix="download the XML again from TCIA (LIDC-IDRI) or restore the original file",
            ) from exc
        except LookupError as exc:  # expat asks Python for the codec the XML declaration names (fuzz-found)
            raise self.error(
                parser.CurrentLineNumber,
                f"the XML declaration names an encoding Python does not know ({exc})",
                fix='LIDC XML is UTF-8: repair the first line (<?xml version="1.0" encoding="UTF-8"?>)',
            ) from exc
        return root[0]

    def text(self, parent: _Node, *tags: str, required: bool = True) -> tuple[str, int]:
        node = parent.first(*tags)
        if node is None:
            if required:
                raise self.error(parent.line, f"<{parent.tag}> has no <{tags[0]}>", fix=f"add <{tags[0]}>")
            return "", parent.line
        return node.text, node.line

    def number(self, parent: _Node, tag: str) -> float:
        text, line = self.text(parent, tag)
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise self.error(line, f"<{tag}> must be a finite number, got {text!r}")
        return value

    def integer(self, parent: _Node, tag: str) -> int:
        text, line = self.text(parent, tag)
        try:
            return int(text)
        except ValueError:
            raise self.error(line, f"<{tag}> must be an integer pixel index, got {text!r}") from None

    def point(self, node: _Node) -> tuple[int, int]:
        return (self.integer(node, "xCoord"), self.integer(node, "yCoord"))

    def characteristics(self, node: _Node | None) -> dict[str, int] | None:
        if node is None:
            return None
        out: dict[str, int] = {}
        for child in node.children:
            if child.tag not in CHARACTERISTIC_RANGES:
                if self.strict:
                    raise self.error(child.line, f"unknown characteristic <{child.tag}>", fix=_TOLERANT_FIX)
                continue
            if not child.text:
                continue  # an empty element: the reader gave no rating (a known quirk)
            lo, hi = CHARACTERISTIC_RANGES[child.tag]
            try:
                value = int(child.text)
            except ValueError:
                value = lo - 1
            if not lo <= value <= hi:
                if self.strict:
                    raise self.error(
                        child.line,
                        f"{child.tag} must be an integer in [{lo}, {hi}], got {child.text!r}",
                        fix=_TOLERANT_FIX,
                    )
                continue
            out[child.tag] = value
        return out

    def roi(self, node: _Node) -> Roi:
        inclusion_text, line = self.text(node, "inclusion")
        if inclusion_text.upper() not in ("TRUE", "FALSE"):
            raise self.error(line, f"<inclusion> must be TRUE or FALSE, got {inclusion_text!r}")
        return Roi(
            z_mm=self.number(node, "imageZposition"),
            sop_uid=self.text(node, "imageSOP_UID", required=False)[0],
            inclusion=inclusion_text.upper() == "TRUE",
            points_colrow=tuple(self.point(e) for e in node.all("edgeMap")),
        )

    def nodule(self, node: _Node) -> ReaderNodule | PointMark:
        nodule_id = self.text(node, "noduleID", required=False)[0]
        characteristics = self.characteristics(node.first("characteristics"))
        rois = tuple(self.roi(r) for r in node.all("roi"))
        if is_small_nodule_shape(characteristics, rois):
            (col, row) = rois[0].points_colrow[0]
            return PointMark(nodule_id, rois[0].z_mm, rois[0].sop_uid, col, row)
        return ReaderNodule(nodule_id, rois, characteristics)

    def non_nodule(self, node: _Node) -> PointMark:
        locus = node.first("locus")
        if locus is None:
            raise self.error(
                node.line, "<nonNodule> has no <locus>", fix="add <locus> with xCoord and yCoord"
            )
        col, row = self.point(locus)
        return PointMark(
            mark_id=self.text(node, "nonNoduleID", required=False)[0],
            z_mm=self.number(node, "imageZposition"),
            sop_uid=self.text(node, "imageSOP_UID", required=False)[0],
            col=col,
            row=row,
        )

    def session(self, node: _Node) -> ReadingSession:
        nodules: list[ReaderNodule] = []
        small: list[PointMark] = []
        kinds = {c.tag for c in node.children if c.tag in ("unblindedReadNodule", "blindedReadNodule")}
        if len(kinds) > 1:
            raise self.error(node.line, "a readingSession mixes blindedReadNodule and unblindedReadNodule")
        for child in node.children:
            if child.tag in kinds:
                mark = self.nodule(child)
                (small if isinstance(mark, PointMark) else nodules).append(mark)  # type: ignore[arg-type]
        return ReadingSession(
            reader_id=self.text(node, "servicingRadiologistID", required=False)[0],
            nodules=tuple(nodules),
            small_nodules=tuple(small),
            non_nodules=tuple(self.non_nodule(c) for c in node.all("nonNodule")),
            annotation_version=self.text(node, "annotationVersion", required=False)[0],
            blinded=kinds == {"blindedReadNodule"},
        )


_TRUNCATION_CODES = frozenset(
    expat.errors.codes[m]
    for m in (
        expat.errors.XML_ERROR_NO_ELEMENTS,
        expat.errors.XML_ERROR_UNCLOSED_TOKEN,
        expat.errors.XML_ERROR_PARTIAL_CHAR,
    )
)
_TOLERANT_FIX = "correct the value, or read with strict=False to drop unknown or out-of-range ratings"


def _check_root(reader: _Reader, root: _Node) -> None:
    if root.tag == LIDC_ROOT:
        return
    if root.tag == IDRI_ROOT:
        raise reader.error(
            root.line,
            "this is an IdriReadMessage, a chest-radiograph (CXR) read of the IDRI collection, "
            "not a CT read; lungcad reads LidcReadMessage files",
            fix="use the LIDC XML stored with the CT series (its root element is <LidcReadMessage>)",
        )
    raise reader.error(
        root.line,
        f"root element is <{root.tag}>, expected <{LIDC_ROOT}>",
        fix="pass an LIDC-IDRI CT read XML file",
    )


def read_lidc_xml(path: str | Path, *, strict: bool = True) -> LidcRead:
    """Parse an LIDC-IDRI ``LidcReadMessage`` XML file.

    Args:
        path: the XML file (e.g. ``069.xml`` next to the DICOM slices of its series).
        strict: raise on unknown characteristics or out-of-range ratings; ``False`` drops those ratings.

    Returns:
        ``LidcRead`` with one ``ReadingSession`` per ``readingSession`` element, in file order.

    Raises:
        AnnotationError: unreadable, truncated or malformed XML, the wrong kind of XML (e.g. an
            ``IdriReadMessage``), or a bad value; the message names the file and line.
    """
    path = Path(path)
    reader = _Reader(path, strict=strict)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise AnnotationError("LIDC XML file not found", path=path, fix="pass an existing XML file") from exc
    root = reader.tree(data)
    _check_root(reader, root)
    header = root.first("ResponseHeader")
    series_uid = study_uid = ""
    if header is not None:
        series_uid = reader.text(header, "SeriesInstanceUid", "SeriesInstanceUID", required=False)[0]
        study_uid = reader.text(header, "StudyInstanceUID", "StudyInstanceUid", required=False)[0]
    sessions = tuple(reader.session(s) for s in root.all("readingSession"))
    return LidcRead(series_uid=series_uid, study_uid=study_uid, sessions=sessions)


def xml_root_tag(path: str | Path) -> str:
    """Local name of an XML file's root element ("" when the file is not XML); reads only the start."""
    found: list[str] = []
    parser = expat.ParserCreate(namespace_separator="}")

    def start(name: str, _attrs: dict[str, str]) -> None:
        found.append(name.rsplit("}", 1)[-1])
        raise StopIteration

    parser.StartElementHandler = start
    try:
        with Path(path).open("rb") as handle:
            while not found and (chunk := handle.read(4096)):
                parser.Parse(chunk, False)
    except (StopIteration, expat.ExpatError, OSError, LookupError):  # LookupError: unknown encoding
        pass
    return found[0] if found else ""


def find_lidc_xml(series_dir: str | Path, series_uid: str | None = None) -> Path:
    """The ``LidcReadMessage`` XML in a series folder (optionally the one for ``series_uid``).

    Raises:
        AnnotationError: no such XML (the message lists what the folder holds), or several that match.
    """
    folder = Path(series_dir)
    xmls = sorted(p for p in folder.glob("*.xml") if p.is_file())
    roots = {p: xml_root_tag(p) for p in xmls}
    lidc = [p for p, tag in roots.items() if tag == LIDC_ROOT]
    if series_uid is not None and len(lidc) > 1:
        lidc = [p for p in lidc if read_lidc_xml(p).series_uid == series_uid]
    if len(lidc) == 1:
        return lidc[0]
    if not lidc:
        seen = ", ".join(f"{p.name} (<{t or 'not XML'}>)" for p, t in roots.items()) or "no .xml files"
        raise AnnotationError(
            f"no LIDC CT read XML (<{LIDC_ROOT}>) in the series folder; found: {seen}",
            path=folder,
            fix="put the series' LIDC XML next to its DICOM slices",
        )
    raise AnnotationError(
        f"several LIDC XML files in the series folder: {', '.join(p.name for p in lidc)}",
        path=folder,
        fix="keep one XML per series folder",
    )
