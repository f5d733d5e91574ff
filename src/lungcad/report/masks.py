"""The report's nodule masks: one label map on the *input* scan's grid (``nodules.nii.gz``).

The detector segments on the preprocessed grid (1 mm, cropped to the lungs) and keeps each finding's
component as a boolean box (``Finding.mask`` at ``Finding.mask_ref``).  The report, the figures, the DICOM
SEG and 3D Slicer / NiiVue all need it on the grid of the scan the radiologist reads, so each box is
re-projected by nearest-neighbour resampling through world coordinates: an input voxel gets label ``n``
when its centre falls inside a voxel of finding ``n``'s box.  That label map *is* "our nodule mask"; the
SEG frames are its slices, unchanged.

Worked example: a 1 mm box voxel spans 1 mm; input voxels of 0.7 x 0.7 x 2.5 mm whose centres fall in it
take its value, so a 23 mm nodule covers about 9 of the 2.5 mm slices.

A shown finding the segmentation missed (no mask) gets a sphere of its reported diameter around its centre,
recorded as ``"sphere"`` in ``LabelMap.sources``, so every shown finding has a segment.  Where two findings'
masks overlap the earlier number (the more urgent finding in report order) keeps the voxel.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from lungcad.errors import InputError
from lungcad.fileio import atomic_write_json
from lungcad.report.shown import ShownFinding
from lungcad.types import CTVolume, Grid

SEGMENTATION = "segmentation"
SPHERE = "sphere"
LABELS_NAME = "nodules.nii.gz"


@dataclass
class LabelMap:
    """Labels ``(z, y, x)`` uint16 on the input grid: 0 background, ``n`` the report's finding ``n``.

    ``sources[n]`` says where label ``n`` came from (``"segmentation"`` or ``"sphere"``).
    """

    labels: np.ndarray
    sources: dict[int, str]


def _input_box(grid: Grid, box: Grid) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Input voxels (start, stop) whose centres can fall in ``box`` (its 8 corners, +1 voxel margin)."""
    corners = np.array(
        [
            [z, y, x]
            for z in (-0.5, box.shape[0] - 0.5)
            for y in (-0.5, box.shape[1] - 0.5)
            for x in (-0.5, box.shape[2] - 0.5)
        ]
    )
    idx = grid.world_to_voxel(box.voxel_to_world(corners))
    start = np.maximum(np.floor(idx.min(axis=0)).astype(int) - 1, 0)
    stop = np.minimum(np.ceil(idx.max(axis=0)).astype(int) + 2, grid.shape)
    return tuple(int(v) for v in start), tuple(int(v) for v in stop)  # type: ignore[return-value]


def reproject_box(mask: np.ndarray, box: Grid, grid: Grid) -> tuple[tuple[slice, ...], np.ndarray]:
    """Nearest-neighbour re-projection of a boolean ``mask`` on ``box`` onto ``grid``.

    Returns:
        ``(slices, values)``: the region of ``grid`` (a tuple of slices) and the bool mask inside it.
    """
    start, stop = _input_box(grid, box)
    sub = grid.crop(start, stop)
    if min(sub.shape) == 0:
        return tuple(slice(a, a) for a in start), np.zeros((0, 0, 0), bool)
    zz, yy, xx = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in sub.shape], indexing="ij")
    world = sub.voxel_to_world(np.stack([zz.ravel(), yy.ravel(), xx.ravel()], axis=1))
    src = np.rint(box.world_to_voxel(world)).astype(np.int64)
    inside = np.all((src >= 0) & (src < np.asarray(box.shape)), axis=1)
    values = np.zeros(len(src), bool)
    values[inside] = mask[tuple(src[inside].T)]
    return tuple(slice(a, b) for a, b in zip(start, stop, strict=True)), values.reshape(sub.shape)


def _sphere(grid: Grid, center_xyz_mm: tuple[float, float, float], diameter_mm: float):
    """Slices and bool mask of the voxels of ``grid`` whose centres lie within the sphere."""
    r = diameter_mm / 2
    c = grid.world_to_voxel(center_xyz_mm)
    half = np.ceil(r / np.asarray(grid.spacing_zyx_mm)).astype(int) + 1
    start = np.maximum(np.floor(c).astype(int) - half, 0)
    stop = np.minimum(np.floor(c).astype(int) + half + 1, grid.shape)
    sub = grid.crop(tuple(start), tuple(stop))  # type: ignore[arg-type]
    zz, yy, xx = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in sub.shape], indexing="ij")
    world = sub.voxel_to_world(np.stack([zz.ravel(), yy.ravel(), xx.ravel()], axis=1))
    inside = np.linalg.norm(world - np.asarray(center_xyz_mm), axis=1) <= r
    return tuple(slice(a, b) for a, b in zip(start, stop, strict=True)), inside.reshape(sub.shape)


def build_label_map(shown: list[ShownFinding], volume: CTVolume, pre_grid: Grid | None) -> LabelMap:
    """The label map of the shown findings on ``volume``'s grid.

    Args:
        shown: the report's findings (``number`` is the label).
        volume: the input scan.
        pre_grid: the preprocessed grid the masks lie on (``DetectionOutput.pre.volume.grid``); ``None``
            when no mask is at hand (then every finding is a sphere).
    """
    labels = np.zeros(volume.shape, np.uint16)
    sources: dict[int, str] = {}
    for s in shown:
        f = s.finding
        region = None
        if f.mask is not None and f.mask_ref is not None and pre_grid is not None:
            start = tuple(int(v) for v in f.mask_ref.offset_zyx)
            stop = tuple(a + int(n) for a, n in zip(start, f.mask_ref.shape_zyx, strict=True))
            sl, values = reproject_box(np.asarray(f.mask, bool), pre_grid.crop(start, stop), volume.grid)  # type: ignore[arg-type]
            if values.any():
                region, sources[s.number] = (sl, values), SEGMENTATION
        if region is None:  # nothing segmented, or too thin to cover one input voxel centre
            region, sources[s.number] = _sphere(volume.grid, f.center_xyz_mm, max(f.diameter_mm, 1.0)), SPHERE
        sl, values = region
        view = labels[sl]
        view[values & (view == 0)] = s.number
    return LabelMap(labels, sources)


def write_label_map(volume: CTVolume, label_map: LabelMap, out_dir: Path) -> Path:
    """``nodules.nii.gz`` (labels on the input grid) and ``nodules.json`` (label -> mask source)."""
    from lungcad.io.image import save_volume

    labels = label_map.labels
    small = labels.astype(np.uint8) if int(labels.max(initial=0)) <= 255 else labels  # half the bytes to gzip
    path = save_volume(volume, out_dir / LABELS_NAME, array=small)
    atomic_write_json(out_dir / "nodules.json", {str(k): v for k, v in sorted(label_map.sources.items())})
    return path


def read_label_map(path: Path, volume: CTVolume) -> LabelMap:
    """Read ``nodules.nii.gz`` back; it must lie on ``volume``'s grid (same shape, world placement)."""
    from lungcad.io.image import load_image

    img = load_image(path)
    same = (
        img.shape == volume.shape
        and np.allclose(img.spacing_zyx_mm, volume.spacing_zyx_mm, atol=1e-4)
        and np.allclose(img.origin_xyz_mm, volume.origin_xyz_mm, atol=1e-3)
        and np.allclose(img.direction, volume.direction, atol=1e-4)
    )
    if not same:
        raise InputError(
            "the nodule label map does not lie on the scan's grid",
            path=path,
            fix="re-run `lungcad detect SCAN --out DIR --report` with the scan this result came from",
        )
    labels = np.rint(img.hu).astype(np.uint16)
    side = path.with_name("nodules.json")
    sources = {int(k): v for k, v in json.loads(side.read_text()).items()} if side.exists() else {}
    for n in np.unique(labels[labels > 0]):
        sources.setdefault(int(n), SEGMENTATION)
    return LabelMap(labels, sources)


def label_bbox(labels: np.ndarray, number: int) -> tuple[slice, ...] | None:
    """Bounding slices of label ``number`` (``None`` when absent)."""
    objs = ndimage.find_objects((labels == number).astype(np.uint8))
    return objs[0] if objs and objs[0] is not None else None
