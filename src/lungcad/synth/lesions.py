"""Rasterise nodules into the volume and the label mask, inside each nodule's own bounding box.

A nodule is a union of signed-distance shapes (core ellipsoid, lobes, tapered spicules) evaluated on the
scan grid in millimetres; occupancy uses the same box filter as the capsules (``raster``), widened by a soft
margin for ground glass.  Compositing takes the brighter of "nodule mixed in" and "what was there":

    hu <- max(hu, hu + occ * (nodule_hu - hu))

so a ground-glass nodule (-550 HU) raises the lung around it but a vessel (+40 HU) running through it stays
visible, as on real scans; a solid nodule against the chest wall blends into the wall.  The label is the
occupancy >= 0.5 clipped to the lung (a juxtapleural nodule's part beyond the pleura is chest wall).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lungcad.synth.anatomy import Anatomy
from lungcad.synth.geometry import BodyFrame
from lungcad.synth.nodules import NoduleSpec
from lungcad.synth.raster import to_grid_mm
from lungcad.types import CTVolume, Texture

SPICULE_TIP_MM = 0.15


@dataclass(frozen=True)
class RenderedLesion:
    """Where a lesion was drawn: its voxel box, occupancy there (clipped to the lung) and its label."""

    box: tuple[slice, slice, slice]
    occupancy: np.ndarray  # float32, box shape
    label: int
    voxels: int  # labelled voxels


def _ellipsoid_sdf(p: list[np.ndarray], axes: np.ndarray, semi: np.ndarray) -> np.ndarray:
    """Approximate signed distance to an ellipsoid with unit axis vectors ``axes`` (3 x zyx)."""
    q = [(p[0] * axes[i][0] + p[1] * axes[i][1] + p[2] * axes[i][2]) / semi[i] for i in range(3)]
    g = q[0] * q[0] + q[1] * q[1] + q[2] * q[2]
    grad = 2.0 * np.sqrt((q[0] / semi[0]) ** 2 + (q[1] / semi[1]) ** 2 + (q[2] / semi[2]) ** 2)
    sg = np.sqrt(g)
    return (sg - 1.0) * 2.0 * sg / np.maximum(grad, 1e-6)


def _sphere_sdf(p: list[np.ndarray], centre: np.ndarray, r: float) -> np.ndarray:
    return np.sqrt((p[0] - centre[0]) ** 2 + (p[1] - centre[1]) ** 2 + (p[2] - centre[2]) ** 2) - r


def _cone_sdf(p: list[np.ndarray], a: np.ndarray, b: np.ndarray, ra: float, rb: float) -> np.ndarray:
    d = b - a
    t = ((p[0] - a[0]) * d[0] + (p[1] - a[1]) * d[1] + (p[2] - a[2]) * d[2]) / max(float(d @ d), 1e-9)
    t = np.clip(t, 0.0, 1.0)
    dist = np.sqrt(
        (p[0] - a[0] - t * d[0]) ** 2 + (p[1] - a[1] - t * d[1]) ** 2 + (p[2] - a[2] - t * d[2]) ** 2
    )
    return dist - (ra + t * (rb - ra))


def _extent(spec: NoduleSpec) -> float:
    r = float(spec.semi_axes.max())
    for off, rad in spec.lobes:
        r = max(r, float(np.linalg.norm(off)) + rad)
    for _, end, _ in spec.spicules:
        r = max(r, float(np.linalg.norm(end)) + 1.0)
    return r + spec.soft_margin_mm + 1.0


def render_lesion(
    volume: CTVolume,
    label: np.ndarray,
    frame: BodyFrame,
    anat: Anatomy,
    spec: NoduleSpec,
    value: int,
    rng: np.random.Generator,
) -> RenderedLesion | None:
    """Draw ``spec`` into ``volume.hu`` and ``label`` (value ``value``); ``None`` if it misses the grid."""
    sp = np.asarray(volume.spacing_zyx_mm)
    world_c = frame.to_world(spec.centre)

    def grid_vec(v: np.ndarray) -> np.ndarray:
        """A body-frame vector in grid mm (z, y, x): the frame and the grid differ by a rotation."""
        if frame.scale_xyz is not None:  # a nodule is solid tissue: it does not inflate with the lungs
            end = world_c + frame.matrix @ np.asarray(v, dtype=np.float64)
            return to_grid_mm(volume, end[None])[0] - to_grid_mm(volume, world_c[None])[0]
        return (
            to_grid_mm(volume, frame.to_world(spec.centre + v)[None])[0]
            - to_grid_mm(volume, world_c[None])[0]
        )

    c = to_grid_mm(volume, world_c[None])[0]
    ext = _extent(spec)
    shape = np.asarray(volume.shape)
    lo = np.clip(np.floor((c - ext) / sp).astype(int) - 1, 0, shape)
    hi = np.clip(np.ceil((c + ext) / sp).astype(int) + 2, 0, shape)
    if np.any(hi <= lo):
        return None
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    p = [
        ((np.arange(lo[k], hi[k]) * sp[k] - c[k]).astype(np.float32)).reshape(
            [-1 if j == k else 1 for j in range(3)]
        )
        for k in range(3)
    ]
    axes = np.stack([grid_vec(spec.rotation[:, i]) for i in range(3)])
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    sdf = _ellipsoid_sdf(p, axes, spec.semi_axes)
    for off, rad in spec.lobes:
        sdf = np.minimum(sdf, _sphere_sdf(p, grid_vec(off), rad))
    for start, end, rad in spec.spicules:
        sdf = np.minimum(sdf, _cone_sdf(p, grid_vec(start), grid_vec(end), rad, SPICULE_TIP_MM))
    # Box filter along the radial direction (the surface normal of a round lesion).
    dist = np.sqrt(p[0] ** 2 + p[1] ** 2 + p[2] ** 2)
    width = (np.abs(p[0]) * sp[0] + np.abs(p[1]) * sp[1] + np.abs(p[2]) * sp[2]) / np.maximum(dist, 1e-6)
    width = np.where(dist > 1e-6, width, np.float32(sp.mean())) + np.float32(spec.soft_margin_mm)
    occ = np.clip(0.5 - sdf / width, 0.0, 1.0).astype(np.float32)

    hu = _lesion_hu(spec, p, grid_vec, rng, occ.shape)
    # Clip to the lung: the part of a juxtapleural nodule beyond the pleura is not nodule.
    idx = np.stack(np.meshgrid(*[np.arange(lo[k], hi[k]) for k in range(3)], indexing="ij"), axis=-1).reshape(
        -1, 3
    )
    body = frame.to_body(volume.voxel_to_world(idx.astype(np.float64)))
    lung_sdf, _ = anat.lung_sdf(body[:, 0], body[:, 1], body[:, 2])
    occ *= (lung_sdf.reshape(occ.shape) < 0.5).astype(np.float32)
    target = volume.hu[box]
    volume.hu[box] = np.maximum(target, target + occ * (hu - target))
    mask = occ >= 0.5
    # A lesion smaller than a voxel (a 3 mm nodule in 3.5 x 3.5 x 5 mm voxels) still owns the voxel that
    # holds its centre, so every listed centre lies inside its label.
    centre_vox = tuple(int(v) for v in np.floor(c / sp + 0.5).astype(int) - lo)
    if all(0 <= v < n for v, n in zip(centre_vox, occ.shape, strict=True)) and occ[centre_vox] > 0:
        mask[centre_vox] = True
    mask &= label[box] == 0
    label[box][mask] = value
    return RenderedLesion(box, occ, value, int(mask.sum()))


def _lesion_hu(
    spec: NoduleSpec, p: list[np.ndarray], grid_vec, rng: np.random.Generator, shape: tuple
) -> np.ndarray:
    """HU inside the lesion: base texture, mild heterogeneity, solid core or calcification."""
    r = 0.5 * spec.diameter_mm
    # Low-frequency heterogeneity: one plane wave, +-25 HU in solid nodules, +-40 HU in ground glass.
    k = rng.normal(size=3)
    k *= 2 * np.pi / rng.uniform(4.0, 9.0) / np.linalg.norm(k)
    amp = 40.0 if spec.texture in (Texture.GROUND_GLASS, Texture.PART_SOLID) else 25.0
    hu = (spec.hu + amp * np.cos(k[0] * p[0] + k[1] * p[1] + k[2] * p[2] + rng.uniform(0, 6.3))).astype(
        np.float32
    )
    hu = np.broadcast_to(hu, shape).copy()
    if spec.texture == Texture.PART_SOLID or spec.calcification == "central":
        off = grid_vec(rng.normal(0, 0.15 * r, 3))
        core = np.clip(0.5 - _sphere_sdf(p, off, spec.core_fraction * r) / 0.7, 0.0, 1.0)
        hu += core * (np.float32(spec.core_hu) - hu)
    elif spec.calcification == "popcorn":
        for _ in range(int(rng.integers(3, 7))):
            off = grid_vec(rng.normal(0, 0.35 * r, 3))
            blob = np.clip(0.5 - _sphere_sdf(p, off, rng.uniform(0.15, 0.28) * r) / 0.7, 0.0, 1.0)
            hu += blob * (np.float32(spec.core_hu) - hu)
    if spec.necrosis_fraction > 0:  # masses only: no draw here for nodules, so their cohorts are unchanged
        off = grid_vec(rng.normal(0, 0.1 * r, 3))
        core = np.clip(0.5 - _sphere_sdf(p, off, spec.necrosis_fraction * r) / 2.0, 0.0, 1.0)
        hu += core * (np.float32(spec.necrosis_hu) - hu)
    return hu
