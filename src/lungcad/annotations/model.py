"""Annotation data model: the ground-truth records, and what the parsers, writers and consensus exchange.

The ground-truth family (what evaluation matches findings against, what training targets are built from):

* ``NoduleRecord``: the base, a nodule's world centre ``center_xyz_mm`` (x, y, z mm, LPS, LUNA16 order)
  and ``diameter_mm`` (> 0), validated on construction;
* ``NoduleGT``: a ground-truth nodule of a cohort (adds the triage label, texture and label-mask value);
  ``annotations.targets.TargetNodule`` and ``synth.scan.SynthNodule`` are built on it / on the base,
  ``annotations.consensus.ConsensusNodule.to_gt`` gives one;
* ``ExcludedFinding``: a LUNA16 "irrelevant finding" (``annotations_excluded.csv``): neither a true nor a
  false positive, never a training negative; its diameter may be unknown (LUNA16 writes -1), and
  ``radius_mm`` applies the one unknown-diameter rule (``EXCLUDED_UNKNOWN_DIAMETER_MM``).

Enums everywhere: textures are ``Texture``, categories ``LungRads`` (strings are accepted on construction
and turned into the enum, so JSON and CSV values can be passed as read).

File rows: ``LunaAnnotation`` / ``LunaCandidate`` are the LUNA16 CSV rows as the files hold them (series UID
and columns; world millimetres (x, y, z)); ``LunaAnnotation.to_nodule`` / ``to_excluded`` give the records.
LIDC-IDRI reader marks are in the scan's pixel grid: ``edgeMap`` x is the pixel column and y the row,
``imageZposition`` is world z in mm, ``imageSOP_UID`` names the slice (SOPInstanceUID, (0008,0018)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from lungcad.errors import InputError
from lungcad.types import EXCLUDED_UNKNOWN_DIAMETER_MM, LungRads, Texture

__all__ = [
    "CHARACTERISTICS",
    "EXCLUDED_UNKNOWN_DIAMETER_MM",
    "ExcludedFinding",
    "LidcRead",
    "LunaAnnotation",
    "LunaCandidate",
    "NoduleGT",
    "NoduleRecord",
    "PointMark",
    "ReaderNodule",
    "ReadingSession",
    "Roi",
    "as_lung_rads",
    "as_texture",
]


def _center(value: object, what: str) -> tuple[float, float, float]:
    try:
        xyz = tuple(float(v) for v in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        xyz = ()
    if len(xyz) != 3 or not all(math.isfinite(v) for v in xyz):
        raise InputError(f"{what} centre must be three finite world coordinates (x, y, z) mm, got {value!r}")
    return xyz  # type: ignore[return-value]


def as_texture(value: Texture | str | None, what: str = "nodule") -> Texture | None:
    """``value`` as a ``Texture`` (``None`` stays ``None``).

    Raises:
        InputError: a string that is no texture (e.g. ``"Solid"``: the values are lower case).
    """
    if value is None or isinstance(value, Texture):
        return value
    try:
        return Texture(value)
    except ValueError:
        raise InputError(
            f"{what} has unknown texture {value!r}", fix=f"use one of {[t.value for t in Texture]} or None"
        ) from None


def as_lung_rads(value: LungRads | str, what: str = "nodule") -> LungRads:
    """``value`` as a ``LungRads`` category.

    Raises:
        InputError: a string that is no Lung-RADS v2022 category.
    """
    if isinstance(value, LungRads):
        return value
    try:
        return LungRads(value)
    except ValueError:
        raise InputError(
            f"{what} has unknown Lung-RADS category {value!r}",
            fix=f"use one of {[c.value for c in LungRads]}",
        ) from None


@dataclass(frozen=True)
class NoduleRecord:
    """The base of every ground-truth nodule record: where it is and how big.

    Attributes:
        center_xyz_mm: world centre (x, y, z) mm, LPS (LUNA16 order); stored as three floats.
        diameter_mm: diameter in mm, finite and > 0.

    Raises:
        InputError: a centre that is not three finite numbers, or a diameter that is not finite and > 0.
    """

    center_xyz_mm: tuple[float, float, float]
    diameter_mm: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "center_xyz_mm", _center(self.center_xyz_mm, "nodule"))
        try:
            d = float(self.diameter_mm)
        except (TypeError, ValueError):
            d = math.nan
        if not (math.isfinite(d) and d > 0):
            raise InputError(f"nodule diameter must be > 0 mm, got {self.diameter_mm!r}")
        object.__setattr__(self, "diameter_mm", d)


@dataclass(frozen=True)
class NoduleGT(NoduleRecord):
    """A ground-truth nodule of a cohort (``data.records.ScanRecord.nodules``).

    Attributes:
        actionable: triage label (Lung-RADS >= 4A or LIDC malignancy >= 4).
        texture: ``Texture`` when known (a string such as ``"solid"`` is turned into the enum).
        label: value of this nodule in the scan's label mask (0 when there is no mask).
    """

    actionable: bool = False
    texture: Texture | None = None
    label: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "actionable", bool(self.actionable))
        object.__setattr__(self, "texture", as_texture(self.texture))
        object.__setattr__(self, "label", int(self.label))


@dataclass(frozen=True)
class ExcludedFinding:
    """A LUNA16 irrelevant finding (``annotations_excluded.csv``): ignored by evaluation, never a negative.

    Attributes:
        center_xyz_mm: world centre (x, y, z) mm.
        diameter_mm: diameter in mm, or ``None`` when unknown.  LUNA16 writes -1 for unknown; any value
            <= 0 is read as unknown (``None``) on construction.

    Raises:
        InputError: a non-finite centre or diameter.
    """

    center_xyz_mm: tuple[float, float, float]
    diameter_mm: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "center_xyz_mm", _center(self.center_xyz_mm, "excluded finding"))
        d = self.diameter_mm
        if d is not None:
            try:
                d = float(d)
            except (TypeError, ValueError):
                d = math.nan
            if not math.isfinite(d):
                raise InputError(f"excluded finding diameter must be finite or -1 (unknown), got {d!r}")
        object.__setattr__(self, "diameter_mm", d if d is not None and d > 0 else None)

    @property
    def diameter_known(self) -> bool:
        return self.diameter_mm is not None

    def radius_mm(self, unknown_diameter_mm: float = EXCLUDED_UNKNOWN_DIAMETER_MM) -> float:
        """Half the diameter; half of ``unknown_diameter_mm`` when the diameter is unknown.

        Example: ``ExcludedFinding((0, 0, 0), -1).radius_mm()`` is 5.0 (unknown -> 10 mm), and with a
        known 4 mm diameter it is 2.0 (the unknown rule never changes a known size).

        Raises:
            InputError: ``unknown_diameter_mm`` not finite and > 0.
        """
        if not (math.isfinite(unknown_diameter_mm) and unknown_diameter_mm > 0):
            raise InputError(f"excluded_unknown_diameter_mm must be > 0, got {unknown_diameter_mm}")
        return (self.diameter_mm if self.diameter_mm is not None else unknown_diameter_mm) / 2.0


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

    def to_nodule(self, *, actionable: bool = False) -> NoduleGT:
        """The row (of ``annotations.csv``) as a ground-truth nodule."""
        return NoduleGT(self.center_xyz_mm, self.diameter_mm, actionable)

    def to_excluded(self) -> ExcludedFinding:
        """The row (of ``annotations_excluded.csv``) as an excluded finding (-1 -> unknown diameter)."""
        return ExcludedFinding(self.center_xyz_mm, self.diameter_mm)


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
