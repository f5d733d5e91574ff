"""Core data contracts shared by every stage of the pipeline.

Axis conventions (they are in the names on purpose):

* Arrays are indexed ``(z, y, x)``; ``spacing_zyx_mm`` follows the same order.
* World coordinates follow DICOM / ITK / LUNA16: millimetres in the patient LPS frame, written
  ``(x, y, z)`` (``center_xyz_mm``).
* ``direction`` is the ITK direction matrix: column ``i`` is the world unit vector of voxel axis ``i`` in
  ITK order ``(x, y, z)`` = ``(column, row, slice)``.  For a plain axial DICOM series it is built from
  ImageOrientationPatient (0020,0037) row/column cosines and their cross product.

``CTVolume.world_to_voxel`` / ``CTVolume.voxel_to_world`` are the only coordinate conversions in the
package; everything else calls them.
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


@dataclass(frozen=True, eq=False)
class CTVolume:
    """A CT volume in Hounsfield units with its geometry.

    Args:
        hu: float32 array ``(z, y, x)`` in HU.
        spacing_zyx_mm: voxel size in mm along ``(z, y, x)``; all > 0.
        origin_xyz_mm: world position (mm, LPS) of voxel ``(0, 0, 0)`` (DICOM ImagePositionPatient of
            the first slice).
        direction: 3x3 orthonormal ITK direction matrix (columns = world directions of the x, y, z voxel
            axes).
        metadata: series metadata.
    """

    hu: np.ndarray
    spacing_zyx_mm: tuple[float, float, float]
    origin_xyz_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    metadata: SeriesMetadata = field(default_factory=SeriesMetadata)

    def __post_init__(self) -> None:
        hu = np.asarray(self.hu)
        if hu.ndim != 3:
            raise InputError(f"CTVolume.hu must be a 3-D (z, y, x) array, got shape {hu.shape}")
        if hu.dtype != np.float32:
            hu = hu.astype(np.float32)
        object.__setattr__(self, "hu", hu)
        spacing = tuple(float(s) for s in self.spacing_zyx_mm)
        if len(spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing):
            raise InputError(
                f"spacing_zyx_mm must be three positive finite numbers, got {self.spacing_zyx_mm}"
            )
        object.__setattr__(self, "spacing_zyx_mm", spacing)
        origin = tuple(float(o) for o in self.origin_xyz_mm)
        if len(origin) != 3 or not all(np.isfinite(o) for o in origin):
            raise InputError(f"origin_xyz_mm must be three finite numbers, got {self.origin_xyz_mm}")
        object.__setattr__(self, "origin_xyz_mm", origin)
        direction = np.asarray(self.direction, dtype=np.float64)
        if direction.shape != (3, 3):
            raise InputError(f"direction must be a 3x3 matrix, got shape {direction.shape}")
        if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
            raise InputError(
                "direction must be orthonormal (columns are unit, mutually perpendicular axis vectors); "
                f"got {direction.tolist()}"
            )
        direction.setflags(write=False)
        object.__setattr__(self, "direction", direction)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.hu.shape)  # type: ignore[return-value]

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
