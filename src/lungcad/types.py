"""Core data contracts shared by every stage of the pipeline.

Axis conventions (they are in the names on purpose):

* Arrays are indexed ``(z, y, x)``; ``spacing_zyx_mm`` follows the same order.
* World coordinates follow DICOM / ITK / LUNA16: millimetres in the patient LPS frame, written
  ``(x, y, z)`` (``center_xyz_mm``).
* ``direction`` is the ITK direction matrix: column ``i`` is the world unit vector of voxel axis ``i`` in
  ITK order ``(x, y, z)`` = ``(column, row, slice)``.  For a plain axial DICOM series it is built from
  ImageOrientationPatient (0020,0037) row/column cosines and their cross product.

``Grid.world_to_voxel`` / ``Grid.voxel_to_world`` are the only coordinate conversions in the package;
``CTVolume`` holds a ``Grid`` and delegates to it, and everything else calls them.  Code that needs only
geometry (targets, resampling targets, cached scans) takes a ``Grid``, never a placeholder ``CTVolume``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

# The public result contract lives in lungcad.contracts (a leaf module, so it can be shared without
# circular imports); it is re-exported here because every stage imports its vocabulary from lungcad.types.
from lungcad.contracts import (  # noqa: F401 - re-exported
    SCHEMA_VERSION,
    CheckStatus,
    DiameterEstimates,
    DiameterSource,
    Finding,
    HUStats,
    LungRads,
    MaskRef,
    QACheck,
    QAReport,
    ScanResult,
    ScanStatus,
    Texture,
)
from lungcad.errors import InputError


class BatchKey(StrEnum):
    """Keys of every batch dictionary that moves through data loaders, models and losses."""

    IMAGE = "image"
    SEGMENTATION = "segmentation"
    HEATMAP = "heatmap"
    SIZE = "size"
    TRIAGE = "triage"
    CENTER_MASK = "center_mask"
    SCAN_ID = "scan_id"
    ORIGIN_VOXEL = "origin_voxel"


@dataclass(frozen=True)
class SliceReport:
    """What the loader found about the slice stack (input to QA)."""

    n_files: int
    n_slices_read: int
    duplicates_dropped: int
    positions_mm: tuple[float, ...]  # along the normal, sorted, after dropping duplicates
    median_step_mm: float
    max_step_mm: float
    n_gaps: int
    nonuniform: bool
    gantry_tilt_deg: float
    padding_fraction: float


@dataclass(frozen=True)
class SeriesMetadata:
    """What a clinician and a model card need to know about a series (no pixel data).

    Patient identifiers are deliberately absent; age and sex are kept because they matter for
    Lung-RADS eligibility, and are never logged (see ``lungcad.logging``).
    """

    series_uid: str = ""
    study_uid: str = ""
    modality: str = "CT"
    patient_age: str | None = None  # (0010,1010) e.g. "067Y"
    patient_sex: str | None = None  # (0010,0040)
    study_date: str | None = None  # (0008,0020)
    manufacturer: str | None = None  # (0008,0070)
    manufacturer_model: str | None = None  # (0008,1090)
    kernel: str | None = None  # ConvolutionKernel (0018,1210)
    kvp: float | None = None  # (0018,0060)
    exposure_mas: float | None = None  # Exposure (0018,1152)
    slice_thickness_mm: float | None = None  # (0018,0050)
    pixel_spacing_mm: tuple[float, float] | None = None  # (0028,0030) row, column
    contrast_agent: str | None = None  # ContrastBolusAgent (0018,0010)
    series_description: str | None = None  # (0008,103E)
    source_format: str = "unknown"  # dicom | metaimage | nifti | array
    source_path: str = ""
    sop_uids: tuple[str, ...] = ()  # SOPInstanceUID (0008,0018) of each z slice, DICOM only
    slice_report: SliceReport | None = None  # DICOM only: what the loader found about the stack

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("sop_uids")
        return d


EXCLUDED_UNKNOWN_DIAMETER_MM = 10.0
"""Diameter (mm) of an excluded finding whose size is unknown (LUNA16 writes -1): 10 mm, as the official
LUNA16 evaluation script uses.  The one definition: ``annotations.model.ExcludedFinding.radius_mm``
applies it; the config key ``evaluate.excluded_unknown_diameter_mm`` defaults to it and overrides it."""


def _three_floats(value: object, what: str, *, positive: bool) -> tuple[float, float, float]:
    """``value`` as three finite floats (all > 0 when ``positive``), or ``InputError`` naming ``what``."""
    try:
        out = tuple(float(v) for v in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        out = ()
    if len(out) != 3 or not all(np.isfinite(v) and (v > 0 or not positive) for v in out):
        kind = "three positive finite numbers" if positive else "three finite numbers"
        raise InputError(f"{what} must be {kind}, got {value}")
    return out  # type: ignore[return-value]


@dataclass(frozen=True, eq=False)
class Grid:
    """A voxel grid placed in the world: which voxels there are and where they lie (no pixel data).

    ``world = origin + direction @ diag(spacing_xyz) @ (x, y, z)`` for voxel index ``(z, y, x)``.  Worked
    example: spacing (2.5, 0.5, 0.7) mm, origin (10, -20, 100), identity direction: voxel (2, 3, 4) lies at
    world (10 + 4 x 0.7, -20 + 3 x 0.5, 100 + 2 x 2.5) = (12.8, -18.5, 105.0).

    Args:
        shape: number of voxels ``(z, y, x)``, each >= 0.
        spacing_zyx_mm: voxel size in mm along ``(z, y, x)``; all > 0.
        origin_xyz_mm: world position (mm, LPS) of voxel ``(0, 0, 0)`` (DICOM ImagePositionPatient of
            the first slice).
        direction: 3x3 orthonormal ITK direction matrix (columns = world directions of the x, y, z voxel
            axes); stored read-only.

    Raises:
        InputError: a shape that is not three non-negative integers, a non-positive or non-finite spacing,
            a non-finite origin, or a direction that is not an orthonormal 3x3 matrix.
    """

    shape: tuple[int, int, int]
    spacing_zyx_mm: tuple[float, float, float]
    origin_xyz_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self) -> None:
        try:
            shape = tuple(int(s) for s in self.shape)
            integral = all(s == v for s, v in zip(shape, self.shape, strict=True))
        except (TypeError, ValueError):
            shape, integral = (), False
        if len(shape) != 3 or not integral or min(shape) < 0:
            raise InputError(f"Grid.shape must be three non-negative integers (z, y, x), got {self.shape!r}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(
            self, "spacing_zyx_mm", _three_floats(self.spacing_zyx_mm, "spacing_zyx_mm", positive=True)
        )
        object.__setattr__(
            self, "origin_xyz_mm", _three_floats(self.origin_xyz_mm, "origin_xyz_mm", positive=False)
        )
        direction = np.array(self.direction, dtype=np.float64)  # a copy: the caller's array stays writable
        if direction.shape != (3, 3):
            raise InputError(f"direction must be a 3x3 matrix, got shape {direction.shape}")
        if not (np.isfinite(direction).all() and np.allclose(direction.T @ direction, np.eye(3), atol=1e-4)):
            raise InputError(
                "direction must be orthonormal (columns are unit, mutually perpendicular axis vectors); "
                f"got {direction.tolist()}"
            )
        direction.setflags(write=False)
        object.__setattr__(self, "direction", direction)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Grid):
            return NotImplemented
        return (
            self.shape == other.shape
            and self.spacing_zyx_mm == other.spacing_zyx_mm
            and self.origin_xyz_mm == other.origin_xyz_mm
            and bool(np.array_equal(self.direction, other.direction))
        )

    def __hash__(self) -> int:
        return hash((self.shape, self.spacing_zyx_mm, self.origin_xyz_mm, self.direction.tobytes()))

    @property
    def spacing_xyz_mm(self) -> tuple[float, float, float]:
        z, y, x = self.spacing_zyx_mm
        return (x, y, z)

    def world_to_voxel(self, xyz_mm: np.ndarray | tuple[float, float, float]) -> np.ndarray:
        """World (x, y, z) mm -> continuous voxel index (z, y, x).

        Accepts one point ``(3,)`` or many ``(N, 3)`` and returns the same leading shape.
        """
        pts = np.asarray(xyz_mm, dtype=np.float64)
        single = pts.ndim == 1
        pts = np.atleast_2d(pts)
        rel = pts - np.asarray(self.origin_xyz_mm)
        # world = origin + D @ diag(spacing_xyz) @ ijk  =>  ijk = diag(1/s) @ D^T @ (world - origin)
        ijk = (rel @ self.direction) / np.asarray(self.spacing_xyz_mm)
        zyx = ijk[:, ::-1]
        return zyx[0] if single else zyx

    def voxel_to_world(self, zyx: np.ndarray | tuple[float, float, float]) -> np.ndarray:
        """Continuous voxel index (z, y, x) -> world (x, y, z) mm. Same shapes as ``world_to_voxel``."""
        idx = np.asarray(zyx, dtype=np.float64)
        single = idx.ndim == 1
        idx = np.atleast_2d(idx)
        ijk = idx[:, ::-1] * np.asarray(self.spacing_xyz_mm)
        world = ijk @ self.direction.T + np.asarray(self.origin_xyz_mm)
        return world[0] if single else world

    def crop(self, start_zyx: tuple[int, int, int], stop_zyx: tuple[int, int, int]) -> Grid:
        """Sub-grid of voxels ``[start, stop)``; its origin is voxel ``start``, so world positions stay."""
        shape = tuple(max(0, int(b) - int(a)) for a, b in zip(start_zyx, stop_zyx, strict=True))
        origin = self.voxel_to_world(np.asarray(start_zyx, dtype=np.float64))
        return Grid(shape, self.spacing_zyx_mm, tuple(float(v) for v in origin), self.direction)  # type: ignore[arg-type]


@dataclass(frozen=True, eq=False)
class CTVolume:
    """A CT volume in Hounsfield units on its ``Grid``.

    Args:
        hu: float32 array ``(z, y, x)`` in HU.
        spacing_zyx_mm: voxel size in mm along ``(z, y, x)``; all > 0.
        origin_xyz_mm: world position (mm, LPS) of voxel ``(0, 0, 0)`` (DICOM ImagePositionPatient of
            the first slice).
        direction: 3x3 orthonormal ITK direction matrix (columns = world directions of the x, y, z voxel
            axes).
        metadata: series metadata.

    ``grid`` (not an argument) is the validated geometry; ``spacing_zyx_mm``, ``origin_xyz_mm`` and
    ``direction`` are the grid's own values, and the coordinate conversions are the grid's.
    """

    hu: np.ndarray
    spacing_zyx_mm: tuple[float, float, float]
    origin_xyz_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    metadata: SeriesMetadata = field(default_factory=SeriesMetadata)
    grid: Grid = field(init=False, repr=False)

    def __post_init__(self) -> None:
        hu = np.asarray(self.hu)
        if hu.ndim != 3:
            raise InputError(f"CTVolume.hu must be a 3-D (z, y, x) array, got shape {hu.shape}")
        if hu.dtype != np.float32:
            hu = hu.astype(np.float32)
        object.__setattr__(self, "hu", hu)
        grid = Grid(hu.shape, self.spacing_zyx_mm, self.origin_xyz_mm, self.direction)  # type: ignore[arg-type]
        object.__setattr__(self, "grid", grid)
        object.__setattr__(self, "spacing_zyx_mm", grid.spacing_zyx_mm)
        object.__setattr__(self, "origin_xyz_mm", grid.origin_xyz_mm)
        object.__setattr__(self, "direction", grid.direction)

    @classmethod
    def on_grid(cls, hu: np.ndarray, grid: Grid, metadata: SeriesMetadata | None = None) -> CTVolume:
        """A volume of ``hu`` (shape ``grid.shape``) on ``grid``.

        Raises:
            InputError: ``hu`` does not have the grid's shape.
        """
        if tuple(np.shape(hu)) != grid.shape:
            raise InputError(f"array shape {tuple(np.shape(hu))} does not match the grid's {grid.shape}")
        return cls(hu, grid.spacing_zyx_mm, grid.origin_xyz_mm, grid.direction, metadata or SeriesMetadata())

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.grid.shape

    @property
    def spacing_xyz_mm(self) -> tuple[float, float, float]:
        return self.grid.spacing_xyz_mm

    def world_to_voxel(self, xyz_mm: np.ndarray | tuple[float, float, float]) -> np.ndarray:
        """``Grid.world_to_voxel`` of the volume's grid."""
        return self.grid.world_to_voxel(xyz_mm)

    def voxel_to_world(self, zyx: np.ndarray | tuple[float, float, float]) -> np.ndarray:
        """``Grid.voxel_to_world`` of the volume's grid."""
        return self.grid.voxel_to_world(zyx)

    def with_array(
        self,
        hu: np.ndarray,
        spacing_zyx_mm: tuple[float, float, float] | None = None,
        origin_xyz_mm: tuple[float, float, float] | None = None,
    ) -> CTVolume:
        """A new volume sharing direction and metadata (used by resampling and cropping)."""
        return CTVolume(
            hu=hu,
            spacing_zyx_mm=spacing_zyx_mm or self.spacing_zyx_mm,
            origin_xyz_mm=origin_xyz_mm or self.origin_xyz_mm,
            direction=self.direction,
            metadata=self.metadata,
        )

    def crop(self, start_zyx: tuple[int, int, int], stop_zyx: tuple[int, int, int]) -> CTVolume:
        """Crop to ``[start, stop)`` voxels; the origin moves so world coordinates stay exact."""
        sl = tuple(slice(int(a), int(b)) for a, b in zip(start_zyx, stop_zyx, strict=True))
        new_origin = self.voxel_to_world(np.asarray(start_zyx, dtype=np.float64))
        return self.with_array(
            np.ascontiguousarray(self.hu[sl]), origin_xyz_mm=tuple(float(v) for v in new_origin)
        )


def stable_hash(obj: Any) -> str:
    """A short, stable hash of a JSON-serialisable object (sorted keys)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
