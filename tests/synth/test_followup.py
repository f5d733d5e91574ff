"""Follow-up pairs (``lungcad synth --follow-up``): the ground truth in ``followup.json`` is exact."""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest
from scipy.ndimage import map_coordinates

from lungcad.annotations.luna16 import read_luna16_annotations
from lungcad.config import SynthConfig
from lungcad.config_synth import FollowupConfig
from lungcad.data.cohort import read_cohort
from lungcad.io.load import load_ct
from lungcad.synth.cohort import sha256_file
from lungcad.synth.followup import _fates, generate_followup_pair, scaled_spec
from lungcad.synth.followup_cohort import generate_followup_cohort
from lungcad.synth.followup_manifest import (
    FollowupManifest,
    NoduleStatus,
    doubling_volume,
    load_followup_manifest,
    sphere_volume,
)

from .conftest import small_config

# Every fate likely on a few patients: many nodules, few stable, up to two new ones.
FOLLOWUP = {
    "status_mix": {"stable": 0.2, "growing": 0.4, "shrinking": 0.2, "resolved": 0.2},
    "new_nodules_max": 2,
}


def followup_config(**overrides: object) -> SynthConfig:
    base: dict[str, object] = {
        "nodules_per_scan_max": 6,
        "diameter_range_mm": (5.0, 15.0),
        "followup": FOLLOWUP,
    }
    base.update(overrides)
    return small_config(**base)


@pytest.fixture(scope="module")
def fu_cfg() -> SynthConfig:
    return followup_config(n_scans=3, output_format="both")


@pytest.fixture(scope="module")
def fu_cohort(tmp_path_factory: pytest.TempPathFactory, fu_cfg: SynthConfig) -> Path:
    out = tmp_path_factory.mktemp("followup")
    generate_followup_cohort(fu_cfg, out, progress=False)
    return out


@pytest.fixture(scope="module")
def manifest(fu_cohort: Path) -> FollowupManifest:
    return load_followup_manifest(fu_cohort)


def _both(manifest: FollowupManifest):
    for patient in manifest.patients:
        for nod in patient.nodules:
            yield patient, nod


def test_every_status_occurs_and_ids_are_unique(manifest: FollowupManifest) -> None:
    statuses = {nod.status for _, nod in _both(manifest)}
    # (resolved is drawn in test_fates_respect_the_limits: these few patients hold few nodules)
    assert NoduleStatus.NEW in statuses
    assert statuses & {NoduleStatus.GROWING, NoduleStatus.SHRINKING}
    ids = [nod.nodule_id for _, nod in _both(manifest)]
    assert len(ids) == len(set(ids))


def test_prior_centres_map_onto_current_centres(manifest: FollowupManifest) -> None:
    matched = 0
    for patient, nod in _both(manifest):
        m = patient.transform()
        assert not np.allclose(m, np.eye(4))  # the patient did move
        if nod.prior is not None and nod.current is not None:
            mapped = patient.map_prior_to_current(np.array(nod.prior.center_xyz_mm))
            np.testing.assert_allclose(mapped, nod.current.center_xyz_mm, rtol=0, atol=1e-6)
            matched += 1
    assert matched >= 3


def test_volumes_follow_the_doubling_time(manifest: FollowupManifest) -> None:
    for patient, nod in _both(manifest):
        for tp in (nod.prior, nod.current):
            if tp is not None:
                assert tp.volume_mm3 == pytest.approx(sphere_volume(tp.diameter_mm), rel=1e-12)
        if nod.prior is None or nod.current is None:
            assert nod.vdt_days is None
            continue
        dt = patient.interval_days
        want = doubling_volume(nod.prior.volume_mm3, dt, nod.vdt_days)
        assert nod.current.volume_mm3 == pytest.approx(want, rel=1e-9)
        ratio = nod.current.volume_mm3 / nod.prior.volume_mm3
        if nod.status == NoduleStatus.GROWING:
            assert nod.vdt_days > 0 and 1.25 - 1e-9 <= ratio <= 8.0 + 1e-9
            assert nod.vdt_days == pytest.approx(dt * math.log(2) / math.log(ratio), rel=1e-9)
        elif nod.status == NoduleStatus.SHRINKING:
            assert nod.vdt_days < 0 and ratio <= 1 / 1.25 + 1e-9 and nod.current.diameter_mm >= 3.0
        else:
            assert nod.status == NoduleStatus.STABLE and nod.vdt_days is None and ratio == 1.0


def test_masks_and_csvs_per_timepoint(fu_cohort: Path, manifest: FollowupManifest) -> None:
    for patient in manifest.patients:
        masks = {t: load_ct(fu_cohort / getattr(patient, t).mask).hu for t in ("prior", "current")}
        for t in ("prior", "current"):
            scan = getattr(patient, t)
            rows = [
                a
                for a in read_luna16_annotations(fu_cohort / t / "annotations.csv")
                if a.seriesuid == scan.series_uid
            ]
            listed = [nod for nod in patient.nodules if getattr(nod, t) and getattr(nod, t).in_annotations]
            assert len(rows) == len(listed)
            for nod in patient.nodules:
                on = getattr(nod, t)
                present = bool(np.any(masks[t] == nod.label))
                if on is None:  # new on the prior / resolved on the current: not in the mask, not in the CSV
                    assert not present
                    other = nod.current if t == "prior" else nod.prior
                    assert all(
                        np.linalg.norm(np.subtract(r.center_xyz_mm, other.center_xyz_mm)) > 1.0 for r in rows
                    )
                elif not nod.micronodule:  # a sub-voxel micronodule against the pleura may hold no voxel
                    assert present and on.mask_volume_mm3 > 0


def test_study_dates_and_identity_in_the_dicom(fu_cohort: Path, manifest: FollowupManifest) -> None:
    for patient in manifest.patients:
        heads = {
            t: pydicom.dcmread(next(iter(sorted((fu_cohort / getattr(patient, t).dicom_dir).glob("*.dcm")))))
            for t in ("prior", "current")
        }
        for t, ds in heads.items():
            scan = getattr(patient, t)
            assert ds.StudyDate == ds.SeriesDate == ds.AcquisitionDate == scan.study_date
            assert ds.StudyInstanceUID == scan.study_uid and ds.SeriesInstanceUID == scan.series_uid
            assert ds.PatientID == patient.patient_id
        days = (
            datetime.strptime(heads["current"].StudyDate, "%Y%m%d")
            - datetime.strptime(heads["prior"].StudyDate, "%Y%m%d")
        ).days
        assert days == patient.interval_days > 0
        assert heads["prior"].StudyInstanceUID != heads["current"].StudyInstanceUID


def test_each_timepoint_is_an_ordinary_cohort(fu_cohort: Path, manifest: FollowupManifest) -> None:
    for name, digest in manifest.files.items():
        assert sha256_file(fu_cohort / name) == digest
    for t in ("prior", "current"):
        records = read_cohort(fu_cohort / t)
        assert len(records) == manifest.n_patients
        assert not (fu_cohort / t / "synth-incomplete.json").exists()


def test_same_anatomy_under_the_recorded_transform(tmp_path: Path) -> None:
    """Without noise, the prior warped through ``prior_to_current`` reproduces the current scan."""
    pair = generate_followup_pair(followup_config(noise_std_range_hu=(0.0, 0.0)), 1)
    prior, cur = pair.prior.volume, pair.current.volume
    assert prior.shape == cur.shape
    zyx = np.stack(np.meshgrid(*[np.arange(0, n, 2) for n in cur.shape], indexing="ij"), -1).reshape(-1, 3)
    inv = np.linalg.inv(pair.prior_to_current)
    world_prior = cur.voxel_to_world(zyx.astype(float)) @ inv[:3, :3].T + inv[:3, 3]
    warped = map_coordinates(prior.hu, prior.world_to_voxel(world_prior).T, order=1, mode="nearest")
    target = cur.hu[tuple(zyx.T)]
    body = target > -900
    before = np.abs(prior.hu[tuple(zyx.T)] - target)[body].mean()
    after = np.abs(warped - target)[body].mean()
    assert after < 0.6 * before  # measured about 0.35-0.45
    assert np.median(np.abs(warped - target)[body]) < 5.0


def test_deterministic_and_written_as_generated(fu_cohort: Path, fu_cfg: SynthConfig, manifest) -> None:
    pair = generate_followup_pair(fu_cfg, 0)
    patient = manifest.patients[0]
    assert pair.interval_days == patient.interval_days
    np.testing.assert_allclose(pair.prior_to_current, patient.transform(), rtol=0, atol=0)
    written = load_ct(fu_cohort / patient.current.mhd)
    np.testing.assert_array_equal(written.hu, pair.current.volume.hu)


def test_fates_respect_the_limits() -> None:
    base = generate_followup_pair(followup_config(), 0).fates[0].prior
    assert base is not None
    fu = FollowupConfig(status_mix={"growing": 1.0, "shrinking": 1.0, "resolved": 0.5})
    rng = np.random.default_rng(0)
    specs = [scaled_spec(base, d / base.diameter_mm) for d in np.linspace(4.0, 28.0, 40)]
    fates = _fates(fu, rng, specs, [base], 365)
    assert [f.label for f in fates] == list(range(1, 42))
    assert fates[-1].status == NoduleStatus.NEW and fates[-1].prior is None and fates[-1].vdt_days is None
    fates = fates[:-1]
    kinds = {f.status for f in fates}
    assert kinds <= {NoduleStatus.GROWING, NoduleStatus.SHRINKING, NoduleStatus.STABLE, NoduleStatus.RESOLVED}
    assert {NoduleStatus.GROWING, NoduleStatus.SHRINKING, NoduleStatus.RESOLVED} <= kinds
    for f in fates:
        assert f.prior is not None
        if f.status == NoduleStatus.RESOLVED:
            assert f.current is None and f.vdt_days is None
            continue
        assert f.current is not None
        if f.vdt_days is not None:
            factor = f.current.diameter_mm / f.prior.diameter_mm
            assert factor**3 == pytest.approx(2 ** (365 / f.vdt_days), rel=1e-9)
            assert 3.0 <= f.current.diameter_mm <= 30.0 + 1e-9
            np.testing.assert_allclose(f.current.semi_axes, f.prior.semi_axes * factor, rtol=1e-12)


def test_existing_folder_and_bad_manifest_are_refused(
    fu_cohort: Path, fu_cfg: SynthConfig, tmp_path: Path
) -> None:
    from lungcad.errors import InputError

    with pytest.raises(InputError, match="already holds a cohort"):
        generate_followup_cohort(fu_cfg, fu_cohort, progress=False)
    with pytest.raises(InputError, match="no followup.json"):
        load_followup_manifest(tmp_path)
    data = json.loads((fu_cohort / "followup.json").read_text())
    data["patients"][0]["nodules"][0]["status"] = "vanished"
    bad = tmp_path / "followup.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"patients\.0\.nodules\.0\.status"):
        load_followup_manifest(bad)
