"""The mass pass (``lungcad.infer.masses``): masses of 30-80 mm found by the shipped nodule model on the
shrunk image, measured, named "mass", Lung-RADS 4B, and merged with the nodule findings."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lungcad.config import SynthConfig
from lungcad.infer.detector import DetectionOutput, Detector
from lungcad.infer.masses import find_masses, merge_masses, shrink
from lungcad.io import load_ct
from lungcad.preprocess.pipeline import preprocess_ct
from lungcad.synth import SynthScan, generate_scan
from lungcad.types import Finding, LungRads, Texture

# A whole-chest scan on 5 mm slices at 192 x 192 (1.8-2.0 mm pixels), no nodules, one 50 mm solid mass
# against the mediastinum.  Scan 2 of this cohort is the hard case: the mass rests on the heart, and the
# lung mask leaves most of it out (asserted below, so the test keeps testing that case).
MASS_CFG = SynthConfig(
    seed=3,
    shape_xy=192,
    slice_spacing_range_mm=(5.0, 5.0),
    slice_thickness_factor_range=(1.0, 1.0),
    vessel_points_per_tree=600,
    p_no_nodule=1.0,
    nodules_per_scan_max=0,
    p_streak=0.0,
    p_mass=1.0,
    mass_diameter_range_mm=(50.0, 50.0),
    mass_site_mix={"mediastinal": 1.0},
)
MASS_INDEX = 2
LIDC0001_NODULE_XYZ = (56.21, 86.34, -115.87)  # LUNA16 annotations.csv, 23.35 mm
LIDC0001_NODULE_MM = 23.35


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector.load()


@pytest.fixture(scope="module")
def mass_scan() -> SynthScan:
    return generate_scan(MASS_CFG, MASS_INDEX)


@pytest.fixture(scope="module")
def mass_run(detector: Detector, mass_scan: SynthScan) -> DetectionOutput:
    return detector.run(mass_scan.volume)


def _the_mass(scan: SynthScan):
    (mass,) = [n for n in scan.nodules if n.mass]
    return mass


def test_the_synthetic_case_is_a_mass_the_lung_mask_leaves_out(
    mass_scan: SynthScan, mass_run: DetectionOutput
) -> None:
    mass = _the_mass(mass_scan)
    assert mass.diameter_mm == 50.0 and mass.lung_rads is LungRads.C4B
    assert mass_scan.volume.spacing_zyx_mm[0] == 5.0
    lung = mass_run.pre.lungs.full_mask()
    inside = (mass_scan.label == mass.label) & lung
    assert inside.sum() < 0.5 * (mass_scan.label == mass.label).sum()


def test_a_5cm_mass_against_the_mediastinum_on_5mm_slices_is_found(
    detector: Detector, mass_scan: SynthScan, mass_run: DetectionOutput
) -> None:
    mass = _the_mass(mass_scan)
    # The reported diameter is volume-equivalent, so the truth is the labelled volume's (the mass is
    # lobulated and flattened against the mediastinum: 40 mm for this 50 mm lesion).
    truth_mm = (6.0 * mass.volume_mm3 / np.pi) ** (1.0 / 3.0)
    near = [
        f
        for f in mass_run.result.findings
        if np.linalg.norm(np.subtract(f.center_xyz_mm, mass.center_xyz_mm)) < 0.5 * truth_mm
    ]
    assert len(near) == 1, [(f.lesion_kind, f.diameter_mm, f.probability) for f in near]
    (found,) = near
    assert found.lesion_kind == "mass"
    assert abs(found.diameter_mm - truth_mm) <= 0.2 * truth_mm, (found.diameter_mm, truth_mm)
    assert found.lung_rads is LungRads.C4B and found.texture is Texture.SOLID
    assert found.probability >= detector.cfg.infer.report_threshold
    assert found.mask is not None and found.mask.sum() * 1.0 == pytest.approx(found.volume_mm3, rel=1e-6)


def test_the_mass_pass_shows_nothing_on_a_mass_free_scan(detector: Detector) -> None:
    scan = generate_scan(MASS_CFG.model_copy(update={"p_mass": 0.0}), MASS_INDEX)
    assert not any(n.mass for n in scan.nodules)
    pre = preprocess_ct(scan.volume, detector.cfg.preprocess)
    i = detector.cfg.infer
    masses = find_masses(
        detector.predictor,
        pre.image,
        pre.volume.hu,
        pre.lung_mask,
        scale=i.mass_scale,
        patch_size=i.patch_size,
        overlap=i.overlap,
        blend=i.blend,
        threshold=i.peak_threshold,
        bf16=detector.bf16,
    )
    # at most a couple of faint candidates (p ~0.01 in a sweep of synthetic scans), none a reader is shown
    shown = [
        c for c in masses if detector.bundle.detection_calibrator(c.raw_probability) >= i.report_threshold
    ]
    assert shown == [] and len(masses) <= 2, [(c.size.diameter_mm, c.raw_probability) for c in masses]


def test_the_lidc0001_nodule_is_found_once_with_the_mass_pass(detector: Detector, lidc0001_dir: Path) -> None:
    assert detector.cfg.infer.mass_pass
    result = detector.detect(load_ct(lidc0001_dir))
    hits = [
        f
        for f in result.findings
        if f.probability >= detector.cfg.infer.report_threshold
        and np.linalg.norm(np.subtract(f.center_xyz_mm, LIDC0001_NODULE_XYZ)) < LIDC0001_NODULE_MM / 2
    ]
    assert len(hits) == 1 and hits[0].lesion_kind == "nodule"
    assert not any(f.lesion_kind == "mass" for f in result.findings)


def _finding(x: float, d: float, p: float, kind: str = "nodule") -> Finding:
    return Finding(center_xyz_mm=(x, 0.0, 0.0), diameter_mm=d, probability=p, lesion_kind=kind)  # type: ignore[arg-type]


def test_merge_masses_suppresses_findings_inside_a_mass_and_keeps_the_rest() -> None:
    mass = _finding(0.0, 50.0, 0.6, "mass")
    inner, outer, big = _finding(10.0, 12.0, 0.9), _finding(40.0, 8.0, 0.7), _finding(-90.0, 32.0, 0.55)
    weaker_mass = _finding(20.0, 40.0, 0.5, "mass")  # its centre lies inside the first mass: the same lesion
    out = merge_masses([inner, outer, big], [mass, weaker_mass])
    assert [(f.center_xyz_mm[0], f.lesion_kind) for f in out] == [
        (0.0, "mass"),  # took the 0.9 of the nodule peak inside it
        (40.0, "nodule"),  # 40 mm from the centre of a 50 mm mass: outside it
        (-90.0, "mass"),  # 32 mm measured by the full pass: a mass by size
    ]
    assert out[0].probability == 0.9
    assert merge_masses([inner, outer], []) == [inner, outer]


def test_a_sub_30mm_lesion_of_the_mass_pass_yields_to_the_full_pass_finding_of_it() -> None:
    nodule = _finding(0.0, 23.0, 0.99)  # the full pass's, measured at 1 mm
    seen_small = _finding(3.0, 22.0, 0.8)  # the mass pass's view of the same nodule
    missed = _finding(80.0, 26.0, 0.7)  # a 26 mm lesion only the mass pass found, with a 4 mm peak inside
    peak = _finding(84.0, 4.0, 0.6)
    out = merge_masses([nodule, peak], [seen_small, missed])
    assert [(f.center_xyz_mm[0], f.diameter_mm, f.probability) for f in out] == [
        (0.0, 23.0, 0.99),
        (80.0, 26.0, 0.7),
    ]
    assert all(f.lesion_kind == "nodule" for f in out)


def test_shrink_averages_blocks_and_reports_the_exact_factor() -> None:
    image = np.arange(4 * 6 * 8, dtype=np.float32).reshape(4, 6, 8)
    small, f = shrink(image, 2.0)
    assert small.shape == (2, 3, 4)
    np.testing.assert_array_equal(f, [2.0, 2.0, 2.0])
    np.testing.assert_allclose(small[0, 0, 0], image[:2, :2, :2].mean(), rtol=0)
    np.testing.assert_allclose(small[1, 2, 3], image[2:, 4:, 6:].mean(), rtol=0)
    _, f = shrink(np.zeros((10, 10, 5)), 2.5)
    np.testing.assert_allclose(f, [2.5, 2.5, 2.5])  # 10 -> 4 and 5 -> 2


def test_the_report_names_a_mass() -> None:
    from lungcad.report.figures.finding_views import finding_title
    from lungcad.report.shown import ShownFinding

    mass = Finding(
        center_xyz_mm=(0.0, 0.0, 0.0),
        diameter_mm=50.0,
        probability=0.99,
        texture=Texture.SOLID,
        lung_rads=LungRads.C4B,
        lesion_kind="mass",
    )
    assert finding_title(ShownFinding(1, 0, mass)) == "Mass 1 - 50.0 mm solid - Lung-RADS 4B - p 0.99"
    nodule = replace(mass, diameter_mm=8.0, lesion_kind="nodule")
    assert ShownFinding(2, 1, nodule).label == "Nodule 2"
