"""Whole-scan overview: a coronal maximum-intensity projection of the lungs with numbered markers.

The projection runs anterior -> posterior through the whole lung depth, inside the lung mask: ribs, spine
and the heart would otherwise hide the lung, and vessels and nodules then stand out bright on dark
parenchyma.  The mask is *shrunk* by one coarse voxel (2.5 mm): a ray crosses the lung boundary twice
(front and back), and the coarse mask's blocky edge lets chest-wall tissue and rib into the rays along it
(a grown mask made the whole MIP white; the plain one striped its periphery).  The overview is for
orientation; each nodule's own images are in its key image.  Each shown finding is a circle
of its diameter with its report number, coloured by Lung-RADS category.

Orientation as a coronal image is read: patient's right on the image left, superior at the top.  For the
usual axial series (direction axes along x, y, z, maybe flipped) the projection is a max over the array
axis that runs along y, then flips, exact and fast (0.1 s for 512 x 512 x 133); a scan with oblique axes
is first resampled onto an axis-aligned grid.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.patches import Circle
from scipy import ndimage

from lungcad.preprocess.lung_mask import LungMask
from lungcad.report.figures.style import RADS_COLOURS, new_figure, outlined_text, save_figure
from lungcad.report.shown import ShownFinding
from lungcad.types import CTVolume

MIP_WINDOW = (-1000.0, 100.0)
MIP_SCALE_MM = 50.0


def axis_map(direction: np.ndarray) -> list[tuple[int, float]] | None:
    """For each voxel axis (ITK order x, y, z): (world axis it runs along, sign); ``None`` if oblique."""
    out = []
    for col in np.asarray(direction).T:
        k = int(np.argmax(np.abs(col)))
        if abs(col[k]) < 0.999:
            return None
        out.append((k, float(np.sign(col[k]))))
    return out


def _nearest_index(n: int, factor: int, m: int) -> np.ndarray:
    """Coarse index of each of ``n`` full-resolution indices (nearest coarse sample, stride ``factor``)."""
    return np.minimum(np.rint(np.arange(n) / factor).astype(int), m - 1)


def _full_lung_mask(lungs: LungMask, shape: tuple[int, int, int]) -> np.ndarray:
    """The coarse lung mask, shrunk by one coarse voxel, on the full-resolution grid (nearest)."""
    coarse = ndimage.binary_erosion(lungs.mask, iterations=1)
    idx = [_nearest_index(n, f, m) for n, f, m in zip(shape, lungs.factors, coarse.shape, strict=True)]
    return coarse[np.ix_(*idx)]


def _masked_max(hu: np.ndarray, lungs: LungMask, axis: int) -> np.ndarray:
    """``max(where(full-resolution lung mask, hu, -1000), axis)`` without building the full mask.

    Within one coarse voxel's run of full-resolution slices along ``axis`` the nearest-neighbour mask is
    constant, so each run is reduced by a plain max and masked once in 2-D: one pass over the volume and
    no volume-sized temporaries (0.03 s instead of 0.3 s for 512 x 512 x 133).
    """
    coarse = np.moveaxis(ndimage.binary_erosion(lungs.mask, iterations=1), axis, 0)
    factors = [lungs.factors[axis]] + [f for k, f in enumerate(lungs.factors) if k != axis]
    data = np.moveaxis(hu, axis, 0)
    along = _nearest_index(data.shape[0], factors[0], coarse.shape[0])
    rows = _nearest_index(data.shape[1], factors[1], coarse.shape[1])
    cols = _nearest_index(data.shape[2], factors[2], coarse.shape[2])
    out = np.full(data.shape[1:], -1000.0, np.float32)
    for j in np.unique(along):
        sl = np.nonzero(along == j)[0]
        plane = coarse[j][np.ix_(rows, cols)]
        if plane.any():
            run_max = data[sl[0] : sl[-1] + 1].max(axis=0)
            np.maximum(out, np.where(plane, run_max, np.float32(-1000.0)), out=out)
    return out


def coronal_mip(volume: CTVolume, lungs: LungMask | None) -> tuple[np.ndarray, tuple[float, ...]]:
    """The projection image (rows superior -> inferior, columns right -> left) and its extent in world mm
    ``(x_left, x_right, z_bottom, z_top)`` for ``imshow(..., extent=...)``."""
    amap = axis_map(volume.direction)
    if amap is None:  # oblique: resample onto an axis-aligned grid first
        from lungcad.preprocess.resample import resample_onto

        corners = volume.voxel_to_world(
            np.array(
                [
                    [z, y, x]
                    for z in (0, volume.shape[0] - 1)
                    for y in (0, volume.shape[1] - 1)
                    for x in (0, volume.shape[2] - 1)
                ]
            )
        )
        lo, hi = corners.min(axis=0), corners.max(axis=0)
        s = min(volume.spacing_zyx_mm)
        shape = tuple(int(np.ceil((hi[k] - lo[k]) / s)) + 1 for k in (2, 1, 0))
        target = CTVolume(np.zeros(shape, np.float32), (s, s, s), tuple(lo))  # type: ignore[arg-type]
        hu = resample_onto(volume, target)
        mask = None
        if lungs is not None:
            full = _full_lung_mask(lungs, volume.shape).astype(np.uint8)
            mask = resample_onto(volume, target, array=full, order=0, fill_value=0).astype(bool)
        volume, amap = CTVolume.on_grid(hu, target.grid), [(0, 1.0), (1, 1.0), (2, 1.0)]
    else:
        hu, mask = volume.hu, None
    # voxel axes in array order (z, y, x) = ITK axes (2, 1, 0)
    world_of_array = {2 - i: amap[i] for i in range(3)}  # array axis -> (world axis, sign)
    along = {w: (a, sgn) for a, (w, sgn) in world_of_array.items()}
    y_axis = along[1][0]
    if mask is not None:  # resampled (oblique) scan: the mask was resampled with it
        proj = np.where(mask, hu, np.float32(-1000.0)).max(axis=y_axis)
    elif lungs is not None:
        proj = _masked_max(hu, lungs, y_axis)
    else:
        proj = hu.max(axis=y_axis)
    rest = [a for a in range(3) if a != y_axis]  # array axes left, in order
    z_axis, x_axis = along[2][0], along[0][0]
    img = proj if rest == [z_axis, x_axis] else proj.T
    if along[2][1] > 0:  # index grows superiorly: put the last row on top
        img = img[::-1]
    if along[0][1] < 0:  # index grows to the patient's right: flip so the right is on the left
        img = img[:, ::-1]
    # extent from the world positions of the first and last voxel along x and z
    spacing = volume.spacing_zyx_mm
    end = volume.voxel_to_world(np.asarray(volume.shape, float) - 1)
    start = np.asarray(volume.origin_xyz_mm)
    xs = sorted((start[0], end[0]))
    zs = sorted((start[2], end[2]))
    sx, sz = spacing[x_axis], spacing[z_axis]
    return np.ascontiguousarray(img), (xs[0] - sx / 2, xs[1] + sx / 2, zs[0] - sz / 2, zs[1] + sz / 2)


def render_mip(volume: CTVolume, lungs: LungMask | None, shown: list[ShownFinding], path: Path) -> Path:
    """Write the coronal MIP overview PNG."""
    img, extent = coronal_mip(volume, lungs)
    width_mm, height_mm = extent[1] - extent[0], extent[3] - extent[2]
    fig = new_figure(6.0, 6.0 * height_mm / width_mm + 0.3)
    ax = fig.add_axes((0, 0, 1, 1 - 0.3 / (6.0 * height_mm / width_mm + 0.3)))
    ax.imshow(
        img,
        cmap="gray",
        vmin=MIP_WINDOW[0],
        vmax=MIP_WINDOW[1],
        extent=extent,
        origin="upper",
        interpolation="bilinear",
    )
    ax.set_axis_off()
    fig.suptitle(
        "Coronal MIP of the lungs (full depth) - numbers are the report's findings",
        color="white",
        fontsize=9,
        y=0.995,
        va="top",
    )
    for s in shown:
        x, _, z = s.finding.center_xyz_mm
        colour = RADS_COLOURS[s.finding.lung_rads]
        r = max(s.finding.diameter_mm / 2 + 3.0, 6.0)
        ax.add_patch(Circle((x, z), r, fill=False, color=colour, lw=1.6))
        outlined_text(
            ax,
            x + r * 0.75,
            z + r * 0.75,
            str(s.number),
            color=colour,
            fontsize=11,
            fontweight="bold",
            ha="left",
            va="bottom",
        )
    x0, x1, z0, z1 = extent
    m = 0.03 * width_mm
    for text, x, z, ha, va in (
        ("R", x0 + m, (z0 + z1) / 2, "left", "center"),
        ("L", x1 - m, (z0 + z1) / 2, "right", "center"),
        ("S", (x0 + x1) / 2, z1 - m, "center", "top"),
        ("I", (x0 + x1) / 2, z0 + m, "center", "bottom"),
    ):
        outlined_text(ax, x, z, text, fontsize=11, fontweight="bold", ha=ha, va=va)
    bx, bz = x1 - 2 * m, z0 + 2 * m
    ax.plot([bx - MIP_SCALE_MM, bx], [bz, bz], color="white", lw=2.5, solid_capstyle="butt")
    outlined_text(ax, bx - MIP_SCALE_MM / 2, bz + m * 0.4, f"{MIP_SCALE_MM:g} mm", ha="center", va="bottom")
    ax.set_xlim(x0, x1)
    ax.set_ylim(z0, z1)
    return save_figure(fig, path, dpi=100)
