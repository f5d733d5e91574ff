"""Reader consensus on hand-built reads whose every number is computed in the comments."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lungcad.annotations.consensus import cluster_marks, consensus_nodules, reader_marks
from lungcad.annotations.lungrads import LungRads
from lungcad.annotations.model import LidcRead, NoduleGT, PointMark, ReaderNodule, ReadingSession, Roi
from lungcad.errors import AnnotationError, InputError
from lungcad.types import CTVolume, Texture

# 6 slices of 30 x 30 pixels; 2 mm slices, 1 mm pixels, origin 0: voxel (k, row, col) = world (col, row, 2k).
GRID = CTVolume(np.zeros((6, 30, 30), np.float32), (2.0, 1.0, 1.0))


def square(z_mm: float, col0: int, row0: int, side: int = 4, inclusion: bool = True) -> Roi:
    """Outline with corners (col0, row0), (col0 + side, row0 + side): (side - 1)^2 pixels inside it."""
    c1, r1 = col0 + side, row0 + side
    return Roi(z_mm, "", inclusion, ((col0, row0), (c1, row0), (c1, r1), (col0, r1)))


def nodule(nid: str, rois: tuple[Roi, ...], malignancy: int, texture: int) -> ReaderNodule:
    return ReaderNodule(nid, rois, {"calcification": 6, "malignancy": malignancy, "texture": texture})


# Reader A: 3 x 3 interior (rows 6..8, cols 6..8) on slices 1 and 2 -> 18 voxels of 2 mm^3 = 36 mm^3,
#   centroid voxel (1.5, 7, 7) = world (7, 7, 3).  Plus a small-nodule point at voxel (4, 25, 25).
# Reader B: the same shifted one column (cols 7..9) -> 36 mm^3, world (8, 7, 3).  Point at (4, 25, 26).
# Reader C: cols 6..8 on slice 2 only -> 18 mm^3, world (7, 7, 4); and a second nodule on slice 0.
READ = LidcRead(
    "1.2.3",
    "1.2",
    (
        ReadingSession(
            "A",
            nodules=(nodule("a1", (square(2.0, 5, 5), square(4.0, 5, 5)), 3, 5),),
            small_nodules=(PointMark("a2", 8.0, "", 25, 25),),
        ),
        ReadingSession(
            "B",
            nodules=(nodule("b1", (square(2.0, 6, 5), square(4.0, 6, 5)), 5, 4),),
            small_nodules=(PointMark("b2", 8.0, "", 26, 25),),
        ),
        ReadingSession(
            "C",
            nodules=(nodule("c1", (square(4.0, 5, 5),), 4, 3), nodule("c2", (square(0.0, 1, 20),), 2, 1)),
        ),
    ),
)


def test_clusters_measures_and_conventions() -> None:
    nodules = consensus_nodules(READ, GRID, include_small=True)
    assert [(n.reader_ids, n.small_reader_ids) for n in nodules] == [
        (("A", "B", "C"), ()),
        (("C",), ()),
        ((), ("A", "B")),
    ]
    main, lone, small = nodules
    # Consensus at 0.5 of 3 readers = 2 votes.  Slice 1: A and B share cols 7..8 -> 2 x 3 = 6 voxels.
    # Slice 2: cols 6 (A, C), 7 and 8 (A, B, C) -> 9 voxels; col 9 has B only.  15 voxels = 30 mm^3.
    assert main.mask.count() == 15 and main.volume_mm3 == 30.0
    # Its centroid: z = (6 x 1 + 9 x 2) / 15 = 1.6 -> 3.2 mm; x = (6 x 7.5 + 9 x 7) / 15 = 7.2 mm.
    assert main.consensus_center_xyz_mm == pytest.approx((7.2, 7.0, 3.2), abs=1e-12)
    assert main.consensus_diameter_mm == pytest.approx((6 * 30 / math.pi) ** (1 / 3), rel=1e-12)
    # LUNA16 convention: mean of the readers' centroids and volume-equivalent diameters.
    assert main.center_xyz_mm == pytest.approx((22 / 3, 7.0, 10 / 3), abs=1e-12)
    d = [(6 * v / math.pi) ** (1 / 3) for v in (36.0, 36.0, 18.0)]
    assert main.diameter_mm == pytest.approx(sum(d) / 3, rel=1e-12)  # 3.81 mm
    assert main.center_zyx_vox == pytest.approx((5 / 3, 7.0, 22 / 3), abs=1e-12)
    # Median ratings: malignancy (3, 5, 4) -> 4, texture (5, 4, 3) -> 4 = solid; < 6 mm solid -> 2, but
    # malignancy >= 4 makes it actionable.
    assert main.characteristics == {"calcification": 6.0, "texture": 4.0, "malignancy": 4.0}
    assert (main.texture, main.lung_rads, main.actionable) == (Texture.SOLID, LungRads.C2, True)
    assert (main.truncated, main.fraction_inside) == (False, 1.0)
    # Reader C's second nodule sits on slice 0, the first plane: truncated; texture 1 = ground-glass.
    assert lone.n_readers == 1 and lone.truncated and lone.fraction_inside == 1.0
    assert (lone.texture, lone.lung_rads, lone.actionable) == (Texture.GROUND_GLASS, LungRads.C2, False)
    # The two points 1 mm apart from different readers are one nodule < 3 mm: no size.
    assert (small.diameter_mm, small.volume_mm3, small.n_readers) == (None, None, 0)
    assert small.center_xyz_mm == pytest.approx((25.5, 25.0, 8.0))
    assert [n.center_xyz_mm for n in consensus_nodules(READ, GRID)] == [
        main.center_xyz_mm,
        lone.center_xyz_mm,
    ]


def test_agreement_level_changes_the_mask() -> None:
    assert consensus_nodules(READ, GRID, agreement_level=1.0)[0].mask.count() == 6  # slice 2, cols 7..8
    assert consensus_nodules(READ, GRID, agreement_level=0.1)[0].mask.count() == 24  # the union


def test_same_reader_joins_only_by_overlap() -> None:
    # Two 3 x 3 nodules 5 mm apart (centres x = 7 and x = 12), no shared voxel.
    rois = (square(2.0, 5, 5),), (square(2.0, 10, 5),)
    one_reader = LidcRead(
        "1", "1", (ReadingSession("A", nodules=tuple(nodule(f"n{i}", r, 1, 5) for i, r in enumerate(rois))),)
    )
    marks = reader_marks(one_reader, GRID)
    assert cluster_marks(marks, 10.0) == [[0], [1]]
    two_readers = LidcRead(
        "1",
        "1",
        tuple(ReadingSession(r, nodules=(nodule(r, x, 1, 5),)) for r, x in zip("AB", rois, strict=True)),
    )
    assert cluster_marks(reader_marks(two_readers, GRID), 10.0) == [[0, 1]]
    assert cluster_marks(reader_marks(two_readers, GRID), 4.9) == [[0], [1]]
    # A reader who split one nodule in two overlapping annotations is joined even with a tiny threshold.
    split = LidcRead(
        "1",
        "1",
        (
            ReadingSession(
                "A",
                nodules=(nodule("p", (square(2.0, 5, 5),), 1, 5), nodule("q", (square(2.0, 7, 5),), 1, 5)),
            ),
        ),
    )
    assert cluster_marks(reader_marks(split, GRID), 0.1) == [[0, 1]]
    (joined,) = consensus_nodules(split, GRID, cluster_distance_mm=0.1)
    assert joined.reader_ids == ("A",) and joined.mask.count() == 5 * 3  # union: cols 6..10, rows 6..8


def test_nodule_outside_the_volume_is_truncated_but_measured() -> None:
    # Slices at z = -2 and -4 mm lie before the volume (slice -1 and -2): all of it outside.
    read = LidcRead(
        "1",
        "1",
        (ReadingSession("A", nodules=(nodule("n", (square(-2.0, 5, 5), square(-4.0, 5, 5)), 1, 5),)),),
    )
    (n,) = consensus_nodules(read, GRID)
    assert n.truncated and n.fraction_inside == 0.0
    assert n.center_xyz_mm == pytest.approx((7.0, 7.0, -3.0))
    assert n.volume_mm3 == 36.0


def test_bad_parameters() -> None:
    with pytest.raises(AnnotationError, match=r"agreement_level must be in \(0, 1\], got 0"):
        consensus_nodules(READ, GRID, agreement_level=0)
    with pytest.raises(AnnotationError, match=r"cluster_distance_mm must be > 0, got -1"):
        consensus_nodules(READ, GRID, cluster_distance_mm=-1)


def test_to_gt_is_the_ground_truth_record() -> None:
    """The consensus nodule as the cohort's ground truth: centre, diameter, triage label, texture enum."""
    main = consensus_nodules(READ, GRID)[0]
    gt = main.to_gt()
    assert isinstance(gt, NoduleGT)
    assert (gt.center_xyz_mm, gt.diameter_mm, gt.actionable, gt.texture, gt.label) == (
        main.center_xyz_mm,
        main.diameter_mm,
        True,
        Texture.SOLID,
        0,
    )


def test_points_only_cluster_has_no_ground_truth_size() -> None:
    small = [n for n in consensus_nodules(READ, GRID, include_small=True) if n.diameter_mm is None]
    assert small, "the hand-built read has a cluster of small-nodule points"
    with pytest.raises(InputError, match=r"a nodule < 3 mm \(points only\) has no size"):
        small[0].to_gt()
