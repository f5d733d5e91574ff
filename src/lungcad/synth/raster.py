"""Rasterisation primitives: tapered capsules with partial-volume edges, and sub-voxel line splats.

Everything the phantom draws at full resolution (vessels, ribs, airways, great vessels, scars) is a chain of
tapered capsules.  Two rules keep it fast and physically sensible:

* **Bounding boxes only.**  A capsule's distance field is evaluated inside its own voxel box, never over
  the volume; capsules are processed in vectorised batches of similar box size (a Python loop over ~30,000
  vessel segments would cost more than the whole rendering).
* **Partial volume by box filtering.**  A voxel's occupancy is the fraction of its extent inside the
  surface, approximated from the signed distance ``sdf`` and the voxel's extent ``w`` along the surface
  normal ``n``: ``occ = clip(0.5 - sdf / w, 0, 1)`` with ``w = |n_z| s_z + |n_y| s_y + |n_x| s_x``.
  Worked example: a vessel wall 0.2 mm outside the centre of a 0.7 mm voxel, normal in-plane along x:
  ``occ = 0.5 + 0.2 / 0.7 = 0.79``.  On 2.5 mm slices the same wall seen along z gives ``0.5 + 0.2/2.5``,
  which is what slice-thickness partial volume does to small vessels and nodules.

Vessels thinner than a voxel are not drawn as capsules at all: their image is the scanner's point-spread
function applied to a line of mass, so they are splatted as ``pi r^2`` mm^3 per mm of length onto the
grid (trilinear weights) and the acquisition blur turns the line into a faint, correctly weighted vessel.
"""

from __future__ import annotations

import numpy as np

from lungcad.types import CTVolume

_BATCH_VOXELS = 1_500_000  # padded voxels per vectorised batch (~50 MB of float32 temporaries)


def to_grid_mm(volume: CTVolume, world_xyz: np.ndarray) -> np.ndarray:
    """World ``(N, 3)`` (x, y, z) mm -> grid millimetres ``(N, 3)`` (z, y, x) = voxel index x spacing.

    The grid-mm frame is the volume's voxel frame scaled to mm: it is a rotation of the world frame, so
    distances computed in it are world distances.
    """
    vox = volume.world_to_voxel(np.atleast_2d(np.asarray(world_xyz, dtype=np.float64)))
    return vox * np.asarray(volume.spacing_zyx_mm)


def capsule_boxes(
    volume: CTVolume, a: np.ndarray, b: np.ndarray, r_max: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Voxel boxes ``[lo, hi)`` ``(N, 3)`` around capsules ``a-b`` (grid mm) of radius ``r_max``, clipped."""
    sp = np.asarray(volume.spacing_zyx_mm)
    pad = (r_max[:, None] + sp[None, :]) / sp[None, :]
    lo = np.floor(np.minimum(a, b) / sp - pad).astype(np.int64)
    hi = np.ceil(np.maximum(a, b) / sp + pad).astype(np.int64) + 1
    shape = np.asarray(volume.shape)
    return np.clip(lo, 0, shape), np.clip(hi, 0, shape)


def render_capsules(
    volume: CTVolume,
    buffer: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    ra: np.ndarray,
    rb: np.ndarray,
) -> np.ndarray:
    """Max-combine the occupancy of tapered capsules into ``buffer`` (in place).

    Args:
        volume: supplies the grid (shape, spacing).
        buffer: float32 ``volume.shape`` occupancy in [0, 1].
        a, b: capsule end points ``(N, 3)`` in grid mm (z, y, x), see ``to_grid_mm``.
        ra, rb: radii (mm) at ``a`` and ``b`` ``(N,)``; the radius varies linearly along the axis.

    Returns:
        Flat indices of the voxels written (with repeats), for ``mix_into``.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 3)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 3)
    ra = np.broadcast_to(np.asarray(ra, dtype=np.float64), (len(a),))
    rb = np.broadcast_to(np.asarray(rb, dtype=np.float64), (len(a),))
    if len(a) == 0:
        return np.zeros(0, dtype=np.int64)
    lo, hi = capsule_boxes(volume, a, b, np.maximum(ra, rb))
    dims = hi - lo
    keep = np.flatnonzero(np.all(dims > 0, axis=1))
    # Batch capsules whose boxes have similar dimensions (each axis within a factor 1.25): a batch is
    # padded to its largest box per axis, and mixing a 4x20x5 box with a 20x4x5 one would pad both to 20x20x5.
    key = np.ceil(np.log(np.maximum(dims[keep], 1)) / np.log(1.25)).astype(np.int64)
    order = keep[np.lexsort((key[:, 2], key[:, 1], key[:, 0]))]
    key_of = dict(zip(keep.tolist(), map(tuple, key.tolist()), strict=True))
    touched = []
    start = 0
    while start < len(order):
        # Grow the batch while the key matches and the padded boxes stay within the voxel budget.
        stop = start + 1
        box = dims[order[start]].copy()
        while stop < len(order) and key_of[order[stop]] == key_of[order[start]]:
            nbox = np.maximum(box, dims[order[stop]])
            if int(np.prod(nbox)) * (stop - start + 1) > _BATCH_VOXELS:
                break
            box = nbox
            stop += 1
        idx = order[start:stop]
        touched.append(_render_batch(volume, buffer, a[idx], b[idx], ra[idx], rb[idx], lo[idx], box))
        start = stop
    return np.concatenate(touched) if touched else np.zeros(0, dtype=np.int64)


def _render_batch(
    volume: CTVolume,
    buffer: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    ra: np.ndarray,
    rb: np.ndarray,
    lo: np.ndarray,
    box: np.ndarray,
) -> np.ndarray:
    sp = np.asarray(volume.spacing_zyx_mm)
    shape = np.asarray(volume.shape)
    # Slide boxes that would cross the far edge back inside: the padded voxels then lie in the volume and
    # no validity mask is needed (their occupancy is computed like any other voxel's).
    lo = np.maximum(np.minimum(lo, shape - box), 0)
    box = np.minimum(box, shape)
    f32 = np.float32
    axis = (b - a).astype(f32)
    inv_len2 = (1.0 / np.maximum(np.sum(axis * axis, axis=1), 1e-12)).astype(f32)
    # Per-axis coordinates relative to a (M, D): the (M, Dz, Dy, Dx) arrays come from broadcasting.
    idx = [lo[:, k, None] + np.arange(box[k])[None, :] for k in range(3)]
    rel = [(idx[k] * sp[k] - a[:, k, None]).astype(f32) for k in range(3)]
    pz, py, px = rel[0][:, :, None, None], rel[1][:, None, :, None], rel[2][:, None, None, :]
    ez, ey, ex = (axis[:, k, None, None, None] for k in range(3))
    il = inv_len2[:, None, None, None]
    t = (pz * (ez * il) + py * (ey * il)) + px * (ex * il)
    np.clip(t, 0.0, 1.0, out=t)
    dz = pz - t * ez
    dy = py - t * ey
    dx = px - t * ex
    dist = dz * dz
    dist += dy * dy
    dist += dx * dx
    np.sqrt(dist, out=dist)
    # sdf = dist - r(t); the voxel extent along the normal is w / dist with w = sum |d_k| s_k.
    sdf = dist - (ra.astype(f32)[:, None, None, None] + t * (rb - ra).astype(f32)[:, None, None, None])
    np.abs(dz, out=dz)
    np.abs(dy, out=dy)
    np.abs(dx, out=dx)
    w = dz * f32(sp[0])
    w += dy * f32(sp[1])
    w += dx * f32(sp[2])
    # On the axis (dist -> 0) w / dist is undefined; any finite width gives occupancy 1 there when r > 0.
    w = np.maximum(w, f32(1e-6) * dist + f32(1e-9))
    occ = sdf * dist
    occ /= w
    np.subtract(f32(0.5), occ, out=occ)
    np.clip(occ, 0.0, 1.0, out=occ)
    m, iz, iy, ix = np.nonzero(occ)
    vals = occ[m, iz, iy, ix]
    flat = (idx[0][m, iz] * shape[1] + idx[1][m, iy]) * shape[2] + idx[2][m, ix]
    buf = buffer.reshape(-1)
    full = vals >= 1.0
    buf[flat[full]] = 1.0  # occupancy never exceeds 1, so 1 is the maximum whatever was there
    part = ~full
    np.maximum.at(buf, flat[part], vals[part].astype(buffer.dtype))
    return flat


def splat_segments(
    volume: CTVolume, buffer: np.ndarray, a: np.ndarray, b: np.ndarray, radius: np.ndarray
) -> np.ndarray:
    """Add the volume fraction of thin tubes ``a-b`` (grid mm) of ``radius`` mm to ``buffer`` (in place).

    Each tube deposits ``pi r^2`` mm^3 per mm of length, sampled every half voxel and spread with trilinear
    weights, divided by the voxel volume: the sum over the grid equals the tube's volume in voxels.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 3)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 3)
    if len(a) == 0:
        return np.zeros(0, dtype=np.int64)
    sp = np.asarray(volume.spacing_zyx_mm)
    length = np.linalg.norm(b - a, axis=1)
    n = np.maximum(1, np.ceil(length / (0.5 * sp.min())).astype(np.int64))
    seg = np.repeat(np.arange(len(a)), n)
    # Sample at the centres of n equal pieces so each piece carries its own share of the mass.
    first = np.repeat(np.cumsum(n) - n, n)
    frac = (np.arange(seg.size) - first + 0.5) / n[seg]
    pts = a[seg] + frac[:, None] * (b - a)[seg]
    mass = (np.pi * np.asarray(radius, dtype=np.float64) ** 2 * length / n)[seg] / float(np.prod(sp))
    g = pts / sp
    base = np.floor(g).astype(np.int64)
    f = g - base
    shape = np.asarray(volume.shape)
    buf = buffer.reshape(-1)
    touched = []
    for corner in range(8):
        off = np.array([(corner >> 2) & 1, (corner >> 1) & 1, corner & 1])
        w = np.prod(np.where(off == 1, f, 1.0 - f), axis=1) * mass
        c = base + off
        ok = np.all((c >= 0) & (c < shape), axis=1) & (w > 0)
        flat = (c[ok, 0] * shape[1] + c[ok, 1]) * shape[2] + c[ok, 2]
        np.add.at(buf, flat, w[ok].astype(buffer.dtype))
        touched.append(flat)
    return np.concatenate(touched)


def mix_into(volume: CTVolume, buffer: np.ndarray, touched: np.ndarray, value_hu: float) -> None:
    """Blend ``value_hu`` into ``volume.hu`` by the occupancy in ``buffer`` at ``touched``; clear them.

    ``hu <- hu + min(occ, 1) * (value - hu)``: a voxel half filled by a vessel of +40 HU in lung of -850 HU
    becomes -405 HU.  The scratch ``buffer`` is left all zero for the next structure.  ``touched`` may
    repeat indices: every copy of an index reads the same old HU and occupancy and so writes the same
    value, which makes de-duplication (a sort of millions of indices) unnecessary.
    """
    buf = buffer.reshape(-1)
    hu = volume.hu.reshape(-1)
    occ = np.minimum(buf[touched], np.float32(1.0))
    old = hu[touched]
    hu[touched] = old + occ * (np.float32(value_hu) - old)
    buf[touched] = 0.0
