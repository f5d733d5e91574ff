"""Display planes in the patient frame: what a radiologist expects to see, whatever the scan's direction.

Every figure samples the volume on a plane laid out in *world* (LPS) millimetres, so the picture is in the
standard radiological orientation by construction, and the voxel grid's direction matrix only enters
through ``Grid.world_to_voxel`` (the one coordinate conversion of the package).  A scan stored with its
rows flipped (direction ``diag(1, -1, 1)``) or feet-first therefore gives the same picture as a plain one.

The conventions (DICOM / radiology; LPS: +x patient left, +y posterior, +z superior):

=========  ======================  ======================  ==========================
plane      image columns (left     image rows (top ->      letters (left, right,
           -> right) run along     bottom) run along       top, bottom)
=========  ======================  ======================  ==========================
axial      +x (R -> L)             +y (A -> P)             R, L, A, P  (viewed from the feet)
coronal    +x (R -> L)             -z (S -> I)             R, L, S, I  (viewed from the front)
sagittal   +y (A -> P)             -z (S -> I)             A, P, S, I  (viewed from the left)
=========  ======================  ======================  ==========================

Worked example: an axial plane through (10, -20, -100) mm, 40 mm wide at 0.5 mm pixels has 80 x 80 pixels;
pixel (row 0, column 0) lies at world (10 - 20 + 0.25, -20 - 20 + 0.25, -100) = (-9.75, -39.75, -100),
the patient's right-anterior corner.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from scipy import ndimage

from lungcad.types import Grid


class Plane(StrEnum):
    AXIAL = "axial"
    CORONAL = "coronal"
    SAGITTAL = "sagittal"


# (column axis, row axis) as world unit vectors, and the letters at (left, right, top, bottom)
_AXES: dict[Plane, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    Plane.AXIAL: ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    Plane.CORONAL: ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),
    Plane.SAGITTAL: ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0)),
}
LETTERS: dict[Plane, tuple[str, str, str, str]] = {
    Plane.AXIAL: ("R", "L", "A", "P"),
    Plane.CORONAL: ("R", "L", "S", "I"),
    Plane.SAGITTAL: ("A", "P", "S", "I"),
}
# the world axis (0 x, 1 y, 2 z) a plane is perpendicular to, and its name in the slice-position caption
NORMAL_AXIS: dict[Plane, int] = {Plane.AXIAL: 2, Plane.CORONAL: 1, Plane.SAGITTAL: 0}


@dataclass(frozen=True)
class PlaneView:
    """A square window of a display plane.

    Args:
        plane: axial, coronal or sagittal.
        center_xyz_mm: world point at the window's centre (LPS mm).
        half_mm: half the window's side, mm.
        pixel_mm: display pixel size, mm (isotropic).
    """

    plane: Plane
    center_xyz_mm: tuple[float, float, float]
    half_mm: float
    pixel_mm: float

    @property
    def size(self) -> int:
        """Pixels per side."""
        return max(1, int(round(2 * self.half_mm / self.pixel_mm)))

    def world_points(self) -> np.ndarray:
        """World (x, y, z) mm of every pixel centre, shape ``(size, size, 3)`` indexed ``[row, column]``."""
        u, v = (np.asarray(a) for a in _AXES[self.plane])
        offsets = (np.arange(self.size) + 0.5) * self.pixel_mm - self.size * self.pixel_mm / 2
        cols, rows = np.meshgrid(offsets, offsets)  # [row, col]
        return np.asarray(self.center_xyz_mm) + cols[..., None] * u + rows[..., None] * v

    def to_pixel(self, xyz_mm: np.ndarray | tuple[float, float, float]) -> tuple[float, float]:
        """(column, row) in continuous pixel units (pixel centres at +0.5) of a world point's projection."""
        u, v = (np.asarray(a) for a in _AXES[self.plane])
        rel = np.asarray(xyz_mm, dtype=float) - np.asarray(self.center_xyz_mm)
        half_px = self.size / 2
        return float(rel @ u / self.pixel_mm + half_px), float(rel @ v / self.pixel_mm + half_px)

    def position_caption(self) -> str:
        """Where the plane lies, e.g. ``"z -114.0 mm"`` for an axial plane (world LPS coordinate)."""
        axis = NORMAL_AXIS[self.plane]
        return f"{'xyz'[axis]} {self.center_xyz_mm[axis]:.1f} mm"


def sample_plane(
    array: np.ndarray, grid: Grid, view: PlaneView, *, order: int = 1, fill: float = -1000.0
) -> np.ndarray:
    """Values of ``array`` (shape ``grid.shape``, z y x) at the pixels of ``view``, ``(size, size)``.

    ``order`` 1 is trilinear (HU, heat maps), 0 nearest (labels: a pixel shows exactly the label of the
    voxel it falls in).  Pixels outside the grid get ``fill``.
    """
    pts = view.world_points().reshape(-1, 3)
    zyx = grid.world_to_voxel(pts).T
    out = ndimage.map_coordinates(array, zyx, order=order, mode="constant", cval=fill, prefilter=False)
    return out.reshape(view.size, view.size)
