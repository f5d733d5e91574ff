"""The realism pass (issue 10): defaults byte-identical; hilum, perihilar nodules, distractors, texture."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from lungcad.config import SynthConfig, load_config
from lungcad.errors import ConfigError
from lungcad.synth import SynthScan, generate_scan
from lungcad.synth.airways import carina_position
from lungcad.synth.anatomy import sample_anatomy
from lungcad.synth.distractors import FAINT_DOT, GRANULOMA, PLAQUE
from lungcad.synth.geometry import sample_geometry, scan_rngs
from lungcad.synth.hilum import build_hilum, vessel_gap_mm
from lungcad.synth.parenchyma import texture_field
from lungcad.synth.realism import realism_rngs
from lungcad.synth.vessels import build_vessels
from tests.synth.conftest import small_config

# SHA-256 of volume, label, LUNA16 rows and series UID of two tiny default scans, computed with the generator
# before the realism pass existed (commit 18fe45b): the defaults must reproduce them bit for bit.
PINNED = {
    0: "be493cd8852d832b20b7d61aea5eebcde7b1b10937af5329e253a4f7a8e77ff2",
    1: "635390f794cb854d688dbbd67665ebb341e1f3466c1397a25367b88742b71580",
}
REALISM = {
    "hilum": True,
    "parenchyma_texture_hu": 25.0,
    "p_pleural_plaque": 1.0,
    "granulomas_per_scan_max": 6,
    "faint_dots_per_scan_max": 6,
}


def _tiny(**overrides: object) -> SynthConfig:
    base: dict[str, object] = {
        "n_scans": 1,
        "seed": 7,
        "workers": 1,
        "shape_xy": 96,
        "fov_range_mm": (300.0, 360.0),
        "slice_spacing_range_mm": (5.0, 5.0),
        "vessel_points_per_tree": 200,
        "p_no_nodule": 0.0,
        "nodules_per_scan_max": 4,
        "p_contrast": 0.5,
    }
    base.update(overrides)
    return SynthConfig(**base)


def _digest(scan: SynthScan) -> str:
    h = hashlib.sha256()
    h.update(scan.volume.hu.tobytes())
    h.update(scan.label.tobytes())
    h.update(repr([(a.center_xyz_mm, a.diameter_mm) for a in scan.annotations + scan.excluded]).encode())
    h.update(scan.series_uid.encode())
    return h.hexdigest()


@pytest.mark.parametrize("index", [0, 1])
def test_defaults_reproduce_the_scans_from_before_the_realism_pass(index: int) -> None:
    scan = generate_scan(_tiny(), index)
    assert _digest(scan) == PINNED[index]
    assert not {"hilum", "distractors", "parenchyma_texture_hu"} & set(scan.params)
    assert not set(REALISM) & set(_tiny().generation_dict())


@pytest.fixture(scope="module")
def realistic() -> tuple[SynthScan, SynthScan]:
    """The same scan without and with every realism feature (default location mix)."""
    cfg = small_config(nodules_per_scan_max=5, noise_std_range_hu=(15, 15))
    return generate_scan(cfg, 1), generate_scan(cfg.model_copy(update=REALISM), 1)


@pytest.fixture(scope="module")
def perihilar() -> SynthScan:
    return generate_scan(small_config(location_mix={"perihilar": 1.0}, nodules_per_scan_max=5, **REALISM), 0)


def test_realism_draws_from_its_own_stream(realistic: tuple[SynthScan, SynthScan]) -> None:
    plain, real = realistic
    # Nodules, their labels and reader outcomes do not move when the realism features switch on.
    assert [n.to_dict() for n in plain.nodules] == [n.to_dict() for n in real.nodules]
    # (The series UID changes with the settings, as it must; the rows do not.)
    rows = [[(a.center_xyz_mm, a.diameter_mm) for a in s.annotations + s.excluded] for s in realistic]
    assert rows[1][: len(rows[0])] == rows[0] and len(rows[1]) > len(rows[0])
    assert plain.acquisition == real.acquisition
    assert not np.array_equal(plain.volume.hu, real.volume.hu)
    a, b = realism_rngs(7, 0), realism_rngs(7, 1)
    assert a["texture"].random() != b["texture"].random()


def test_plaques_are_dense_on_the_pleura_and_granulomas_excluded_listed(
    realistic: tuple[SynthScan, SynthScan],
) -> None:
    plain, scan = realistic
    items = scan.params["distractors"]
    kinds = {d["kind"] for d in items}
    assert {PLAQUE, GRANULOMA, FAINT_DOT} <= kinds
    np.testing.assert_array_equal(scan.label, plain.label)  # never labelled as nodules
    excluded = {(tuple(round(v, 3) for v in e.center_xyz_mm), round(e.diameter_mm, 3)) for e in scan.excluded}
    accepted = {tuple(round(v, 3) for v in a.center_xyz_mm) for a in scan.annotations}
    # What each distractor adds over the same scan without it, near its centre (3 x 5 x 5 voxels): on these
    # 2.6 mm pixels partial volume and blur dilute a 2 mm granuloma, yet it stays hundreds of HU above.
    least = {PLAQUE: 500.0, GRANULOMA: 250.0, FAINT_DOT: 100.0}
    for d in items:
        key = (tuple(round(v, 3) for v in d["center_xyz_mm"]), round(d["diameter_mm"], 3))
        assert (key in excluded) == (d["kind"] != FAINT_DOT)
        assert key[0] not in accepted
        assert d["hu"] > 300 if d["kind"] in (PLAQUE, GRANULOMA) else d["hu"] <= 0
        k = np.rint(scan.volume.world_to_voxel(np.asarray(d["center_xyz_mm"]))).astype(int)
        box = (slice(k[0] - 1, k[0] + 2), slice(k[1] - 2, k[1] + 3), slice(k[2] - 2, k[2] + 3))
        added = float((scan.volume.hu[box] - plain.volume.hu[box]).max())
        assert added > least[d["kind"]], d
        if d["kind"] == PLAQUE:
            assert 8.0 <= d["diameter_mm"] <= 25.0 and scan.volume.hu[box].max() > 100


def test_plaque_centres_lie_on_the_costal_pleura() -> None:
    from lungcad.synth.distractors import sample_distractors

    anat = sample_anatomy(np.random.default_rng(3), 320.0, 240.0, False)
    items = sample_distractors(
        anat, 1.0, 0, 0, [], lambda b, m: np.ones(len(b), bool), np.random.default_rng(4)
    )
    assert items and all(d.kind == PLAQUE for d in items)
    for d in items:
        sdf, _ = anat.lung_sdf(d.centre[0:1], d.centre[1:2], d.centre[2:3])
        assert -2.0 < sdf[0] < 0.5  # straddling the pleura
        a_cav = float(anat.cavity_axes(np.float32(d.centre[2]))[0])
        assert abs(d.centre[0]) > 0.45 * a_cav  # lateral: costal, not mediastinal


def test_hilum_vessels_run_from_the_mediastinum_into_the_lung() -> None:
    anat = sample_anatomy(np.random.default_rng(5), 320.0, 240.0, False)
    h = build_hilum(anat, carina_position(anat), np.random.default_rng(6))
    # Each polyline starts at a mediastinal anchor (outside both lungs, inside the cavity) ...
    sdf_a, _ = anat.lung_sdf(h.vessels.a[:, 0], h.vessels.a[:, 1], h.vessels.a[:, 2])
    sdf_b, _ = anat.lung_sdf(h.vessels.b[:, 0], h.vessels.b[:, 1], h.vessels.b[:, 2])
    assert np.sum(sdf_a > 3.0) >= 8  # 10 vessels: 3 + 2 right, 2 + 2 left (anchors)
    # ... and ends in the lung, 5-13 mm thick at the hilum (large calibre), tapering.
    assert np.sum(sdf_b < -3.0) >= 10
    assert h.vessels.ra.max() >= 5.0 and h.vessels.rb.min() < 3.5
    assert len(h.bronchus_lumen) >= 5 and np.all(h.bronchus_outer.ra - h.bronchus_lumen.ra >= 1.0)
    assert np.all((2 * h.node_radii >= 5.0) & (2 * h.node_radii <= 12.0))


def test_perihilar_nodules_touch_a_vessel(perihilar: SynthScan) -> None:
    scan = perihilar
    peri = [n for n in scan.nodules if n.location.value == "perihilar"]
    assert peri, "no perihilar nodule was placed"
    assert not any(n.micronodule for n in peri)
    # Touching = nodule surface within 0.5 mm of a vessel surface, in the scan's body frame: rebuild its
    # geometry, anatomy and vessels from the same streams generate_scan uses.
    cfg = small_config()
    rngs = scan_rngs(cfg.seed, 0)
    r_anat = rngs["anatomy"]
    bw, lh = float(r_anat.uniform(*cfg.body_width_range_mm)), float(r_anat.uniform(*cfg.lung_height_range_mm))
    contrast = bool(r_anat.random() < cfg.p_contrast)
    geom = sample_geometry(cfg, rngs["geometry"], bw, lh)
    anat = sample_anatomy(r_anat, bw, lh, contrast)
    tree = build_vessels(anat, rngs["vessels"], cfg.vessel_points_per_tree)
    h = build_hilum(anat, carina_position(anat), realism_rngs(cfg.seed, 0)["hilum"])
    for n in peri:
        centre = geom.frame.to_body(np.asarray(n.center_xyz_mm))
        gap = min(vessel_gap_mm(centre, tree), vessel_gap_mm(centre, h.as_tree()))
        assert gap < n.diameter_mm / 2 + 0.5


def test_texture_is_unit_variance_and_spatially_correlated() -> None:
    f = texture_field((24, 64, 64), (1.0, 1.0, 1.0), np.random.default_rng(0))
    assert f.std() == pytest.approx(1.0, abs=1e-3)
    lag1 = float(np.mean(f[:, :, 1:] * f[:, :, :-1]))
    assert lag1 > 0.5  # white noise would give ~0


def test_texture_brings_the_parenchyma_iqr_into_the_real_band() -> None:
    from lungcad.preprocess.lung_mask import segment_lungs
    from lungcad.synth.parenchyma import parenchyma_iqr

    cfg = load_config("configs/synth_realistic.yaml").synth.model_copy(
        update={
            "shape_xy": 160,
            "slice_spacing_range_mm": (2.5, 2.5),
            "vessel_points_per_tree": 600,
            "seed": 3,
        }
    )
    scan = generate_scan(cfg, 0)
    iqr = parenchyma_iqr(scan.volume, segment_lungs(scan.volume).full_mask())["iqr"]
    # Real LIDC-IDRI-0001 / -0002: 61 / 50 HU (scripts/measure_parenchyma.py); mean 55.5 +- 10 %.
    assert 50.0 <= iqr <= 61.0


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"parenchyma_texture_hu": -1.0}, "parenchyma_texture_hu"),
        ({"p_pleural_plaque": 1.5}, "p_pleural_plaque"),
        ({"granulomas_per_scan_max": -2}, "granulomas_per_scan_max"),
        ({"location_mix": {"hilar": 1.0}}, "location_mix"),
    ],
)
def test_bad_realism_settings_are_rejected(overrides: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(overrides={"synth": overrides}, environ={})
