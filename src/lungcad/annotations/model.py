"""Annotation data model shared by the parsers, the writers, the synthetic generator and consensus.

LUNA16 rows are in world millimetres (x, y, z).  LIDC-IDRI reader marks are in the scan's pixel grid:
``edgeMap`` x is the pixel column and y the row, ``imageZposition`` is world z in mm, ``imageSOP_UID``
names the slice (SOPInstanceUID, (0008,0018)).
"""

from __future__ import annotations

from dataclasses import dataclass, field

CHARACTERISTICS = (
    "subtlety",
    "internalStructure",
    "calcification",
    "sphericity",
    "margin",
    "lobulation",
    "spiculation",
    "texture",
    "malignancy",
)


@dataclass(frozen=True)
class LunaAnnotation:
    """One row of LUNA16 ``annotations.csv`` / ``annotations_excluded.csv`` (diameter -1 = unknown)."""

    seriesuid: str
    coord_x: float
    coord_y: float
    coord_z: float
    diameter_mm: float

    @property
    def center_xyz_mm(self) -> tuple[float, float, float]:
        return (self.coord_x, self.coord_y, self.coord_z)


@dataclass(frozen=True)
class LunaCandidate:
    """One row of a LUNA16 ``candidates.csv`` (``label``) or submission file (``probability``)."""

    seriesuid: str
    coord_x: float
    coord_y: float
    coord_z: float
    value: float  # class label (0/1) for candidates.csv, probability for a submission

    @property
    def center_xyz_mm(self) -> tuple[float, float, float]:
        return (self.coord_x, self.coord_y, self.coord_z)


@dataclass(frozen=True)
class Roi:
    """One contour of a nodule on one slice (LIDC ``roi``)."""

    z_mm: float  # imageZposition
    sop_uid: str  # imageSOP_UID
    inclusion: bool  # False = exclusion contour (a hole to subtract)
    points_colrow: tuple[tuple[int, int], ...]  # edgeMap (xCoord = column, yCoord = row)


@dataclass(frozen=True)
class ReaderNodule:
    """A nodule >= 3 mm marked by one reader (``unblindedReadNodule`` with contours)."""

    nodule_id: str
    rois: tuple[Roi, ...]
    characteristics: dict[str, int] | None = field(default=None, hash=False)  # keys from CHARACTERISTICS


@dataclass(frozen=True)
class PointMark:
    """A single-point mark: a nodule < 3 mm (``unblindedReadNodule`` with one edgeMap) or a non-nodule."""

    mark_id: str
    z_mm: float
    sop_uid: str
    col: int
    row: int


@dataclass(frozen=True)
class ReadingSession:
    """One radiologist's read of the scan."""

    reader_id: str  # servicingRadiologistID
    nodules: tuple[ReaderNodule, ...] = ()
    small_nodules: tuple[PointMark, ...] = ()
    non_nodules: tuple[PointMark, ...] = ()
    annotation_version: str = ""
    blinded: bool = False


@dataclass(frozen=True)
class LidcRead:
    """A whole LIDC ``LidcReadMessage``: all reading sessions of one CT series."""

    series_uid: str
    study_uid: str
    sessions: tuple[ReadingSession, ...]
