"""Ground truth is consistent across every output: CSV, manifest, LIDC XML, label mask, DICOM, MetaImage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lungcad.annotations.consensus import consensus_nodules
from lungcad.annotations.lidc_xml import find_lidc_xml, read_lidc_xml
from lungcad.annotations.luna16 import read_luna16_annotations, read_luna16_excluded, read_luna16_seriesuids
from lungcad.annotations.masks import nodule_mask
from lungcad.io import load_ct
from lungcad.preprocess.resample import isotropic_grid, resample_onto
from lungcad.synth import SynthScan, generate_cohort
from tests.synth.conftest import small_config


def _manifest(cohort_dir: Path) -> dict:
    return json.loads((cohort_dir / "manifest.json").read_text())


def test_csv_rows_are_the_accepted_nodules(cohort_dir: Path) -> None:
    manifest = _manifest(cohort_dir)
    rows = read_luna16_annotations(cohort_dir / "annotations.csv")
    excluded = read_luna16_excluded(cohort_dir / "annotations_excluded.csv")
    assert read_luna16_seriesuids(cohort_dir / "seriesuids.csv") == [
        s["series_uid"] for s in manifest["scans"]
    ]
    want, want_excluded = [], []
    for scan in manifest["scans"]:
        for n in scan["nodules"]:
            entry = (scan["series_uid"], *n["center_xyz_mm"], n["diameter_mm"])
            (want if n["accepted"] else want_excluded).append(entry)
            assert n["accepted"] == (
                not n["micronodule"] and n["diameter_mm"] >= 3 and n["readers_contoured"] >= 3
            )
    assert [(r.seriesuid, *r.center_xyz_mm, r.diameter_mm) for r in rows] == want
    got_excluded = [(r.seriesuid, *r.center_xyz_mm, r.diameter_mm) for r in excluded if r.diameter_mm > 0]
    assert got_excluded == want_excluded
    assert rows, "the fixture cohort should hold at least one accepted nodule"
    # Non-nodule marks (scars) have unknown size.
    assert all(r.diameter_mm == -1.0 for r in excluded if r.diameter_mm <= 0)


@pytest.mark.parametrize("source", ["dicom_dir", "mhd"])
def test_csv_centres_land_in_their_masks_after_load_and_resampling(cohort_dir: Path, source: str) -> None:
    for scan in _manifest(cohort_dir)["scans"]:
        volume = load_ct(cohort_dir / scan[source])
        label = load_ct(cohort_dir / scan["mask"])
        np.testing.assert_allclose(label.origin_xyz_mm, volume.origin_xyz_mm, rtol=0, atol=1e-4)
        iso = isotropic_grid(volume, 1.0)
        iso_label = resample_onto(volume, iso, array=label.hu, order=0, fill_value=0)
        for n in scan["nodules"]:
            if n["diameter_mm"] < 3:
                continue
            k = tuple(np.round(iso.world_to_voxel(n["center_xyz_mm"])).astype(int))
            assert iso_label[k] == n["label"], (scan["scan_id"], n)


def test_dicom_and_metaimage_load_the_same_way(cohort_dir: Path, small_scan: SynthScan) -> None:
    scan = _manifest(cohort_dir)["scans"][0]
    dicom = load_ct(cohort_dir / scan["dicom_dir"])
    mhd = load_ct(cohort_dir / scan["mhd"])
    for vol in (dicom, mhd):
        np.testing.assert_array_equal(vol.hu, small_scan.volume.hu)  # whole HU everywhere
        np.testing.assert_allclose(vol.spacing_zyx_mm, small_scan.volume.spacing_zyx_mm, rtol=0, atol=1e-9)
        np.testing.assert_allclose(vol.origin_xyz_mm, small_scan.volume.origin_xyz_mm, rtol=0, atol=1e-9)
        np.testing.assert_allclose(vol.direction, small_scan.volume.direction, rtol=0, atol=1e-12)
    assert dicom.metadata.series_uid == mhd.metadata.series_uid == scan["series_uid"]
    assert dicom.metadata.sop_uids == small_scan.uids.sop_uids
    assert dicom.metadata.kernel == small_scan.acquisition.kernel


def test_xml_round_trips_and_agrees_with_mask_and_csv(cohort_dir: Path) -> None:
    for scan in _manifest(cohort_dir)["scans"]:
        dicom_dir = cohort_dir / scan["dicom_dir"]
        xml = find_lidc_xml(dicom_dir, scan["series_uid"])
        assert xml == cohort_dir / scan["xml"]
        read = read_lidc_xml(xml)
        assert read.series_uid == scan["series_uid"] and len(read.sessions) == 4
        volume = load_ct(dicom_dir)
        label = load_ct(cohort_dir / scan["mask"]).hu.astype(np.uint8)
        # Each reader's filled contours (LIDC: outline just outside the nodule) cover its label.
        for session in read.sessions:
            for nodule in session.nodules:
                mask = nodule_mask(nodule, volume)
                values, counts = np.unique(label[mask], return_counts=True)
                assert values[np.argmax(counts)] > 0, "a contour must lie on a labelled lesion"
        # The consensus of >= 3 readers reproduces annotations.csv.
        accepted = [n for n in scan["nodules"] if n["accepted"]]
        found = [c for c in consensus_nodules(read, volume) if c.n_readers >= 3 and c.diameter_mm]
        assert len(found) == len(accepted)
        for n in accepted:
            d = [np.linalg.norm(np.subtract(c.center_xyz_mm, n["center_xyz_mm"])) for c in found]
            assert min(d) < n["diameter_mm"] / 2


def test_missing_slices_are_missing_everywhere(tmp_path: Path) -> None:
    cfg = small_config(n_scans=1, p_missing_slice=1.0, shape_xy=96, output_format="dicom")
    manifest = generate_cohort(cfg, tmp_path, progress=False)
    scan = manifest["scans"][0]
    missing = scan["params"]["acquisition"]["missing_slices"]
    assert 1 <= len(missing) <= 3
    files = sorted((tmp_path / scan["dicom_dir"]).glob("*.dcm"))
    assert len(files) == scan["params"]["shape_zyx"][0] - len(missing)
    assert not any(f.name == f"{k + 1:06d}.dcm" for k in missing for f in files)
    volume = load_ct(tmp_path / scan["dicom_dir"])
    assert volume.metadata.slice_report is not None and volume.metadata.slice_report.n_gaps == 1
    read = read_lidc_xml(tmp_path / scan["xml"])
    z_missing = {
        round(scan["params"]["origin_xyz_mm"][2] + k * scan["params"]["spacing_zyx_mm"][0], 3)
        for k in missing
    }
    for session in read.sessions:
        for nodule in session.nodules:
            assert not {round(r.z_mm, 3) for r in nodule.rois} & z_missing
