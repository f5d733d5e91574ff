"""Render the smooth anatomy (tissues, organs, spine, sternum, scapulae, table) on a coarse grid.

Why coarse: the large structures are smooth at the scale of a millimetre, so they are evaluated on every
2nd pixel in-plane (and every 2nd slice below 0.95 mm spacing) and linearly interpolated to the scan grid.
For a 512 x 512 x 300 scan that is 4x fewer evaluations of ~150 operations per voxel; the interpolation
costs 6 operations per voxel.  Edges soften over ~1.4 mm, comparable to the scanner's own blur.  Everything
whose edge matters for nodule detection (vessels, airways, ribs, nodules, scars) is drawn at full
resolution afterwards, by the capsule rasteriser.

Worked example of the layers at mid-chest, lateral: skin at 170 mm from the axis, 15 mm of fat, 17 mm of
muscle with the ribs in it, 2 mm of extrapleural fat, then the parietal pleura and lung.
"""

from __future__ import annotations

import numpy as np

from lungcad.synth import anatomy as an
from lungcad.synth.anatomy import Anatomy
from lungcad.synth.geometry import (
    ScanGeometry,
    body_shift,
    coarse_count,
    inplane_body_grid,
    inplane_world_grid,
)
from lungcad.types import CTVolume

_SLAB = 8  # coarse slices evaluated together (bounds the float32 temporaries to ~20 MB each)
FISSURE_THICKNESS_MM = 0.35
COARSE_MM = 1.6  # target spacing of the coarse anatomy grid


def _lung_texture(rng: np.random.Generator, bx: np.ndarray, by: np.ndarray) -> list[tuple[np.ndarray, ...]]:
    """Low-frequency parenchymal texture: a few plane waves, each split as cos(P) / sin(P) for z stepping.

    The waves are fixed to the image grid rather than the body; nothing could tell the difference.
    """
    waves = []
    for amp, lam in ((15.0, 45.0), (12.0, 28.0), (10.0, 18.0), (8.0, 11.0)):
        k = 2 * np.pi / lam
        theta, phi = rng.uniform(0, 2 * np.pi), rng.uniform(-1.2, 1.2)
        kx, ky, kz = k * np.cos(theta) * np.cos(phi), k * np.sin(theta) * np.cos(phi), k * np.sin(phi)
        p = kx * bx + ky * by + rng.uniform(0, 2 * np.pi)
        waves.append(((amp * np.cos(p)).astype(np.float32), (amp * np.sin(p)).astype(np.float32), kz))
    return waves


def _table(
    volume: CTVolume, geom: ScanGeometry, anat: Anatomy, step: int, rng: np.random.Generator
) -> np.ndarray:
    """A curved carbon-fibre table (two thin shells around a foam core), fixed in the world; NaN = none."""
    wx, wy = inplane_world_grid(volume, step)
    centre = geom.frame.centre_xyz_mm
    top = centre[1] + anat.half_depth_post + rng.uniform(4.0, 25.0)
    surface = top - 0.0012 * (wx - centre[0]) ** 2
    d = wy - surface
    out = np.full(wx.shape, np.nan, dtype=np.float32)
    core = (d > 0) & (d < 40.0) & (np.abs(wx - centre[0]) < 240.0)
    out[core] = -930.0
    shell = core & ((d < 1.6) | (d > 38.0))
    out[shell] = 250.0
    pad = (d <= 0) & (d > -4.0) & (np.abs(wx - centre[0]) < 230.0)
    out[pad] = -750.0  # a thin mattress
    return out


def _crop(mask: np.ndarray, pad: int = 1) -> tuple[slice, slice] | None:
    """Row and column slices of a slab ``(nz, ny, nx)`` holding every True pixel of any slice (+pad)."""
    rows = np.flatnonzero(mask.any(axis=(0, 2)))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=(0, 1)))
    return (
        slice(max(int(rows[0]) - pad, 0), int(rows[-1]) + pad + 1),
        slice(max(int(cols[0]) - pad, 0), int(cols[-1]) + pad + 1),
    )


def _paint_slab(
    anat: Anatomy,
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    texture: list[tuple[np.ndarray, ...]],
    table: np.ndarray,
    coarse_mm: float,
) -> np.ndarray:
    """HU of the smooth anatomy on a coarse slab; ``x, y`` ``(nz, ny, nx)`` body mm, ``z`` ``(nz, 1, 1)``.

    Work is confined to nested crops: the body's bounding box, then the cavity's, then each bone's.
    """
    f32 = np.float32
    a0, ba0, bp0 = anat.body_axes(z)
    body = an.outline_g(x, y, a0, ba0, bp0) < 1
    breasts = []
    if anat.female:
        cz, rz = -0.52 * anat.lung_height, 0.17 * anat.lung_height
        if float(z.min()) < cz + rz and float(z.max()) > cz - rz:
            # Breasts: fat with a glandular core, protruding from the anterior chest wall at mid-chest.
            for sgn in (-1.0, 1.0):
                rx, ry = 0.27 * anat.half_width, 40.0
                g = (
                    ((x - sgn * 0.42 * anat.half_width) / rx) ** 2
                    + ((y + ba0 - 8.0) / ry) ** 2
                    + ((z - cz) / rz) ** 2
                )
                breasts.append(g)
                body |= g < 1
    hu = np.full(x.shape, an.HU_AIR, dtype=np.float32)
    crop = _crop(body)
    if crop is not None:
        rs, cs = crop
        xb, yb = x[:, rs, cs], y[:, rs, cs]
        hb = np.where(body[:, rs, cs], f32(an.HU_FAT), f32(an.HU_AIR))
        for g in breasts:
            hb = np.where(g[:, rs, cs] < 0.3, f32(-10.0), hb)
        # Skin: the outer 2 mm of the torso outline.
        skin = (an.outline_g(xb, yb, a0 - 2.0, ba0 - 2.0, bp0 - 2.0) >= 1) & (hb > an.HU_AIR)
        hb = np.where(skin, f32(30.0), hb)
        am, bam, bpm = anat.muscle_axes(z)
        hb = np.where(an.outline_g(xb, yb, am, bam, bpm) < 1, f32(an.HU_MUSCLE), hb)
        ac, bac, bpc = anat.cavity_axes(z)
        # Extrapleural fat: a thin dark stripe between the ribs' muscle and the parietal pleura.
        hb = np.where(an.outline_g(xb, yb, ac + 2.0, bac + 2.0, bpc + 2.0) < 1, f32(an.HU_FAT), hb)
        cavity = an.outline_g(xb, yb, ac, bac, bpc) < 1
        ccrop = _crop(cavity)
        if ccrop is not None:
            r2, c2 = ccrop
            tex = [(cp[rs, cs][r2, c2], sp[rs, cs][r2, c2], kz) for cp, sp, kz in texture]
            inner = _paint_cavity(anat, xb[:, r2, c2], yb[:, r2, c2], z, tex, coarse_mm, (ac, bac, bpc))
            hb[:, r2, c2] = np.where(cavity[:, r2, c2], inner, hb[:, r2, c2])
        hb = _paint_bones(anat, xb, yb, z, hb, (ac, bac, bpc))
        hu[:, rs, cs] = hb
    return np.where(np.isnan(table)[None] | (hu > an.HU_AIR), hu, table[None]).astype(np.float32)


def _paint_cavity(
    anat: Anatomy,
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    texture: list[tuple[np.ndarray, ...]],
    coarse_mm: float,
    cavity_axes: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> np.ndarray:
    """Inside the cavity: mediastinal fat, then heart, esophagus, abdomen below the domes, lungs."""
    f32 = np.float32
    ac, bac, bpc = cavity_axes
    u = anat.level(z)
    zmin, zmax = float(z.min()), float(z.max())
    inner = np.full(x.shape, -90.0, dtype=np.float32)
    hs = None
    if anat.heart_overlaps(zmin, zmax):
        hs = anat.heart_sdf(x, y, z)
        inner = np.where(hs < 0, f32(anat.blood_hu if anat.contrast else an.HU_BLOOD), inner)
        if anat.contrast:
            inner = np.where((hs < 0) & (hs > -7.0), f32(100.0), inner)  # myocardium around enhanced blood
    sy, sr = anat.spine_y(z), anat.spine_r(z)
    eso = (x - 6.0) ** 2 + (y - (sy - sr - 9.0)) ** 2 < 64.0
    inner = np.where(eso & (u > -0.1) & (u < 1.05), f32(35.0), inner)
    if zmin < anat.dome_top_z() + 1.0:
        zd, _ = anat.dome_z(x, y, z)
        below = z < zd
        if hs is not None:
            below &= hs >= 0
        liver_hu = an.HU_LIVER + (45.0 if anat.contrast else 0.0)
        spleen_hu = an.HU_SPLEEN + (60.0 if anat.contrast else 0.0)
        liver = x < 0.12 * ac - 0.45 * ac * (y / bac)
        abdomen = np.where(liver, f32(liver_hu), f32(-55.0))
        st_x, st_y = 0.3 * ac, -0.15 * bac
        stomach = (((x - st_x) / (0.3 * ac)) ** 2 + ((y - st_y) / (0.45 * bac)) ** 2 < 1) & ~liver
        abdomen = np.where(stomach, f32(25.0), abdomen)
        if anat.stomach_gas:
            # Supine: gas rises anteriorly, with an air-fluid level parallel to the table.
            abdomen = np.where(stomach & (y < st_y - 0.1 * bac), f32(an.HU_AIR), abdomen)
        spleen = ((x - 0.62 * ac) / (0.2 * ac)) ** 2 + ((y - 0.45 * bpc) / (0.35 * bpc)) ** 2 < 1
        abdomen = np.where(spleen, f32(spleen_hu), abdomen)
        inner = np.where(below, abdomen, inner)
    sdf, _ = anat.lung_sdf(x, y, z)
    lung = sdf < 0
    if not lung.any():
        return inner
    depth = np.clip((y + bac) / (bac + bpc), 0.0, 1.0)
    lung_hu = f32(anat.lung_hu) + f32(anat.lung_gradient_hu) * depth
    zz = z.reshape(-1)
    for cos_p, sin_p, kz in texture:
        cz = np.cos(kz * zz).astype(np.float32)[:, None, None]
        sz = np.sin(kz * zz).astype(np.float32)[:, None, None]
        lung_hu += cos_p[None] * cz - sin_p[None] * sz
    # Fissures: a sheet thinner than a voxel deposits its mass (thickness / extent) over one extent.
    fd = anat.fissure_distance(x, y, z)
    width = 1.5 * coarse_mm
    lung_hu += (an.HU_MUSCLE - lung_hu) * (FISSURE_THICKNESS_MM / width) * np.clip(1.0 - fd / width, 0, 1)
    return np.where(lung, lung_hu, inner)


def _paint_bones(
    anat: Anatomy,
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    hu: np.ndarray,
    cavity_axes: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> np.ndarray:
    """Spine (bodies, discs, canal, arch, processes), sternum and scapulae, each within its own crop."""
    f32 = np.float32
    ac, bac, bpc = cavity_axes
    u = anat.level(z)
    bone, cortex = f32(anat.bone_hu), f32(2.6 * anat.bone_hu)
    sy, sr = anat.spine_y(z), anat.spine_r(z)
    crop = _crop((np.abs(x) < sr + 30.0) & (y > sy - sr - 3.0) & (y < sy + sr + 50.0))
    if crop is not None:
        rs, cs = crop
        xs, ys, h = x[:, rs, cs], y[:, rs, cs], hu[:, rs, cs]
        # Paraspinal muscles fill the midline behind the vertebral body.
        h = np.where(
            (np.abs(xs) < sr + 10.0) & (ys > sy) & (h > an.HU_AIR + 1) & (h < 60), f32(an.HU_MUSCLE), h
        )
        d = np.sqrt(xs * xs + (ys - sy) ** 2)
        phase = np.mod(z - anat.vertebra_phase_mm, anat.vertebra_height_mm) / anat.vertebra_height_mm
        disc = phase < 0.2
        body = np.where(d > sr - 1.8, cortex, np.where(disc, f32(an.HU_DISC), bone))
        body = np.where(disc & (d > sr - 1.8), f32(an.HU_DISC + 40.0), body)
        h = np.where(d < sr, body, h)
        cy = sy + sr + 8.0
        dc = np.sqrt(xs * xs + (ys - cy) ** 2)
        arch = (dc >= 7.5) & (dc < 12.0) & (ys > cy - 4.0)
        # Transverse processes angle back ~30 degrees from the pedicles; the spinous process points back.
        tx = np.abs(xs) - 6.0
        ty = ys - cy - 0.5 * tx
        transverse = (tx > 0) & (tx < 22.0) & (np.abs(ty) < 4.5)
        spinous = ((xs / 3.5) ** 2 + ((ys - cy - 22.0) / 12.0) ** 2) < 1
        h = np.where((arch | transverse | spinous) & ~disc, f32(1.8 * anat.bone_hu), h)
        h = np.where(dc < 7.5, f32(an.HU_CSF), h)
        hu[:, rs, cs] = h
    # Sternum: manubrium (wider) then body, in the anterior chest wall down to the xiphoid.
    if float(u.min()) < 0.72 and float(u.max()) > -0.02:
        st_w = 13.0 + 10.0 * (1.0 - an.smoothstep(u, 0.06, 0.16))
        st_y = -bac - 7.0
        crop = _crop((np.abs(x) < 25.0) & (np.abs(y - st_y) < 8.0))
        if crop is not None:
            rs, cs = crop
            xs, ys, h = x[:, rs, cs], y[:, rs, cs], hu[:, rs, cs]
            g_out = (xs / st_w) ** 4 + ((ys - st_y) / 6.0) ** 2
            g_in = (xs / (st_w - 2.0)) ** 4 + ((ys - st_y) / 4.2) ** 2
            in_range = (u > -0.02) & (u < 0.72)
            hu[:, rs, cs] = np.where(in_range & (g_out < 1), np.where(g_in < 1, bone, cortex), h)
    # Scapulae: thin curved plates ~11-17 mm outside the posterior-lateral cavity wall.
    if float(u.min()) < 0.5 and float(u.max()) > -0.2:
        crop = _crop((y > 0.1 * bpc) & (np.abs(x) > 0.3 * ac))
        if crop is not None:
            rs, cs = crop
            xs, ys, h = x[:, rs, cs], y[:, rs, cs], hu[:, rs, cs]
            outer = an.outline_g(xs, ys, ac + 17.0, bac + 17.0, bpc + 17.0) < 1
            inner = an.outline_g(xs, ys, ac + 11.0, bac + 11.0, bpc + 11.0) < 1
            lateral = np.abs(xs) > (0.3 + 0.4 * an.smoothstep(u, 0.25, 0.5)) * ac
            plate = outer & ~inner & lateral & (ys > 0.1 * bpc) & (np.abs(xs) < 0.85 * ac)
            plate &= (u > -0.2) & (u < 0.5)
            hu[:, rs, cs] = np.where(plate, f32(1.6 * anat.bone_hu), h)
    return hu


def upsample_linear(coarse: np.ndarray, step: int, n: int, axis: int) -> np.ndarray:
    """Linear interpolation of samples at ``0, step, 2 step, ...`` onto indices ``0..n-1`` along ``axis``."""
    if step == 1:
        return np.take(coarse, np.arange(n), axis=axis)
    c = np.moveaxis(coarse, axis, 0)
    out = np.empty((n, *c.shape[1:]), dtype=np.float32)
    for phase in range(step):
        count = len(range(phase, n, step))
        alpha = np.float32(phase / step)
        if phase == 0:
            out[0::step] = c[:count]
        else:
            out[phase::step] = c[:count] * (1 - alpha) + c[1 : count + 1] * alpha
    return np.moveaxis(out, 0, axis)


def render_anatomy(volume: CTVolume, geom: ScanGeometry, anat: Anatomy, rng: np.random.Generator) -> None:
    """Fill ``volume.hu`` (in place) with the smooth anatomy, interpolated from a coarse grid."""
    nz, ny, nx = volume.shape
    sz, sy, _ = volume.spacing_zyx_mm
    fxy = max(1, int(round(COARSE_MM / sy)))
    fz = max(1, int(round(COARSE_MM / sz)))
    bx, by = inplane_body_grid(volume, geom.frame, fxy)
    texture = _lung_texture(rng, bx, by)
    table = _table(volume, geom, anat, fxy, rng)
    nzc = coarse_count(nz, fz)
    z_first = geom.body_z_range_mm[0]
    zc = z_first + np.arange(nzc) * fz * geom.body_z_step_mm()
    shift = body_shift(geom.frame, zc).astype(np.float32)
    coarse = np.empty((nzc, *bx.shape), dtype=np.float32)
    coarse_mm = float(np.mean([sy * fxy, sz * fz]))
    for s in range(0, nzc, _SLAB):
        e = min(nzc, s + _SLAB)
        x = bx[None] + shift[s:e, 0, None, None]
        y = by[None] + shift[s:e, 1, None, None]
        z = zc[s:e].astype(np.float32)[:, None, None]
        coarse[s:e] = _paint_slab(anat, x, y, z, texture, table, coarse_mm)
    # Interpolate slab by slab (z first, then rows, then columns) straight into the volume.
    for s in range(0, nz, 32):
        e = min(nz, s + 32)
        c0 = s // fz
        part = coarse[c0 : min(nzc, (e - 1) // fz + 2)]
        zpart = upsample_linear(part, fz, e - c0 * fz, 0)[s - c0 * fz :]
        rows = upsample_linear(zpart, fxy, ny, 1)
        volume.hu[s:e] = upsample_linear(rows, fxy, nx, 2)
