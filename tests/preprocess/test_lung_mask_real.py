"""Real data: the lung mask on LIDC-IDRI-0001 (skipped without ``../shared/data``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lungcad.io import load_ct
from lungcad.preprocess.lung_mask import segment_lungs
from lungcad.preprocess.qa import Status, check_lung_symmetry

LIDC0001_NODULE_XYZ = (56.21, 86.34, -115.87)  # LUNA16 annotations.csv, 23.35 mm


def test_lidc0001_both_lungs_no_trachea_no_mediastinum(lidc0001_dir: Path) -> None:
    volume = load_ct(lidc0001_dir)
    lungs = segment_lungs(volume)
    assert lungs.trachea_removed  # tracked down from the neck, although below -950 HU on few slices
    assert 3500 < lungs.volume_ml < 4200
    check = check_lung_symmetry(lungs)
    assert check.status is Status.PASS
    assert 0.8 < check.value["ratio"] < 1.0  # the right lung is the larger, as usual
    # no mass here: the enclosure rule adds nothing (the hila and the left atrium stay mediastinum)
    assert lungs.enclosed_ml < 5.0
    z, y, x = np.round(volume.world_to_voxel(LIDC0001_NODULE_XYZ)).astype(int)
    assert lungs.full_mask()[z, y, x]
