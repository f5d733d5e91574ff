"""Scan geometry (the voxel grid in the world) and the patient's body frame (the anatomy in the world).

Two frames meet here:

* **World**: LPS millimetres, as ``CTVolume`` defines it.  The scan grid is axial (slice normal = +z, slice
  index increasing toward the head, as ``load_ct`` returns every series) with an optional in-plane rotation
  of the image rows and columns (an oblique ImageOrientationPatient), a field of view of ``fov`` mm and a
  non-zero origin.
* **Body**: millimetres with LPS axes (x to the patient's left, y posterior, z superior) whose origin lies
  on the torso axis at the lung apex, so the anatomy model is written once in patient terms.
  ``world = centre + A @ body`` with ``A = [[c, -s, tx], [s, c, ty], [0, 0, 1]]``: a roll of the patient
  about the long axis by ``atan2(s, c)`` and a small shear ``(tx, ty)`` that tilts the torso axis against
  the table axis.  ``A`` keeps world z = body z + const, so every axial slice is one body z: the anatomy
  renders slice by slice from 2-D coordinate grids.

Everything is rounded to values DICOM can store exactly (DS, 16 characters), so DICOM and MetaImage
outputs of one scan load with identical geometry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lungcad.config import SynthConfig
from lungcad.types import CTVolume

# Slice spacings scanners actually reconstruct (mm); sampling snaps to these when the range allows.
COMMON_SLICE_SPACINGS_MM = (0.5, 0.625, 0.7, 0.75, 0.8, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 5.0)
# Streams are only ever appended: SeedSequence.spawn(n)'s child i does not depend on n, so a new stream
# ("masses") leaves every earlier stream -- and every existing cohort -- unchanged.
RNG_STREAMS = ("geometry", "anatomy", "vessels", "nodules", "acquisition", "readers", "masses")


def scan_rngs(seed: int, index: int) -> dict[str, np.random.Generator]:
    """Independent generators for each stage of scan ``index`` of the cohort seeded ``seed``.

    Each stage has its own stream (``SeedSequence([seed, index]).spawn``), so changing how many random
    numbers one stage draws leaves every other stage of the scan unchanged.
    """
    children = np.random.SeedSequence([int(seed), int(index)]).spawn(len(RNG_STREAMS))
    return {name: np.random.default_rng(ss) for name, ss in zip(RNG_STREAMS, children, strict=True)}


@dataclass(frozen=True)
class BodyFrame:
    """Rigid-plus-shear map between body and world millimetres (see module docstring).

    ``scale_xyz`` (follow-up scans, ``lungcad.synth.followup``): a scaling along the body axes applied
    before ``A`` (another inspiration level), ``world = centre + A @ (scale * body)``; ``None`` is no
    scaling (every single-timepoint scan, whose arithmetic is then exactly what it always was).
    """

    centre_xyz_mm: np.ndarray  # (3,) world position of the body origin
    matrix: np.ndarray  # (3, 3) A: world - centre = A @ body
    scale_xyz: np.ndarray | None = None  # (3,) body-axis scale factors, or None (= 1)

    def to_world(self, body_xyz: np.ndarray) -> np.ndarray:
        """Body ``(..., 3)`` mm -> world ``(..., 3)`` mm."""
        body = np.asarray(body_xyz, dtype=np.float64)
        if self.scale_xyz is not None:
            body = body * self.scale_xyz
        return body @ self.matrix.T + self.centre_xyz_mm

    def to_body(self, world_xyz: np.ndarray) -> np.ndarray:
        """World ``(..., 3)`` mm -> body ``(..., 3)`` mm."""
        rel = np.asarray(world_xyz, dtype=np.float64) - self.centre_xyz_mm
        body = rel @ np.linalg.inv(self.matrix).T
        return body if self.scale_xyz is None else body / self.scale_xyz

    def affine(self) -> np.ndarray:
        """The 4 x 4 homogeneous matrix of ``to_world`` (body mm -> world mm)."""
        out = np.eye(4)
        scale = np.ones(3) if self.scale_xyz is None else np.asarray(self.scale_xyz, dtype=np.float64)
        out[:3, :3] = self.matrix * scale[None, :]
        out[:3, 3] = self.centre_xyz_mm
        return out


@dataclass(frozen=True)
class ScanGeometry:
    """The sampled acquisition geometry of one scan."""

    shape_zyx: tuple[int, int, int]
    spacing_zyx_mm: tuple[float, float, float]
    origin_xyz_mm: tuple[float, float, float]
    direction: np.ndarray  # (3, 3) ITK direction; third column is +z
    slice_thickness_mm: float
    fov_mm: float
    frame: BodyFrame
    body_z_range_mm: tuple[float, float]  # body z of the first and the last slice

    def empty_volume(self) -> CTVolume:
        """A ``CTVolume`` on this grid whose ``hu`` buffer (float32, -1000) the renderers fill in place."""
        hu = np.full(self.shape_zyx, -1000.0, dtype=np.float32)
        return CTVolume(hu, self.spacing_zyx_mm, self.origin_xyz_mm, self.direction)

    def body_z_step_mm(self) -> float:
        """Body z between neighbouring slices: the slice spacing, over the body's z scale if it has one."""
        sz = self.spacing_zyx_mm[0]
        return sz if self.frame.scale_xyz is None else sz / float(self.frame.scale_xyz[2])

    def body_z_of_slices(self) -> np.ndarray:
        """Body z (mm) of every slice, ``(nz,)`` float64."""
        z0, z1 = self.body_z_range_mm
        return np.linspace(z0, z1, self.shape_zyx[0])


def _ds_round(value: float) -> float:
    """The nearest float a 16-character DICOM DS string holds exactly (what a reader gets back)."""
    for digits in range(15, 5, -1):
        text = f"{value:.{digits}g}"
        if len(text) <= 16:
            return float(text)
    return float(f"{value:.6g}")


def _sample_slice_spacing(low: float, high: float, rng: np.random.Generator) -> float:
    common = [s for s in COMMON_SLICE_SPACINGS_MM if low <= s <= high]
    if common:
        return float(rng.choice(common))
    return round(float(rng.uniform(low, high)), 3)


def sample_geometry(
    cfg: SynthConfig, rng: np.random.Generator, body_width_mm: float, lung_height_mm: float
) -> ScanGeometry:
    """Sample field of view, spacing, coverage, patient pose and origin for one scan.

    Args:
        cfg: the synthesis configuration (ranges).
        rng: the scan's ``geometry`` stream.
        body_width_mm: torso width of the sampled patient (the field of view is widened to fit it when the
            configured range allows, as a technologist would).
        lung_height_mm: apex-to-base lung height; the scan covers it with margins unless ``n_slices`` pins a
            shorter coverage, which is then centred on the lungs.
    """
    n_xy = cfg.shape_xy
    lo, hi = cfg.fov_range_mm
    fov = float(np.clip(max(rng.uniform(lo, hi), body_width_mm + 25.0), lo, hi))
    pixel = _ds_round(round(fov / n_xy, 6))
    sz = _sample_slice_spacing(*cfg.slice_spacing_range_mm, rng)
    thickness = _ds_round(round(sz * rng.uniform(*cfg.slice_thickness_factor_range), 2))
    if cfg.n_slices is not None:
        n_z = cfg.n_slices
    else:
        n_z = max(8, int(round(rng.uniform(*cfg.scan_length_range_mm) / sz)))
    coverage = (n_z - 1) * sz
    wanted = lung_height_mm + 55.0
    if coverage >= wanted:
        # Top of the scan 15-45 mm above the apex (lower neck); the rest goes below the bases.
        top = rng.uniform(15.0, min(45.0, 15.0 + coverage - wanted))
    else:
        top = -lung_height_mm / 2 + coverage / 2 + rng.uniform(-0.1, 0.1) * (wanted - coverage)
    bottom = top - coverage

    # Patient pose: roll about the long axis, small tilt of the torso axis, off-centre by a few cm.
    roll = np.deg2rad(rng.uniform(-cfg.max_rotation_deg, cfg.max_rotation_deg))
    tilt = np.tan(np.deg2rad(rng.uniform(-1.5, 1.5, size=2)))
    c, s = np.cos(roll), np.sin(roll)
    matrix = np.array([[c, -s, tilt[0]], [s, c, tilt[1]], [0.0, 0.0, 1.0]])
    apex_world_z = round(float(rng.uniform(-250.0, 150.0)), 1)
    centre = np.array([rng.normal(0.0, 10.0), rng.normal(0.0, 10.0), apex_world_z])
    frame = BodyFrame(centre, matrix)

    # Image plane: axial, occasionally rotated in-plane (an oblique ImageOrientationPatient).
    theta = np.deg2rad(rng.uniform(-8.0, 8.0)) if rng.random() < cfg.p_oblique else 0.0
    ct, st = _ds_round(float(np.cos(theta))), _ds_round(float(np.sin(theta)))
    direction = np.array([[ct, -st, 0.0], [st, ct, 0.0], [0.0, 0.0, 1.0]])
    # Re-normalise after rounding so the contract's orthonormality check holds to machine precision.
    direction[:, :2] /= np.linalg.norm(direction[:, :2], axis=0)
    # The FOV is centred near the isocentre; the patient lies a little off it.
    fov_centre = np.array([rng.normal(0.0, 6.0), rng.normal(15.0, 8.0)])
    half = (n_xy - 1) / 2 * pixel
    origin_xy = fov_centre - direction[:2, :2] @ np.array([half, half])
    origin_z = apex_world_z + bottom
    origin = tuple(_ds_round(round(float(v), 3)) for v in (*origin_xy, origin_z))
    # Body z of the slices follows from the rounded origin (world z = origin z + k * sz).
    z_first = origin[2] - apex_world_z
    return ScanGeometry(
        shape_zyx=(n_z, n_xy, n_xy),
        spacing_zyx_mm=(float(sz), pixel, pixel),
        origin_xyz_mm=origin,  # type: ignore[arg-type]
        direction=direction,
        slice_thickness_mm=thickness,
        fov_mm=n_xy * pixel,
        frame=frame,
        body_z_range_mm=(z_first, z_first + (n_z - 1) * sz),
    )


def coarse_count(n: int, step: int) -> int:
    """Samples at 0, step, 2 step, ... needed so that linear interpolation covers indices ``0..n-1``."""
    return -(-(n - 1) // step) + 1


def inplane_body_grid(volume: CTVolume, frame: BodyFrame, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Body x, y (mm) of every ``step``-th pixel of a slice at body z = 0.

    Samples sit at pixel rows/columns ``0, step, 2 step, ...`` up to the first one at or beyond the last
    pixel (``coarse_count``), so linear interpolation reaches every pixel.

    Returns:
        ``(bx, by)``, float32 arrays ``(coarse_count(ny, step), coarse_count(nx, step))``.  At body z ``bz``
        a slice's coordinates are ``bx + shift_x(bz)``, ``by + shift_y(bz)`` (see ``body_shift``), because
        the slice normal is the world z axis.
    """
    world, shape = _inplane_world_points(volume, step)
    # Shift world z so the slice sits at body z = 0; body x, y at other z come from body_shift.
    world[:, 2] = frame.centre_xyz_mm[2]
    body = frame.to_body(world)
    return body[:, 0].reshape(shape).astype(np.float32), body[:, 1].reshape(shape).astype(np.float32)


def inplane_world_grid(volume: CTVolume, step: int) -> tuple[np.ndarray, np.ndarray]:
    """World x, y (mm) of the same samples as ``inplane_body_grid`` (for scanner-fixed objects)."""
    world, shape = _inplane_world_points(volume, step)
    return world[:, 0].reshape(shape).astype(np.float32), world[:, 1].reshape(shape).astype(np.float32)


def _inplane_world_points(volume: CTVolume, step: int) -> tuple[np.ndarray, tuple[int, int]]:
    """World (x, y, z) mm ``(N, 3)`` of every ``step``-th pixel of slice 0, and the coarse grid shape."""
    _, ny, nx = volume.shape
    rows = np.arange(coarse_count(ny, step), dtype=np.float64) * step
    cols = np.arange(coarse_count(nx, step), dtype=np.float64) * step
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    zyx = np.stack([np.zeros_like(rr), rr, cc], axis=-1).reshape(-1, 3)
    return volume.voxel_to_world(zyx), rr.shape


def body_shift(frame: BodyFrame, body_z: np.ndarray) -> np.ndarray:
    """In-plane body shift ``(n, 2)`` of a fixed world (x, y) when moving from body z = 0 to ``body_z``.

    From ``world - centre = A @ body``: at a fixed world point, body xy moves by ``-R^T t bz`` with ``R`` the
    roll and ``t`` the shear column of ``A``.
    """
    rot = frame.matrix[:2, :2]
    t = frame.matrix[:2, 2]
    if frame.scale_xyz is None:
        return -np.outer(np.asarray(body_z, dtype=np.float64), rot.T @ t)
    # With the body scaled by s before A: world_xy - c = R (s_xy * b_xy) + t s_z b_z, so at a fixed world
    # point b_xy moves by -R^T t s_z b_z / s_xy.
    s = np.asarray(frame.scale_xyz, dtype=np.float64)
    return -np.outer(np.asarray(body_z, dtype=np.float64) * s[2], rot.T @ t) / s[:2]
