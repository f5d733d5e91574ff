"""Real data: LIDC-IDRI-0001 (full series) and the three LIDC slabs, checked against LUNA16 facts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lungcad.io import load_ct_with_discovery
from lungcad.preprocess.pipeline import preprocess_ct
from lungcad.types import CTVolume

LIDC0001_UID = "1.3.6.1.4.1.14519.5.2.1.6279.6001.179049373636438705059720603192"
LIDC0001_NODULE_XYZ = (56.21, 86.34, -115.87)  # LUNA16 annotations.csv, 23.35 mm


def hu_at(volume: CTVolume, xyz: tuple[float, float, float]) -> float:
    z, y, x = np.round(volume.world_to_voxel(xyz)).astype(int)
    return float(volume.hu[z, y, x])


def luna_nodules(real_data: Path, series_uid: str) -> list[tuple[float, float, float, float]]:
    rows = (real_data / "luna16" / "annotations.csv").read_text().splitlines()[1:]
    out = []
    for row in rows:
        uid, x, y, z, d = row.split(",")
        if uid == series_uid:
            out.append((float(x), float(y), float(z), float(d)))
    return out


@pytest.fixture(scope="module")
def lidc0001(real_data: Path):
    return load_ct_with_discovery(real_data / "lidc" / "LIDC-IDRI-0001")


def test_finds_ct_series_and_ignores_radiograph_folder(lidc0001) -> None:
    volume, found = lidc0001
    assert [s.series_uid for s in found.ct_series()] == [LIDC0001_UID]
    assert volume.shape == (133, 512, 512)
    assert volume.spacing_zyx_mm == pytest.approx((2.5, 0.703125, 0.703125))
    skipped = {p.name for p, _ in found.skipped}
    assert skipped == {"069.xml", "068.xml"}  # the CT read and the radiograph read XML: not images
    assert volume.metadata.manufacturer == "GE MEDICAL SYSTEMS"
    assert volume.metadata.kernel == "STANDARD"


def test_nodule_hu_and_lung_hu(lidc0001) -> None:
    volume, _ = lidc0001
    assert hu_at(volume, LIDC0001_NODULE_XYZ) > -300.0
    pre = preprocess_ct(volume)
    assert float(np.median(pre.volume.hu[pre.lung_mask])) < -700.0
    # after resampling to 1 mm the same world point still lands on the nodule, inside the lung mask
    assert pre.volume.spacing_zyx_mm == (1.0, 1.0, 1.0)
    assert hu_at(pre.volume, LIDC0001_NODULE_XYZ) > -300.0
    z, y, x = np.round(pre.volume.world_to_voxel(LIDC0001_NODULE_XYZ)).astype(int)
    assert pre.lung_mask[z, y, x]
    assert pre.qa.get("lung_coverage").status.value == "pass"
    assert pre.qa.get("missing_slices").status.value == "pass"


def test_resampled_nodule_profile_matches_original(lidc0001) -> None:
    """The nodule's HU profile along x is the same in world mm before and after resampling."""
    volume, _ = lidc0001
    pre = preprocess_ct(volume)
    xs = np.arange(-6.0, 6.5, 1.0)
    for vol in (volume, pre.volume):
        vals = [hu_at(vol, (LIDC0001_NODULE_XYZ[0] + dx, *LIDC0001_NODULE_XYZ[1:])) for dx in xs]
        assert min(vals) > -300.0, vals  # 12 mm across the centre of a 23 mm nodule is all solid


SLABS = ["LIDC-IDRI-0001", "LIDC-IDRI-0002", "LIDC-IDRI-0003"]


@pytest.mark.parametrize("name", SLABS)
def test_slabs(real_data: Path, name: str) -> None:
    volume, found = load_ct_with_discovery(real_data / "lidc" / "slabs" / name)
    assert len(found.ct_series()) == 1
    assert volume.shape[0] in {16, 12, 11}
    pre = preprocess_ct(volume)
    assert float(np.median(pre.volume.hu[pre.lung_mask])) < -700.0
    # a slab cuts the lungs: QA must say so rather than pass it as a complete chest
    assert pre.qa.get("lung_coverage").status.value == "fail"
    for x, y, z, _d in luna_nodules(real_data, volume.metadata.series_uid):
        zi = volume.world_to_voxel((x, y, z))[0]
        if 0 <= zi <= volume.shape[0] - 1:
            assert hu_at(volume, (x, y, z)) > -300.0
            assert hu_at(pre.volume, (x, y, z)) > -300.0
