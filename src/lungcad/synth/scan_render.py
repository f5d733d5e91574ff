"""The body renderer of ``generate_scan``: stages 2-3 (anatomy, skeleton, vessels, airways) on one grid.

Split from ``lungcad.synth.scan`` (one concept per module); ``lungcad.synth.followup`` renders the same
patient twice through it.
"""

from __future__ import annotations

import time

import numpy as np

from lungcad.config import SynthConfig
from lungcad.io.dicom_write import SeriesUids
from lungcad.synth import anatomy as an
from lungcad.synth.acquisition import Acquisition
from lungcad.synth.airways import build_airways
from lungcad.synth.anatomy import Anatomy
from lungcad.synth.geometry import ScanGeometry
from lungcad.synth.raster import mix_into, render_capsules, splat_segments, to_grid_mm
from lungcad.synth.skeleton import CapsuleSet, clavicles, ribs
from lungcad.synth.thorax import render_anatomy
from lungcad.synth.vessels import VEIN, VesselTree, build_vessels
from lungcad.types import CTVolume, SeriesMetadata

# Vessels thinner than this fraction of the pixel are splatted as lines of mass (see ``raster``).
SPLAT_RADIUS_FRACTION = 0.6


class StageClock:
    """Wall time per generation stage (for benchmarks; never written to files, which stay deterministic)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = now - self._last
        self._last = now


def _grid(volume: CTVolume, geom: ScanGeometry, caps: CapsuleSet) -> tuple[np.ndarray, np.ndarray]:
    return to_grid_mm(volume, geom.frame.to_world(caps.a)), to_grid_mm(volume, geom.frame.to_world(caps.b))


def draw_capsules(
    volume: CTVolume, geom: ScanGeometry, scratch: np.ndarray, caps: CapsuleSet, hu: float
) -> None:
    if len(caps):
        a, b = _grid(volume, geom, caps)
        mix_into(volume, scratch, render_capsules(volume, scratch, a, b, caps.ra, caps.rb), hu)


def _draw_skeleton(volume: CTVolume, geom: ScanGeometry, anat: Anatomy, scratch: np.ndarray, rng) -> None:
    bone, cartilage = ribs(anat, rng)
    clav = clavicles(anat, rng)
    bones = CapsuleSet(
        np.concatenate([bone.a, clav.a]),
        np.concatenate([bone.b, clav.b]),
        np.concatenate([bone.ra, clav.ra]),
        np.concatenate([bone.rb, clav.rb]),
    )
    draw_capsules(volume, geom, scratch, bones, 2.6 * anat.bone_hu)  # cortex
    draw_capsules(volume, geom, scratch, bones.scaled(0.62), anat.bone_hu)  # marrow
    draw_capsules(volume, geom, scratch, cartilage, 110.0)


def _draw_vessels(
    volume: CTVolume, geom: ScanGeometry, anat: Anatomy, scratch: np.ndarray, tree: VesselTree
) -> None:
    """Arteries (and great vessels) then veins, each blended with its own blood HU."""
    a_all = to_grid_mm(volume, geom.frame.to_world(tree.a))
    b_all = to_grid_mm(volume, geom.frame.to_world(tree.b))
    mean_r = 0.5 * (tree.ra + tree.rb)
    thin = mean_r < SPLAT_RADIUS_FRACTION * min(volume.spacing_zyx_mm[1:])
    for group, hu in ((tree.kind != VEIN, anat.blood_hu), (tree.kind == VEIN, anat.venous_hu)):
        s, c = group & thin, group & ~thin
        touched = [
            splat_segments(volume, scratch, a_all[s], b_all[s], mean_r[s]),
            render_capsules(volume, scratch, a_all[c], b_all[c], tree.ra[c], tree.rb[c]),
        ]
        mix_into(volume, scratch, np.concatenate(touched), hu)


def inside_scan(volume: CTVolume, geom: ScanGeometry):
    """Whether body points lie in the scanned slab and reconstruction circle with a margin (mm)."""
    nz, ny, nx = volume.shape
    sz, sy, sx = volume.spacing_zyx_mm

    def check(body: np.ndarray, margin: np.ndarray) -> np.ndarray:
        zyx = volume.world_to_voxel(geom.frame.to_world(body))
        in_z = (zyx[:, 0] * sz >= margin) & ((nz - 1 - zyx[:, 0]) * sz >= margin)
        ry, rx = (zyx[:, 1] - (ny - 1) / 2) * sy, (zyx[:, 2] - (nx - 1) / 2) * sx
        return in_z & (np.sqrt(ry * ry + rx * rx) < 0.5 * geom.fov_mm - margin - 10.0)

    return check


def series_metadata(
    uids: SeriesUids, scan_id: str, anat: Anatomy, geom: ScanGeometry, acq: Acquisition, contrast: bool
) -> SeriesMetadata:
    """What a scanner would write in the series header of this phantom."""
    return SeriesMetadata(
        series_uid=uids.series_uid,
        study_uid=uids.study_uid,
        patient_sex="F" if anat.female else "M",
        manufacturer="lungcad",
        manufacturer_model="phantom",
        kernel=acq.kernel,
        kvp=acq.kvp,
        exposure_mas=acq.exposure_mas,
        slice_thickness_mm=geom.slice_thickness_mm,
        pixel_spacing_mm=(geom.spacing_zyx_mm[1], geom.spacing_zyx_mm[2]),
        contrast_agent="IV" if contrast else None,
        series_description=f"lungcad synthetic chest CT {scan_id}",
        source_format="array",
        sop_uids=uids.sop_uids,
    )


def render_body_stages(
    volume: CTVolume,
    geom: ScanGeometry,
    anat: Anatomy,
    rngs: dict[str, np.random.Generator],
    cfg: SynthConfig,
    clock: StageClock,
) -> tuple[VesselTree, np.ndarray]:
    """Stages 2-3: anatomy, skeleton, vessels and airways drawn into ``volume``; returns the vessel tree and
    the scratch buffer (reused by the scars)."""
    r_anat = rngs["anatomy"]
    render_anatomy(volume, geom, anat, r_anat)
    clock.lap("anatomy")
    scratch = np.zeros(volume.shape, dtype=np.float32)
    _draw_skeleton(volume, geom, anat, scratch, r_anat)
    clock.lap("skeleton")
    tree = build_vessels(anat, rngs["vessels"], cfg.vessel_points_per_tree)
    clock.lap("vessel trees")
    _draw_vessels(volume, geom, anat, scratch, tree)
    clock.lap("vessel rendering")
    lumen, outer = build_airways(anat, tree, rngs["vessels"])
    draw_capsules(volume, geom, scratch, outer, 30.0)
    draw_capsules(volume, geom, scratch, lumen, an.HU_AIR)
    clock.lap("airways")
    return tree, scratch
