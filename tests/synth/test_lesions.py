"""Every nodule texture, shape and location appears; sizes skew small; malignancy follows the risk factors."""

from __future__ import annotations

import numpy as np
import pytest

from lungcad.synth import NoduleLocation, NoduleShape, SynthScan, generate_scan
from lungcad.synth.anatomy import sample_anatomy
from lungcad.synth.nodules import Placer, malignancy_score, sample_diameter
from lungcad.synth.vessels import build_vessels
from lungcad.types import Texture
from tests.synth.conftest import small_config


@pytest.fixture(scope="module")
def many_nodules() -> list[SynthScan]:
    cfg = small_config(
        nodules_per_scan_max=8,
        texture_mix={t.value: 1.0 for t in Texture},
        shape_mix={s.value: 1.0 for s in NoduleShape},
        location_mix={loc.value: 1.0 for loc in NoduleLocation},
        slice_spacing_range_mm=(5.0, 5.0),
        shape_xy=96,
    )
    return [generate_scan(cfg, i) for i in range(12)]


def test_every_texture_shape_and_location_is_produced(many_nodules: list[SynthScan]) -> None:
    nodules = [n for s in many_nodules for n in s.nodules if not n.micronodule]
    assert {n.texture for n in nodules} == set(Texture)
    assert {n.shape for n in nodules} == set(NoduleShape)
    assert {n.location for n in nodules} == set(NoduleLocation)
    assert all(3.0 <= n.diameter_mm <= 30.0 for n in nodules)
    assert all(1 <= n.malignancy <= 5 for n in nodules)
    # Micronodules (< 3 mm) exist too and are never in annotations.csv.
    micro = [n for s in many_nodules for n in s.nodules if n.micronodule]
    assert micro and all(n.diameter_mm < 3.0 and not n.accepted for n in micro)


def test_scans_without_nodules() -> None:
    scan = generate_scan(small_config(p_no_nodule=1.0, micronodules_per_scan_max=0, shape_xy=96), 0)
    assert scan.nodules == () and scan.annotations == ()
    assert not scan.label.any()


def test_diameters_skew_small() -> None:
    rng = np.random.default_rng(0)
    d = np.array([sample_diameter(rng, 3.0, 30.0, 1.7) for _ in range(20000)])
    assert d.min() >= 3.0 and d.max() <= 30.0
    assert 5.0 < np.median(d) < 8.0  # LIDC's nodules >= 3 mm have a median of ~7 mm
    assert np.mean(d < 10.0) > 0.7


def test_malignancy_rises_with_size_spiculation_and_solid_core() -> None:
    rng = np.random.default_rng(1)

    def mean(d: float, tex: Texture, shape: NoduleShape, fissure: bool = False) -> float:
        return float(np.mean([malignancy_score(d, tex, shape, fissure, rng) for _ in range(400)]))

    small = mean(5.0, Texture.SOLID, NoduleShape.SPHERICAL)
    assert mean(25.0, Texture.SOLID, NoduleShape.SPHERICAL) > small + 1.5
    assert (
        mean(12.0, Texture.SOLID, NoduleShape.SPICULATED)
        > mean(12.0, Texture.SOLID, NoduleShape.SPHERICAL) + 1
    )
    assert mean(12.0, Texture.PART_SOLID, NoduleShape.SPHERICAL) > mean(
        12.0, Texture.GROUND_GLASS, NoduleShape.SPHERICAL
    )
    assert mean(8.0, Texture.CALCIFIED, NoduleShape.SPHERICAL) < 1.5
    assert mean(8.0, Texture.SOLID, NoduleShape.SPHERICAL, fissure=True) < mean(
        8.0, Texture.SOLID, NoduleShape.SPHERICAL
    )


def test_placement_geometry() -> None:
    """Juxtapleural centres sit 0.4-0.75 r inside the pleura; juxtavascular ones touch a 1-4 mm vessel."""
    rng = np.random.default_rng(3)
    anat = sample_anatomy(rng, 320.0, 240.0, contrast=False)
    tree = build_vessels(anat, rng, 400)
    placer = Placer(anat, tree, lambda body, margin: np.ones(len(body), bool), rng)
    r = 4.0
    for _ in range(5):
        centre, fissure = placer.place(r, NoduleLocation.JUXTAPLEURAL)
        sdf, _ = anat.lung_sdf(centre[0:1], centre[1:2], centre[2:3])
        if fissure:
            assert 0.4 * r <= anat.fissure_distance(*centre[:, None])[0] <= 0.75 * r
        else:
            assert -0.75 * r <= sdf[0] <= -0.4 * r
        centre, _ = placer.place(r, NoduleLocation.JUXTAVASCULAR)
        d = tree.b - tree.a
        t = np.clip(np.einsum("ij,ij->i", centre - tree.a, d) / np.einsum("ij,ij->i", d, d), 0, 1)
        gap = np.linalg.norm(centre - (tree.a + t[:, None] * d), axis=1) - 0.5 * (tree.ra + tree.rb)
        assert gap.min() < r  # the nodule surface reaches into a vessel
        centre, _ = placer.place(r, NoduleLocation.ISOLATED)
        sdf, _ = anat.lung_sdf(centre[0:1], centre[1:2], centre[2:3])
        assert sdf[0] < -(r + 5.0)


def test_lesion_labels_match_records(many_nodules: list[SynthScan]) -> None:
    for scan in many_nodules:
        voxel = float(np.prod(scan.volume.spacing_zyx_mm))
        labels = set(np.unique(scan.label).tolist()) - {0}
        assert labels <= {n.label for n in scan.nodules}
        for n in scan.nodules:
            assert n.volume_mm3 == pytest.approx(np.count_nonzero(scan.label == n.label) * voxel)
            assert n.volume_mm3 > 0  # even a lesion smaller than a voxel owns its centre voxel
