"""Put the slices of a series on a regular, orthogonal grid.

Rules that matter for correctness (each has a test in ``tests/io/test_dicom.py``):

* Slices are ordered by their position along the slice normal, ``ImagePositionPatient . normal`` with
  ``normal = row_cosines x column_cosines`` (0020,0032 / 0020,0037) -- never by file name or
  InstanceNumber, which scanners and anonymisers reorder freely.
* Exact duplicate positions are dropped (and counted); a slice step larger than ``gap_factor`` x the median
  is a gap (missing slices); any other non-uniform spacing is resampled onto a uniform grid along the
  normal by linear interpolation between the two neighbouring slices (``resample_slices``).
* Gantry tilt (the slice stack is not perpendicular to the slices) is measured and corrected by shifting
  each slice in-plane so the volume lies on an orthogonal grid.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lungcad.errors import InputError
from lungcad.io.dicom_read import DicomSlice
from lungcad.io.native_pixels import AIR_HU, gather_planes
from lungcad.types import SliceReport

POSITION_TOL_MM = 1e-3
TILT_CORRECT_DEG = 0.01  # below this the in-plane shift is under a thousandth of a pixel per slice


@dataclass(frozen=True)
class RegularStack:
    """A slice stack on a uniform orthogonal grid."""

    hu: np.ndarray  # (z, y, x) float32
    step_mm: float  # slice spacing along the normal
    origin_xyz_mm: tuple[float, float, float]  # ImagePositionPatient of the first kept slice
    direction: np.ndarray  # (3, 3) columns: row cosines, column cosines, normal
    kept: tuple[DicomSlice, ...]  # the distinct slices, in order along the normal
    report: SliceReport


def resample_slices(stack: np.ndarray, positions_mm: np.ndarray, step_mm: float) -> np.ndarray:
    """Linearly resample a slice stack at increasing positions onto a uniform grid starting at the first.

    The output has ``floor(span / step_mm) + 1`` slices at ``positions_mm[0] + k * step_mm``.  Worked
    example: slices at 0, 2, 5, 6, 8 mm with step 2 give 0, 2, 4, 6, 8 mm; the slice at 4 mm is
    ``(1/3) * s[1] + (2/3) * s[2]`` (4 lies two thirds of the way from 2 to 5).

    Args:
        stack: (n, rows, cols) slices, ``n >= 2``.
        positions_mm: (n,) strictly increasing slice positions along the normal.
        step_mm: output spacing, > 0.

    Returns:
        (m, rows, cols) float32; one output slice at a time, so memory stays at one extra volume.
    """
    along = np.asarray(positions_mm, dtype=np.float64) - float(positions_mm[0])
    n_out = int(np.floor(along[-1] / step_mm + 1e-6)) + 1
    # Fractional source index of every output plane: e.g. 4 mm between slices at 2 and 5 mm -> 1.667.
    frac = np.interp(np.arange(n_out) * step_mm, along, np.arange(len(along), dtype=np.float64))
    lower = np.minimum(np.floor(frac).astype(np.int64), len(along) - 2)
    weight = (frac - lower).astype(np.float32)
    out = np.empty((n_out, *stack.shape[1:]), dtype=np.float32)
    for k in range(n_out):
        i, t = int(lower[k]), weight[k]
        out[k] = (1 - t) * stack[i] + t * stack[i + 1]
    return out


def _deshear(pixels: np.ndarray, offset_rc: np.ndarray) -> np.ndarray:
    """Shift one slice by ``offset_rc`` pixels (row, col) so it sits on the orthogonal grid."""
    from scipy import ndimage

    if np.all(np.abs(offset_rc) < 1e-3):
        return pixels
    return ndimage.shift(pixels, offset_rc, order=1, mode="constant", cval=AIR_HU).astype(np.float32)


def _distinct(slices: list[DicomSlice], normal: np.ndarray) -> list[DicomSlice]:
    """Sorted along ``normal``; of slices at the same position only the first is kept."""
    ordered = sorted(slices, key=lambda s: float(s.position @ normal))
    unique: list[DicomSlice] = []
    for s in ordered:
        if unique and float((s.position - unique[-1].position) @ normal) < POSITION_TOL_MM:
            continue
        unique.append(s)
    return unique


def _stacked(unique: list[DicomSlice], volume: np.ndarray | None) -> tuple[np.ndarray, list[DicomSlice]]:
    """The slices' pixels as one (z, y, x) array, and the slices with ``pixels`` viewing it.

    When every slice is a plane of ``volume`` the planes are sorted in place (``gather_planes``): no second
    volume is allocated, and ``volume``'s other views (e.g. of dropped duplicates) no longer hold their
    slice, which is why new ``DicomSlice`` objects view the result.
    """
    if volume is None or any(s.plane < 0 for s in unique):
        return np.stack([s.pixels for s in unique]), unique
    hu = gather_planes(volume, [s.plane for s in unique])
    return hu, [dataclasses.replace(s, pixels=hu[k], plane=k) for k, s in enumerate(unique)]


def _tilt_corrected(
    unique: list[DicomSlice],
    along: np.ndarray,
    iop: np.ndarray,
    normal: np.ndarray,
    spacing_rc: np.ndarray,
    volume: np.ndarray | None,
) -> tuple[np.ndarray, float, list[DicomSlice]]:
    """The (z, y, x) stack with each slice shifted back by its in-plane offset, the tilt in degrees, and
    the slices (those of ``_stacked`` when nothing was shifted)."""
    row_dir, col_dir = iop[:3], iop[3:]
    pos0 = unique[0].position
    inplane = np.asarray([(s.position - pos0) - d * normal for s, d in zip(unique, along, strict=True)])
    tilt_deg = 0.0
    if along[-1] > 0:
        tilt_deg = float(np.degrees(np.arctan(np.linalg.norm(inplane[-1]) / along[-1])))
    if tilt_deg <= TILT_CORRECT_DEG:
        hu, kept = _stacked(unique, volume)
        return hu, tilt_deg, kept
    offsets_rc = np.column_stack([inplane @ col_dir, inplane @ row_dir]) / spacing_rc
    hu = np.stack([_deshear(s.pixels, o) for s, o in zip(unique, offsets_rc, strict=True)])
    return hu, tilt_deg, unique


def regularise(
    slices: list[DicomSlice],
    iop: np.ndarray,
    spacing_rc: tuple[float, float],
    *,
    gap_factor: float,
    min_slices: int,
    n_files: int,
    where: Path,
    volume: np.ndarray | None = None,
) -> RegularStack:
    """Sort, drop duplicates, correct gantry tilt and resample non-uniform spacing (see module docstring).

    Args:
        slices: decoded slices of one series, any order, all of one shape.
        iop: ImageOrientationPatient (0020,0037), 6 direction cosines.
        spacing_rc: PixelSpacing (0028,0030): row spacing, column spacing in mm.
        gap_factor: a step larger than ``gap_factor`` x the median step counts as a gap.
        min_slices: fewer distinct positions is an error.
        n_files: files the slices came from (for the report).
        where: the series folder, named in errors.
        volume: the array whose planes the slices' pixels view (``SeriesSlices.volume``), sorted in place
            and reused as the result when no slice needs a tilt shift; the slices' own views of it are
            stale afterwards (``RegularStack.kept`` holds fresh ones).

    Raises:
        InputError: fewer than ``min_slices`` distinct positions.
    """
    normal = np.cross(iop[:3], iop[3:])
    unique = _distinct(slices, normal)
    need = max(min_slices, 2)  # one slice has no spacing along the normal
    if len(unique) < need:
        raise InputError(
            f"series has {len(unique)} distinct slice position(s); a CT volume needs at least {need}",
            path=where,
            fix="export the whole series (a single slice or localizer cannot be analysed)",
        )
    pos0 = unique[0].position
    along = np.asarray([float((s.position - pos0) @ normal) for s in unique])
    steps = np.diff(along)
    median = float(np.median(steps))
    spacing = np.asarray(spacing_rc, dtype=np.float64)
    hu, tilt_deg, unique = _tilt_corrected(unique, along, iop, normal, spacing, volume)
    nonuniform = bool(np.any(np.abs(steps - median) > max(0.01 * median, POSITION_TOL_MM)))
    if nonuniform:
        hu = resample_slices(hu, along, median)
    report = SliceReport(
        n_files=n_files,
        n_slices_read=len(slices),
        duplicates_dropped=len(slices) - len(unique),
        positions_mm=tuple(float(a + pos0 @ normal) for a in along),
        median_step_mm=median,
        max_step_mm=float(steps.max()),
        n_gaps=int(np.sum(steps > gap_factor * median)),
        nonuniform=nonuniform,
        gantry_tilt_deg=tilt_deg,
        padding_fraction=sum(s.n_padded for s in unique) / float(len(unique) * unique[0].pixels.size),
    )
    return RegularStack(
        hu=hu,
        step_mm=median,
        origin_xyz_mm=(float(pos0[0]), float(pos0[1]), float(pos0[2])),
        direction=np.column_stack([iop[:3], iop[3:], normal]),
        kept=tuple(unique),
        report=report,
    )
