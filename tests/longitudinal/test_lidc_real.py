"""LIDC-IDRI-0001 against a rotated and shifted copy of itself: every nodule is stable (real data)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from lungcad.infer.detector import Detector
from lungcad.io import load_ct
from lungcad.longitudinal.compare import CompareSettings, compare_sides
from lungcad.longitudinal.sides import side_from_detection
from tests.longitudinal.conftest import moved_copy

LUNA16_NODULE = np.array([56.21, 86.34, -115.87])  # LIDC-IDRI-0001, annotations.csv, 23.35 mm


@pytest.mark.slow
@pytest.mark.realdata
def test_lidc0001_against_a_moved_copy_of_itself_is_all_stable(lidc0001_dir: Path) -> None:
    volume = load_ct(lidc0001_dir)
    meta = dataclasses.replace(volume.metadata, series_uid=volume.metadata.series_uid + ".9")
    pair = moved_copy(volume, (2.0, -1.0, 6.0), (10.0, -8.0, 5.0), meta)  # the copy is the current scan
    detector = Detector.load()
    current = side_from_detection(detector.run(pair.current), "moved copy")
    prior = side_from_detection(detector.run(pair.prior), "LIDC-IDRI-0001")
    c = compare_sides(current, prior, CompareSettings(min_probability=detector.cfg.infer.report_threshold))
    assert c.registration.ok and c.registration.lung_dice > 0.95, c.registration
    assert c.nodules, "the detector found the LUNA16 nodule on neither scan"
    assert [n.status.value for n in c.nodules] == ["stable"] * len(c.nodules), [
        (
            n.status.value,
            n.current_diameter_mm,
            n.prior_diameter_mm,
            n.current_probability,
            n.prior_probability,
        )
        for n in c.nodules
    ]
    nodule = min(
        c.nodules, key=lambda n: float(np.linalg.norm(np.subtract(n.prior_center_xyz_mm, LUNA16_NODULE)))
    )
    assert np.linalg.norm(np.subtract(nodule.prior_center_xyz_mm, LUNA16_NODULE)) < 23.35 / 2
    # the registered prior centre lands where the copy put the nodule (within the detector's own noise)
    assert nodule.registered_distance_mm < 3.0
    assert (
        np.linalg.norm(np.subtract(pair.map(nodule.prior_center_xyz_mm), nodule.current_center_xyz_mm)) < 3.0
    )
