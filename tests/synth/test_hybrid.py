"""Hybrid scans: synthetic nodules inserted into a real CT (the committed LIDC-IDRI-0001 slab; the full
LIDC-IDRI-0002 series when ``../shared/data`` is present)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from lungcad.config import SynthConfig
from lungcad.data.cohort import read_cohort, read_synthetic_cohort
from lungcad.io import load_ct
from lungcad.io.image import load_image
from lungcad.synth.cohort import verify_cohort
from lungcad.synth.hybrid import generate_hybrid_cohort
from lungcad.synth.hybrid_host import VESSEL_HU, Host, analyse_host
from lungcad.synth.hybrid_render import _z_profile, insert_lesion
from lungcad.synth.hybrid_sites import SiteChooser, SiteKind
from lungcad.synth.nodules import NoduleLocation, NoduleShape, NoduleSpec
from lungcad.types import Texture

REPO = Path(__file__).resolve().parents[2]
SLAB = REPO / "tests" / "data" / "lidc_slab_0001"
NODULE_0001 = (56.21, 86.34, -115.87)  # LUNA16: the 23.35 mm nodule of LIDC-IDRI-0001


@pytest.fixture(scope="module")
def host() -> Host:
    return analyse_host(SLAB, seed=0)


def sphere(centre: np.ndarray, d: float, texture: Texture = Texture.SOLID, hu: float = 30.0) -> NoduleSpec:
    return NoduleSpec(
        centre=np.asarray(centre, dtype=np.float64),
        diameter_mm=d,
        texture=texture,
        shape=NoduleShape.SPHERICAL,
        location=NoduleLocation.ISOLATED,
        semi_axes=np.full(3, d / 2),
        rotation=np.eye(3),
        hu=hu,
        soft_margin_mm=1.0 if texture == Texture.GROUND_GLASS else 0.0,
    )


def _site(host: Host, kind: SiteKind, r: float, seed: int = 0) -> np.ndarray:
    centre = SiteChooser(host, np.random.default_rng(seed)).choose(kind, r)
    assert centre is not None, f"no {kind} site of radius {r} mm found"
    return centre


def test_slice_profile_weights_are_a_box_of_the_thickness() -> None:
    # Sub-slices every 0.5 mm from 0.25 to 9.75 mm; host slices at 5 mm, thickness 2.5 mm: the box
    # [3.75, 6.25] covers sub-slices 4.25 ... 5.75 whole (4 x 0.5 mm) and half of 3.75 and 6.25 (2 x 0.25).
    fine = np.arange(20) * 0.5 + 0.25
    w = _z_profile(fine, 0.5, np.array([5.0]), 2.5)
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.count_nonzero(w) == 6 and w[0, 9] == pytest.approx(0.2) and w[0, 7] == pytest.approx(0.1)


def test_host_measurements(host: Host) -> None:
    # GE STANDARD kernel, 2.5 mm slices; the noise of uniform soft tissue on LIDC scans is 12-20 HU.
    assert host.psf_fwhm_mm == pytest.approx(0.9)
    assert host.slice_thickness_mm == pytest.approx(2.5)
    assert 8.0 < host.noise_std_hu < 25.0 and 0.5 < host.noise_sigma_px < 1.5
    assert host.lung.sum() * np.prod(host.volume.spacing_zyx_mm) / 1000 > 300  # ml


def test_mask_volume_matches_diameter_and_host_is_untouched_outside(host: Host) -> None:
    d = 8.0
    centre = _site(host, SiteKind.ISOLATED, d / 2)
    hu = host.volume.hu.copy()
    label = np.zeros(hu.shape, dtype=np.uint8)
    done = insert_lesion(host, hu, label, sphere(centre, d), 1, np.random.default_rng(1))
    assert done is not None
    vol_mm3 = label.sum() * np.prod(host.volume.spacing_zyx_mm)
    assert vol_mm3 == pytest.approx(np.pi / 6 * d**3, rel=0.15)  # 268 mm^3 drawn
    # Outside the box, and inside it where the imaged occupancy is < 1e-3: the host, bit-exact.
    outside = np.ones(hu.shape, dtype=bool)
    outside[done.box] = done.occupancy < 1e-3
    assert np.array_equal(hu[outside], host.volume.hu[outside])
    assert not np.array_equal(hu, host.volume.hu)
    # The centre is solid tissue now, the lung around it still lung.
    c = np.rint(host.volume.world_to_voxel(centre)).astype(int)
    assert hu[tuple(c)] > -150 and host.volume.hu[tuple(c)] < -500


def _highpass_std(image: np.ndarray, where: np.ndarray) -> float:
    res = image - ndimage.gaussian_filter(image, (0, 1.5, 1.5))
    return float(res[where].std())


def test_host_noise_reproduced_inside_the_lesion(host: Host) -> None:
    d = 16.0
    centre = _site(host, SiteKind.ISOLATED, d / 2, seed=3)
    hu = host.volume.hu.copy()
    label = np.zeros(hu.shape, dtype=np.uint8)
    done = insert_lesion(host, hu, label, sphere(centre, d, hu=40.0), 1, np.random.default_rng(2))
    assert done is not None
    inplane = np.ones((1, 3, 3), dtype=bool)
    core = ndimage.binary_erosion(label > 0, inplane, iterations=3)
    # The same lesion (same stream: same texture) inserted with the noise switched off.
    flat = host.volume.hu.copy()
    zero_noise = Host(**{**host.__dict__, "noise_std_hu": 0.0})
    spec = sphere(centre, d, hu=40.0)
    insert_lesion(zero_noise, flat, np.zeros(hu.shape, dtype=np.uint8), spec, 1, np.random.default_rng(2))
    assert core.sum() > 50
    # Inside the core the host's own noise is displaced and the added noise is all there is: its std is
    # the host's (rounding to whole HU adds ~0.3 HU).
    added = (hu - flat)[core]
    assert float(added.std()) == pytest.approx(host.noise_std_hu, rel=0.2)
    # Its grain: the high-pass part of the noise in the core against the host's own uniform soft tissue.
    soft = ndimage.binary_erosion((host.volume.hu > -100) & (host.volume.hu < 100), inplane, iterations=3)
    assert soft.sum() > 1000
    ref = _highpass_std(host.volume.hu, soft)
    noise_hp = np.sqrt(max(_highpass_std(hu, core) ** 2 - _highpass_std(flat, core) ** 2, 0.0))
    assert 0.6 * ref < noise_hp < 1.6 * ref, (noise_hp, ref)


@pytest.mark.parametrize("kind", list(SiteKind))
def test_sites_satisfy_their_definition(host: Host, kind: SiteKind) -> None:
    r = 3.0
    centre = _site(host, kind, r, seed=5)
    hu = host.volume.hu.copy()
    label = np.zeros(hu.shape, dtype=np.uint8)
    assert insert_lesion(host, hu, label, sphere(centre, 2 * r), 1, np.random.default_rng(0)) is not None
    mask = label > 0
    assert mask.any() and np.all(host.lung[mask])
    near = ndimage.binary_dilation(mask, iterations=1)
    vessel = host.lung & (host.volume.hu > VESSEL_HU)
    boundary_touched = bool(np.any(near & ~host.lung))
    if kind == SiteKind.JUXTAPLEURAL:
        assert boundary_touched
    if kind in (SiteKind.JUXTAVASCULAR, SiteKind.PERIHILAR):
        assert np.any(near & vessel & ~mask) or np.any(mask & vessel)
    if kind == SiteKind.ISOLATED:
        assert not boundary_touched
    if kind == SiteKind.PERIHILAR:
        c = np.floor(host.volume.world_to_voxel(centre) / host.lungs.factors).astype(int)
        lo, hi = np.maximum(c - 2, 0), c + 3
        assert host.hilum[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]].any()


def _annotations_dir(tmp: Path, uid: str) -> Path:
    folder = tmp / "luna"
    folder.mkdir()
    x, y, z = NODULE_0001
    (folder / "annotations.csv").write_text(
        f"seriesuid,coordX,coordY,coordZ,diameter_mm\n{uid},{x},{y},{z},23.35\n"
    )
    (folder / "annotations_excluded.csv").write_text(
        f"seriesuid,coordX,coordY,coordZ,diameter_mm\n{uid},-100.0,0.0,-110.0,-1\nother,1,2,3,4\n"
    )
    return folder


def test_cohort_reads_back_with_host_findings_and_is_deterministic(host: Host, tmp_path: Path) -> None:
    ann = _annotations_dir(tmp_path, host.series_uid)
    cfg = SynthConfig(p_no_nodule=0.0, nodules_per_scan_max=3, diameter_range_mm=(4.0, 12.0))
    runs = []
    for name in ("a", "b"):
        m = generate_hybrid_cohort([SLAB], tmp_path / name, cfg, 2, seed=11, host_annotations=ann)
        runs.append(m)
    a, b = runs
    assert [s["files"] for s in a["scans"]] == [s["files"] for s in b["scans"]]  # byte-identical images
    assert a["files"] == b["files"]
    assert len({s["series_uid"] for s in a["scans"]} | {host.series_uid}) == 3  # new UIDs
    records = read_synthetic_cohort(tmp_path / "a")
    assert len(records) == 2
    for scan, rec in zip(a["scans"], records, strict=True):
        assert scan["params"]["background_series_uid"] == host.series_uid
        sources = [n["source"] for n in scan["nodules"]]
        assert sources.count("host") == 1 and sources.count("inserted") >= 1
        assert len(rec.excluded) == 1  # the host's one excluded row of this series, not the other's
        real = [n for n in rec.nodules if n.center_xyz_mm == NODULE_0001]
        assert len(real) == 1 and real[0].label > 0
        assert {n["site"] for n in scan["nodules"] if n["source"] == "inserted"} <= {
            k.value for k in SiteKind
        }
        for n in scan["nodules"]:
            if n["source"] == "inserted":
                gap = np.linalg.norm(np.subtract(n["center_xyz_mm"], NODULE_0001))
                assert gap >= 15.0 + n["diameter_mm"] / 2 + 23.35 / 2
    # What `lungcad train --data` / `lungcad evaluate --data` read: the same records; files intact.
    assert [r.scan_id for r in read_cohort(tmp_path / "a", evaluation=True)] == [r.scan_id for r in records]
    assert verify_cohort(tmp_path / "a") == []
    first = a["scans"][0]
    image = load_ct(tmp_path / "a" / first["mhd"])
    assert image.shape == host.volume.shape and image.metadata.series_uid in ("", first["series_uid"])
    labels = load_image(tmp_path / "a" / first["mask"]).hu
    assert sorted(int(v) for v in np.unique(labels) if v) == sorted(n["label"] for n in first["nodules"])
    rows = (tmp_path / "a" / "annotations.csv").read_text().splitlines()
    assert sum(len(s["annotations"]) for s in a["scans"]) == len(rows) - 1
    c = generate_hybrid_cohort([SLAB], tmp_path / "c", cfg, 1, seed=12, host_annotations=ann)
    assert c["scans"][0]["files"] != a["scans"][0]["files"]


def test_full_lidc_0002_background(real_data: Path, tmp_path: Path) -> None:
    series = next((real_data / "lidc" / "LIDC-IDRI-0002").glob("*/*"), None)
    if series is None:
        pytest.skip("full LIDC-IDRI-0002 series not present")
    cfg = SynthConfig(p_no_nodule=0.0, nodules_per_scan_max=5)
    m = generate_hybrid_cohort(
        [series], tmp_path / "h", cfg, 1, seed=0, host_annotations=real_data / "luna16"
    )
    scan = m["scans"][0]
    assert len(scan["excluded"]) == 53 and all(n["source"] == "inserted" for n in scan["nodules"])
    assert scan["nodules"]
    for n in scan["nodules"]:
        for e in scan["excluded"]:
            gap = np.linalg.norm(np.subtract(n["center_xyz_mm"], e[:3]))
            assert gap >= 15.0 + n["diameter_mm"] / 2 + max(e[3], 0) / 2
