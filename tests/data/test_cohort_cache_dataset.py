"""Cohort reading and splits, the scan cache, and training items with their targets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from lungcad.config import PreprocessConfig
from lungcad.data.cache import ScanCache
from lungcad.data.cohort import load_split, read_cohort, split_by_patient, write_split
from lungcad.data.dataset import PatchDataset
from lungcad.data.records import ScanRecord
from lungcad.errors import InputError
from lungcad.types import BatchKey
from tests.train.conftest import write_tiny_cohort


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_cohort(tmp_path_factory.mktemp("cohort"), n=4)


def test_read_luna16_layout(cohort: Path) -> None:
    records = read_cohort(cohort)
    assert len(records) == 4
    assert all(len(r.nodules) == 1 and r.nodules[0].diameter_mm == 8.0 for r in records)
    assert all(r.nodules[0].actionable for r in records)  # solid 8 mm -> Lung-RADS 4A


def test_split_by_patient_is_disjoint_seeded_and_roundtrips(cohort: Path, tmp_path: Path) -> None:
    records = read_cohort(cohort)
    train, val = split_by_patient(records, 0.25, seed=1)
    assert len(val) == 1 and len(train) == 3
    assert {r.patient_id for r in train}.isdisjoint({r.patient_id for r in val})
    assert split_by_patient(records, 0.25, seed=1) == (train, val)
    write_split(tmp_path / "s.json", train, val)
    assert load_split(tmp_path / "s.json", records) == (train, val)
    with pytest.raises(InputError, match="scan\\(s\\) not in the cohort"):
        load_split(tmp_path / "s.json", records[:2])


def test_split_needs_two_patients(cohort: Path) -> None:
    with pytest.raises(InputError, match="at least 2 patients"):
        split_by_patient(read_cohort(cohort)[:1], 0.2, 0)


def test_bad_cohort_folders(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_cohort(tmp_path / "nope")
    (tmp_path / "annotations.csv").write_text("seriesuid,coordX,coordY,coordZ,diameter_mm\n")
    with pytest.raises(InputError, match="no scans"):
        read_cohort(tmp_path)


def test_cache_written_once_and_keyed_by_config(cohort: Path, tmp_path: Path) -> None:
    record = read_cohort(cohort)[0]
    cache = ScanCache(tmp_path / "c")
    scan = cache.open(record)
    entry = cache.path(record)
    stamp = os.stat(entry / "image.npy").st_mtime_ns
    again = cache.open(record)
    assert os.stat(entry / "image.npy").st_mtime_ns == stamp  # no second preprocessing
    assert isinstance(again.image, np.memmap) and again.image.dtype == np.float16
    other = ScanCache(tmp_path / "c", PreprocessConfig(target_spacing_mm=2.0))
    assert other.path(record) != entry
    # the nodule centre in the cached grid is a nodule voxel of the cached segmentation
    z, y, x = np.round(scan.nodules_zyx[0]).astype(int)
    assert scan.seg[z, y, x] == 1 and scan.image[z, y, x] > 0.6  # 30 HU -> 0.736


def test_items_are_deterministic_and_targets_follow_the_nodule(cohort: Path, tmp_path: Path) -> None:
    scans = [ScanCache(tmp_path / "c").open(r) for r in read_cohort(cohort)]
    ds = PatchDataset(scans, (32, 32, 32), length=8, positive_fraction=1.0, seed=3)
    a, b = ds[(1, 5)], ds[(1, 5)]
    for key in a:
        assert np.array_equal(a[key].numpy(), b[key].numpy()), key
    assert not np.array_equal(ds[(2, 5)][BatchKey.IMAGE].numpy(), a[BatchKey.IMAGE].numpy())
    for i in range(8):
        item = ds[(0, i)]
        heat, seg = item[BatchKey.HEATMAP][0].numpy(), item[BatchKey.SEGMENTATION][0].numpy()
        peak = np.argwhere(heat == 1.0)
        assert len(peak) == 1, "one positive patch, one nodule centre"
        assert seg[tuple(peak[0])] == 1.0
        centroid = np.argwhere(seg > 0).mean(0)
        assert np.linalg.norm(centroid - peak[0]) < 1.5
        size = item[BatchKey.SIZE][0].numpy()[tuple(peak[0])]
        assert 8.0 / 1.2 < size < 8.0 / 0.8  # zoom augmentation rescales the diameter
        assert item[BatchKey.CENTER_MASK][0].numpy().sum() == 1


def test_negative_patches_avoid_nodules(cohort: Path, tmp_path: Path) -> None:
    scans = [ScanCache(tmp_path / "c").open(r) for r in read_cohort(cohort)]
    ds = PatchDataset(scans, (32, 32, 32), length=4, positive_fraction=0.0, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(30):
        req = ds.sampler.draw(rng)
        assert req.kind in {"lung", "vessel"}
        scan = scans[req.scan_index]
        dist = np.linalg.norm((scan.nodules_zyx - np.asarray(req.center_zyx)) * 1.0, axis=1)
        assert np.all(dist > 4.0 + 5.0)


def test_record_with_missing_image_fails_clearly(tmp_path: Path) -> None:
    rec = ScanRecord("x", "p", tmp_path / "missing.mhd")
    with pytest.raises(InputError, match="does not exist"):
        ScanCache(tmp_path / "c").open(rec)


def test_lidc_layout_consensus_ground_truth(real_data: Path) -> None:
    """LIDC DICOM + XML folders: ground truth is the >= 3-reader consensus, as LUNA16 chose it."""
    records = read_cohort(real_data / "lidc" / "slabs")
    assert len(records) == 3
    by_len = sorted(len(r.nodules) for r in records)
    assert by_len == [0, 1, 3]  # 0002: none; 0001: its 23 mm nodule; 0003: three (two above the slab)
    lidc1 = next(r for r in records if r.scan_id.endswith("603192"))
    (nodule,) = lidc1.nodules
    assert np.linalg.norm(np.subtract(nodule.center_xyz_mm, (56.21, 86.34, -115.87))) < 1.5
    assert abs(nodule.diameter_mm - 23.35) / 23.35 < 0.2
