"""Diameter, volume and the minimum-size filter agree (issue 9 defect 10), on hand-built predictions.

Each case is one heatmap peak on a 1 mm grid with a chosen size-head value and a chosen segmented
component, run through the detector's own post-processing (``Detector._findings``), so the numbers are
computed by hand: a 7-voxel cross has volume 7 mm^3 and volume-equivalent diameter (42 / pi)^(1/3) = 2.37 mm;
a 3x3x3 cube 27 mm^3 and 3.72 mm; a ball of radius 5 about 10 mm.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from lungcad.config import load_config
from lungcad.infer.detector import Detector
from lungcad.infer.properties import HeadlineSize, equivalent_diameter, headline_size, measure_nodule
from lungcad.infer.sliding import VolumePrediction
from lungcad.model.bundle import ModelBundle
from lungcad.model.unet import LungUNet
from lungcad.types import CTVolume, DiameterSource, Finding

SHAPE = (40, 40, 40)
CENTRE = (20, 20, 20)


@pytest.fixture(scope="module")
def detector() -> Detector:
    cfg = load_config(overrides={"model": {"widths": [4, 8, 8, 8], "depth": 1}}, environ={})
    model = LungUNet.from_config(cfg.model).eval()
    return Detector(ModelBundle(model, cfg, "hand", "0", cfg.config_hash()), bf16=False)


def _cross() -> np.ndarray:
    seg = np.zeros(SHAPE, dtype=np.float32)
    z, y, x = CENTRE
    seg[z, y, x] = 1.0
    for axis in range(3):
        for step in (-1, 1):
            c = list(CENTRE)
            c[axis] += step
            seg[tuple(c)] = 1.0
    return seg


def _cube() -> np.ndarray:
    seg = np.zeros(SHAPE, dtype=np.float32)
    seg[19:22, 19:22, 19:22] = 1.0
    return seg


def _ball(radius: float) -> np.ndarray:
    z, y, x = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    return (((z - 20) ** 2 + (y - 20) ** 2 + (x - 20) ** 2) <= radius**2).astype(np.float32)


def _findings(detector: Detector, size_head_mm: float, seg: np.ndarray) -> list[Finding]:
    """One peak (p = 0.9) at the centre with ``size_head_mm`` and segmentation ``seg``."""
    heatmap = np.zeros(SHAPE, dtype=np.float32)
    heatmap[CENTRE] = 0.9
    pred = VolumePrediction(
        segmentation=seg,
        heatmap=heatmap,
        diameter_mm=np.full(SHAPE, size_head_mm, dtype=np.float32),
        triage=np.zeros(SHAPE, dtype=np.float32),
        head_stride=1,
    )
    hu = np.where(seg > 0.5, 30.0, -850.0).astype(np.float32)
    volume = CTVolume(hu, (1.0, 1.0, 1.0))
    pre = SimpleNamespace(volume=volume, lung_mask=np.ones(SHAPE, dtype=bool))
    return detector._findings(volume, pre, pred)  # type: ignore[arg-type]


def test_a_segmentation_headline_below_the_minimum_is_not_shown(detector: Detector) -> None:
    # size head 3.5 mm (above the 3 mm minimum), segmentation 2.37 mm (ratio 0.68: the headline) -> gone;
    # before the fix the filter read the size head and a "2.4 mm" finding was shown
    assert equivalent_diameter(7.0) == pytest.approx(2.37, abs=0.005)
    assert _findings(detector, 3.5, _cross()) == []


def test_a_segmentation_headline_above_the_minimum_is_kept(detector: Detector) -> None:
    # size head 2.5 mm (below the minimum), segmentation 3.72 mm (ratio 1.49: the headline) -> kept
    (f,) = _findings(detector, 2.5, _cube())
    assert f.diameters is not None and f.diameters.source is DiameterSource.SEGMENTATION
    assert (f.diameter_mm, f.volume_mm3) == (round(equivalent_diameter(27.0), 2), 27.0)
    assert f.diameters.size_head_mm == 2.5


def test_nothing_segmented_gives_the_volume_of_the_size_head_diameter(detector: Detector) -> None:
    # the "4.3 mm with 0 mm3": the volume now belongs to the 4.3 mm the finding reports
    (f,) = _findings(detector, 4.3, np.zeros(SHAPE, dtype=np.float32))
    assert f.diameters is not None and f.diameters.source is DiameterSource.SIZE_HEAD
    assert f.diameters.segmentation_mm is None and f.mask is None and f.mask_ref is None
    assert f.diameter_mm == 4.3
    assert f.volume_mm3 == round(np.pi / 6 * 4.3**3, 1) == 41.6


def test_a_leaked_segmentation_does_not_give_the_volume(detector: Detector) -> None:
    # size head 3.2 mm, segmentation about 10 mm (ratio > 2: leaked into a vessel) -> 3.2 mm, 17.2 mm3
    (f,) = _findings(detector, 3.2, _ball(5.0))
    assert f.diameters is not None and f.diameters.source is DiameterSource.SIZE_HEAD
    assert f.diameters.segmentation_mm == pytest.approx(10.0, abs=0.5)
    assert (f.diameter_mm, f.volume_mm3) == (3.2, 17.2)
    assert f.mask_ref is not None and f.mask is not None and f.mask.shape == f.mask_ref.shape_zyx


def test_a_consistent_segmentation_reports_its_own_volume(detector: Detector) -> None:
    ball = _ball(5.0)
    (f,) = _findings(detector, 10.0, ball)
    assert f.diameters is not None and f.diameters.source is DiameterSource.SEGMENTATION
    assert f.volume_mm3 == float(ball.sum())
    assert f.diameter_mm == round(equivalent_diameter(float(ball.sum())), 2)
    assert f.hu_stats is not None and f.hu_stats.mean_hu == 30.0
    assert f.raw_probability == pytest.approx(0.9) and f.center_zyx_preprocessed == (20.0, 20.0, 20.0)


def test_headline_size_rule() -> None:
    seg = _cube()
    m = measure_nodule(seg, np.zeros(SHAPE, dtype=np.float32), np.array(CENTRE, dtype=float), 4.0)
    assert headline_size(4.0, m) == HeadlineSize(3.72, 27.0, DiameterSource.SEGMENTATION)
    assert headline_size(8.0, m) == HeadlineSize(8.0, round(np.pi / 6 * 512, 1), DiameterSource.SIZE_HEAD)
