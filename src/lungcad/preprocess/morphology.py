"""Exact fast binary morphology and labelling for the lung mask's coarse (z, y, x) grid.

Every function returns bitwise what the ``scipy.ndimage`` formulation named in its docstring returns
(tests/preprocess/test_morphology.py checks each against it on random masks), at a fraction of the
cost: on LIDC-IDRI-0001's 133 x 128 x 128 grid the 10 mm ball closing through two Euclidean distance
transforms took ~0.12 s of CPU, the shifted bit-plane ORs here ~2 ms; cc3d labels 2-4x faster than
``ndimage.label``.

Why the ball operations are exact: ``distance_transform_edt(~m, sampling) <= r`` is the dilation of
``m`` by the lattice ball ``B = {d : dist(d) <= r}`` and ``distance_transform_edt(m) > r`` its erosion,
where ``dist`` is scipy's own float64 formula ``sqrt(((dz*sz)**2 + (dy*sy)**2) + (dx*sx)**2)``; ``B`` is
computed with that formula here, so even a tie (4 x 2.5 mm = 10 mm) falls on the same side.
"""

from __future__ import annotations

import functools

import cc3d
import numpy as np


def label6(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Face-connected components: ``ndimage.label(mask)``, same numbering, unsigned dtype.

    Both number components by their first voxel in C order (cc3d relabels in memory order, so the
    input must be C-contiguous, which ``ascontiguousarray`` ensures).
    """
    labels, n = cc3d.connected_components(
        np.ascontiguousarray(mask, dtype=bool), connectivity=6, return_N=True
    )
    return labels, int(n)


def label_inplane(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Components connected within each axial slice: ``ndimage.label(mask, structure=INPLANE)``.

    The slices are stacked into one 2-D image with an empty row between them, so one 4-connected
    labelling numbers the components in the same C order as scipy.  Returns a (z, y, x) view.
    """
    nz, ny, nx = mask.shape
    stacked = np.zeros((nz, ny + 1, nx), dtype=bool)
    stacked[:, :ny] = mask
    labels, n = cc3d.connected_components(stacked.reshape(nz * (ny + 1), nx), connectivity=4, return_N=True)
    return labels.reshape(nz, ny + 1, nx)[:, :ny], int(n)


def counts(labels: np.ndarray, n: int, mask: np.ndarray) -> np.ndarray:
    """Voxels per label ``1..n`` of the components ``labels`` of ``mask`` (entry 0 is 0, not the
    background's count): ``np.bincount`` of the foreground only, up to 4x faster on sparse masks."""
    return np.bincount(labels[mask.astype(bool, copy=False)], minlength=n + 1)


def bbox(mask: np.ndarray) -> tuple[slice, slice, slice] | None:
    """The bounding box of ``mask`` as slices, or ``None`` when it is empty."""
    nz = [np.nonzero(mask.any(axis=tuple(a for a in range(3) if a != ax)))[0] for ax in range(3)]
    if nz[0].size == 0:
        return None
    return tuple(slice(int(i[0]), int(i[-1]) + 1) for i in nz)  # type: ignore[return-value]


def close_cube3_nearest(mask: np.ndarray) -> np.ndarray:
    """3 x 3 x 3 closing: ``maximum_filter1d`` then ``minimum_filter1d`` (size 3, ``mode="nearest"``)
    along z, y and x of ``mask.view(uint8)``, as bool.

    ``nearest`` replicates the face, which adds no new value to a max or min of three: each pass is the
    OR (AND) of a voxel and its in-range neighbours along the axis.
    """
    out = mask.copy()
    for op in (np.logical_or, np.logical_and):
        for axis in range(3):
            src = out.copy()
            lo = tuple(slice(None, -1) if a == axis else slice(None) for a in range(3))
            hi = tuple(slice(1, None) if a == axis else slice(None) for a in range(3))
            op(out[hi], src[lo], out=out[hi])
            op(out[lo], src[hi], out=out[lo])
    return out


@functools.lru_cache(maxsize=32)
def ball_rows(radius_mm: float, spacing: tuple[float, float, float]) -> tuple[tuple[int, int, int], ...]:
    """The lattice ball ``{d : dist(d) <= radius_mm}`` as rows ``(dz, dy, w)``: offsets ``|dx| <= w``.

    ``dist`` is evaluated exactly as ``distance_transform_edt`` evaluates it (float64 offset times
    spacing, squared, summed z + y then + x, square root).  Each row is an interval in x because the
    float distance grows monotonically with ``|dx|``.
    """
    if not radius_mm >= 0:
        raise ValueError(f"ball radius must be >= 0 mm, got {radius_mm}")
    ext = [int(radius_mm / float(s)) + 1 for s in spacing]
    sz, sy, sx = (np.float64(s) for s in spacing)
    dz = np.arange(-ext[0], ext[0] + 1).astype(np.float64)[:, None, None] * sz
    dy = np.arange(-ext[1], ext[1] + 1).astype(np.float64)[None, :, None] * sy
    dx = np.arange(-ext[2], ext[2] + 1).astype(np.float64)[None, None, :] * sx
    inside = np.sqrt((dz * dz + dy * dy) + dx * dx) <= radius_mm
    rows = []
    for iz, iy in zip(*np.nonzero(inside.any(axis=2)), strict=True):
        w = int(np.abs(np.nonzero(inside[iz, iy])[0] - ext[2]).max())
        rows.append((int(iz) - ext[0], int(iy) - ext[1], w))
    return tuple(rows)


def _ball_op(mask: np.ndarray, rows: tuple[tuple[int, int, int], ...], dilate: bool) -> np.ndarray:
    """Dilation (``dilate``) or erosion of bool (z, y, x) ``mask`` by the ball ``rows``; outside is False.

    x runs of each half-width are built on bool voxels, packed to bits along x (whole bytes per row),
    and the (dz, dy) shifts become flat byte offsets: an OR / AND of 1/8 of the volume per row.
    """
    nz, ny, nx = mask.shape
    ez = max(abs(r[0]) for r in rows)
    ey = max(abs(r[1]) for r in rows)
    ex = max(r[2] for r in rows)
    zp, yp = nz + 2 * ez, ny + 2 * ey
    xp = -(-(nx + 2 * ex) // 8) * 8
    padded = np.zeros((zp, yp, xp), dtype=bool)
    padded[ez : ez + nz, ey : ey + ny, ex : ex + nx] = mask
    flat = padded.ravel()
    op = np.logical_or if dilate else np.logical_and
    runs = [flat]
    # runs[w][i] = op over flat[i-w .. i+w]: positions near a row's end read the x padding (False)
    for w in range(1, ex + 1):
        run = runs[-1].copy()
        op(run[w:], flat[:-w], out=run[w:])
        op(run[:-w], flat[w:], out=run[:-w])
        runs.append(run)
    packed = [np.packbits(run) for run in runs]
    row = xp // 8
    lo = (ez * yp + ey) * row
    hi = ((ez + nz - 1) * yp + ey + ny) * row
    out = np.full(packed[0].size, 0 if dilate else 255, dtype=np.uint8)
    bit_op = np.bitwise_or if dilate else np.bitwise_and
    target = out[lo:hi]
    for dz, dy, w in rows:
        off = (dz * yp + dy) * row
        bit_op(target, packed[w][lo + off : hi + off], out=target)
    result = np.unpackbits(out).view(bool).reshape(zp, yp, xp)
    return np.ascontiguousarray(result[ez : ez + nz, ey : ey + ny, ex : ex + nx])


def closing_ball(mask: np.ndarray, radius_mm: float, spacing: tuple[float, float, float]) -> np.ndarray:
    """Closing with a ball of ``radius_mm``: bitwise the former ``lung_mask._closing_mm``, which padded
    the mask's box by ``ceil(r / s) + 1`` and thresholded ``distance_transform_edt`` twice
    (``edt(~m) <= r``, then ``edt(dilated) > r``).

    The closing lies in the mask's bounding box (a ball closing stays in the convex hull); the box is
    padded by the ball's extent so the dilation is whole before the erosion reads it.
    """
    out = np.zeros(mask.shape, dtype=bool)
    box = bbox(mask)
    if box is None:
        return out
    rows = ball_rows(float(radius_mm), tuple(float(s) for s in spacing))
    ext = [max(abs(r[0]) for r in rows), max(abs(r[1]) for r in rows), max(r[2] for r in rows)]
    sub = np.pad(mask[box], [(e, e) for e in ext])
    closed = _ball_op(_ball_op(sub, rows, True), rows, False)
    out[box] = closed[tuple(slice(e, e + b.stop - b.start) for e, b in zip(ext, box, strict=True))]
    return out


def opening_ball(mask: np.ndarray, radius_mm: float, spacing: tuple[float, float, float]) -> np.ndarray:
    """Opening with a ball of ``radius_mm``: bitwise the former ``lung_outline._opening_mm``
    (``edt(pad(m[box], 1)) > r``, then ``edt(~core) <= r``).

    scipy pads the box with one False voxel, which makes the erosion see False outside the box (a ball
    reaching past the array always reaches that face); the dilation of the eroded core is kept in the box.
    """
    out = np.zeros(mask.shape, dtype=bool)
    box = bbox(mask)
    if box is None:
        return out
    rows = ball_rows(float(radius_mm), tuple(float(s) for s in spacing))
    core = _ball_op(mask[box], rows, False)
    if core.any():
        out[box] = _ball_op(core, rows, True)
    return out
