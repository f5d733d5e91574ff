"""Synthetic masses (``lungcad.synth.masses``): 30-80 mm lesions at the mediastinum and the chest wall,
with ground truth like a nodule's, and no change at all to cohorts without them (``p_mass`` 0)."""

from __future__ import annotations

import numpy as np
import pytest

from lungcad.config import ConfigError, SynthConfig, load_config
from lungcad.synth import generate_scan
from lungcad.synth.anatomy import ellipse_sdf, outline_sdf, sample_anatomy
from lungcad.synth.geometry import scan_rngs
from lungcad.synth.masses import mass_site_ok
from lungcad.types import LungRads, Texture
from tests.synth.conftest import small_config


def _mass_config(**overrides: object) -> SynthConfig:
    base: dict[str, object] = {
        "p_mass": 1.0,
        "mass_diameter_range_mm": (45.0, 45.0),
        "nodules_per_scan_max": 1,
    }
    base.update(overrides)
    return small_config(**base)


@pytest.mark.parametrize("site", ["mediastinal", "chest-wall"])
def test_a_mass_is_drawn_at_its_site_with_its_ground_truth(site: str) -> None:
    scan = generate_scan(_mass_config(mass_site_mix={site: 1.0}), 0)
    (mass,) = [n for n in scan.nodules if n.mass]
    assert mass.diameter_mm == 45.0 and mass.texture is Texture.SOLID
    assert mass.lung_rads is LungRads.C4B and mass.actionable
    assert mass.to_dict()["mass"] is True
    assert all("mass" not in n.to_dict() for n in scan.nodules if not n.mass)
    lab = scan.label == mass.label
    # clipped to the lung and lobulated, the labelled volume is 40-100 % of the 45 mm sphere's
    sphere = np.pi / 6 * 45.0**3
    assert 0.4 * sphere < mass.volume_mm3 < sphere
    assert lab.sum() * np.prod(scan.volume.spacing_zyx_mm) == pytest.approx(mass.volume_mm3)
    assert scan.volume.hu[lab].mean() > -150  # solid soft tissue (partial volume at its edge)
    rows = [a for a in scan.annotations if np.allclose(a.center_xyz_mm, mass.center_xyz_mm)]
    assert len(rows) == 1 and rows[0].diameter_mm == 45.0


def test_mediastinal_sites_overlap_the_mediastinum_and_chest_wall_sites_the_chest_wall() -> None:
    anat = sample_anatomy(np.random.default_rng(1), 320.0, 240.0, False)
    rng = np.random.default_rng(2)
    h, a = anat.lung_height, anat.half_width
    pts = rng.uniform([-a, -a, -h], [a, a, 0.0], size=(20000, 3))
    r = 25.0
    x, y, z = pts.T
    cx, cy, mw, md = anat.mediastinum(z)
    med = np.minimum(ellipse_sdf(x, y, cx, cy, mw, md), anat.heart_sdf(x, y, z))
    costal = -outline_sdf(x, y, *anat.cavity_axes(z))
    sdf, _ = anat.lung_sdf(x, y, z)
    for site in ("mediastinal", "chest-wall"):
        ok = mass_site_ok(anat, pts, r, site)
        assert ok.sum() > 10, site
        assert np.all(sdf[ok] < -0.45 * r) and np.all(sdf[ok] > -0.7 * r)
        # the centre in the lung, the edge beyond it
    mediastinal, wall = mass_site_ok(anat, pts, r, "mediastinal"), mass_site_ok(anat, pts, r, "chest-wall")
    assert np.all(med[mediastinal] < r) and np.all(costal[mediastinal] > r)  # reaches the mediastinum only
    assert np.all(med[wall] > r) and np.all(costal[wall] < r)  # reaches the chest wall only
    assert not np.any(mediastinal & wall)


def test_no_mass_leaves_every_scan_and_uid_as_it_was() -> None:
    cfg = small_config()
    assert not any(k.startswith(("p_mass", "mass_")) for k in cfg.generation_dict())
    with_masses = cfg.model_copy(update={"p_mass": 0.5})
    assert with_masses.generation_dict()["p_mass"] == 0.5
    # the masses' stream is a new child of the scan's seed sequence: the earlier streams do not move
    rngs = scan_rngs(7, 0)
    children = np.random.SeedSequence([7, 0]).spawn(6)
    old = ("geometry", "anatomy", "vessels", "nodules", "acquisition", "readers")
    for name, child in zip(old, children, strict=True):
        assert rngs[name].random() == np.random.default_rng(child).random()
    a, b = (
        generate_scan(cfg, 0),
        generate_scan(cfg.model_copy(update={"mass_site_mix": {"chest-wall": 1}}), 0),
    )
    np.testing.assert_array_equal(a.volume.hu, b.volume.hu)  # p_mass 0: the mass settings draw nothing


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"mass_diameter_range_mm": [20, 50]}, r"mass_diameter_range_mm"),
        ({"mass_site_mix": {"liver": 1.0}}, r"mass_site_mix"),
        ({"p_mass": 2}, r"synth\.p_mass=2"),
    ],
)
def test_bad_mass_settings_are_rejected(overrides: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(overrides={"synth": overrides}, environ={})
