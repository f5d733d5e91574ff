"""Contour -> voxel masks: hand-drawn polygons, holes, slice matching, mapping to another grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lungcad.annotations.lidc_xml import find_lidc_xml, read_lidc_xml
from lungcad.annotations.masks import (
    BoxMask,
    SliceLocator,
    box_mask_to_grid,
    mask_to_grid,
    nodule_box_mask,
    nodule_mask,
)
from lungcad.annotations.model import ReaderNodule, Roi
from lungcad.errors import InputError
from lungcad.io import load_ct
from lungcad.types import CTVolume, SeriesMetadata, SliceReport

SOPS = tuple(f"1.2.{k}" for k in range(5))


def _volume(sop_uids: tuple[str, ...] = SOPS, nonuniform: bool = False) -> CTVolume:
    """5 slices of 12 x 12 pixels, 2.5 mm apart from z = -10 mm: slice k sits at z = -10 + 2.5 k."""
    report = SliceReport(5, 5, 0, (-10.0, -7.5, -5.0, -2.5, 0.0), 2.5, 2.5, 0, nonuniform, 0.0, 0.0)
    meta = SeriesMetadata(sop_uids=sop_uids, slice_report=report)
    return CTVolume(np.zeros((5, 12, 12), np.float32), (2.5, 1.0, 1.0), (0.0, 0.0, -10.0), metadata=meta)


SQUARE = ((2, 3), (6, 3), (6, 7), (2, 7))  # (col, row) corners: rows 3..7, columns 2..6


def _nodule(*rois: Roi) -> ReaderNodule:
    return ReaderNodule("n", rois, None)


def test_square_contour_strict_interior_and_with_outline() -> None:
    vol = _volume()
    nod = _nodule(Roi(-5.0, "", True, SQUARE))
    expected = np.zeros(vol.shape, bool)
    expected[2, 4:7, 3:6] = True  # the 3 x 3 pixels strictly inside the 5 x 5 outline
    np.testing.assert_array_equal(nodule_mask(nod, vol), expected)
    expected[2, 3:8, 2:7] = True  # plus the 16 outline pixels
    np.testing.assert_array_equal(nodule_mask(nod, vol, include_contour=True), expected)


def test_exclusion_contour_removes_the_hole_but_keeps_its_outline() -> None:
    vol = _volume()
    outer = Roi(-7.5, "", True, ((0, 0), (10, 0), (10, 10), (0, 10)))
    hole = Roi(-7.5, "", False, ((3, 3), (7, 3), (7, 7), (3, 7)))
    mask = nodule_mask(_nodule(hole, outer), vol)  # order in the file does not matter
    expected = np.zeros(vol.shape, bool)
    expected[1, 1:10, 1:10] = True  # 81 interior pixels of the outer outline
    expected[1, 4:7, 4:7] = False  # minus the 9 strictly inside the hole
    np.testing.assert_array_equal(mask, expected)
    assert int(mask.sum()) == 72


def test_slice_found_by_sop_uid_first_then_by_z() -> None:
    vol = _volume()
    locator = SliceLocator(vol)
    assert locator.index(-5.0, "1.2.4") == 4  # the SOP UID wins over a stale z
    assert locator.index(-5.0, "unknown") == 2
    assert locator.index(-6.2, "") == 2  # nearest slice: (-6.2 + 10) / 2.5 = 1.52 -> 2
    assert locator.index(-20.0, "") == -4  # outside the volume: index outside [0, 5)
    assert (locator.matched_by_sop, locator.matched_by_z) == (1, 3)
    # Stack resampled by the loader (non-uniform spacing): SOP UIDs no longer name z slices.
    assert SliceLocator(_volume(nonuniform=True)).index(-5.0, "1.2.4") == 2
    with pytest.raises(InputError, match=r"3 SOP instance UIDs for 5 slices"):
        SliceLocator(_volume(sop_uids=SOPS[:3]))


def test_nodule_partly_outside_the_volume_is_kept_in_its_box() -> None:
    vol = _volume()
    nod = _nodule(Roi(-12.5, "", True, SQUARE), Roi(-10.0, "", True, SQUARE))
    box = nodule_box_mask(nod, SliceLocator(vol))
    assert box.offset_zyx == (-1, 4, 3)
    assert box.mask.shape == (2, 3, 3) and box.count() == 18
    assert box.touches_edge(vol.shape)
    assert int(box.to_full(vol.shape).sum()) == 9  # only slice 0 lies inside


def test_mapping_to_a_finer_grid_and_back() -> None:
    coarse = CTVolume(np.zeros((4, 4, 4), np.float32), (2.0, 2.0, 2.0))
    fine = CTVolume(np.zeros((8, 8, 8), np.float32), (1.0, 1.0, 1.0))
    one = BoxMask((1, 1, 1), np.ones((1, 1, 1), bool))
    # Fine voxel t sits at t mm = coarse index t / 2, rounded to nearest: t = 1 and 2 map to coarse 1.
    up = box_mask_to_grid(one, coarse, fine)
    assert up.offset_zyx == (1, 1, 1) and up.mask.shape == (2, 2, 2) and up.mask.all()
    down = box_mask_to_grid(up, fine, coarse)
    assert down.offset_zyx == (1, 1, 1) and down.mask.shape == (1, 1, 1) and down.mask.all()
    same = box_mask_to_grid(one, coarse, coarse)
    assert same.offset_zyx == (1, 1, 1) and same.count() == 1
    full = mask_to_grid(one.to_full(coarse.shape), coarse, fine)
    assert full.shape == (8, 8, 8) and int(full.sum()) == 8 and full[1:3, 1:3, 1:3].all()
    with pytest.raises(InputError, match=r"mask shape \(2, 2, 2\) does not match the source volume"):
        mask_to_grid(np.zeros((2, 2, 2), bool), coarse, fine)


def test_mapping_through_a_flipped_direction() -> None:
    src = CTVolume(np.zeros((3, 3, 3), np.float32), (1.0, 1.0, 1.0))
    # Same voxels, x axis reversed: target voxel x = i sits at world x = 2 - i.
    flipped = CTVolume(
        np.zeros((3, 3, 3), np.float32), (1.0, 1.0, 1.0), (2.0, 0.0, 0.0), np.diag([-1.0, 1.0, 1.0])
    )
    out = box_mask_to_grid(BoxMask((0, 1, 0), np.ones((1, 1, 1), bool)), src, flipped)
    assert out.offset_zyx == (0, 1, 2) and out.count() == 1


def test_bundled_slab_sop_and_z_matching_agree(bundled_slab_0001: Path) -> None:
    volume = load_ct(bundled_slab_0001)
    read = read_lidc_xml(find_lidc_xml(bundled_slab_0001))
    in_slab = set(volume.metadata.sop_uids)
    by_sop, by_z = SliceLocator(volume), SliceLocator(volume, sop_uids=())
    for session in read.sessions:
        for nodule in session.nodules:
            a, b = nodule_box_mask(nodule, by_sop), nodule_box_mask(nodule, by_z)
            assert a.offset_zyx == b.offset_zyx
            np.testing.assert_array_equal(a.mask, b.mask)
    rois = [r for s in read.sessions for n in s.nodules for r in n.rois]
    assert by_sop.matched_by_sop == sum(r.sop_uid in in_slab for r in rois) == 32
    assert by_z.matched_by_z == len(rois) == 32
