"""``generate_scan``: one synthetic chest CT with its exact ground truth, in memory.

Stages, each with its own random stream (``geometry.scan_rngs``), so scan ``i`` of a cohort seeded ``s`` is
bit-identical however the cohort is split across processes:

1. patient and acquisition geometry (field of view, spacing, coverage, pose, origin);
2. smooth anatomy on a coarse grid (``thorax``), then ribs, clavicles and cartilage (``skeleton``);
3. vascular trees and great vessels (``vessels``), airways (``airways``);
4. lesions: nodules, micronodules, scars (``nodules``, ``lesions``) and the label mask;
5. the scanner: noise, blur, streaks, FOV circle (``acquisition``);
6. four simulated readers (``readers``) and the LUNA16 lists derived from them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lungcad.annotations.lungrads import is_actionable, lung_rads_category
from lungcad.annotations.model import LidcRead, LunaAnnotation
from lungcad.config import SynthConfig
from lungcad.io.dicom_write import SeriesUids, derive_series_uids
from lungcad.synth import anatomy as an
from lungcad.synth.acquisition import Acquisition, apply_acquisition, sample_acquisition
from lungcad.synth.airways import build_airways
from lungcad.synth.anatomy import Anatomy, sample_anatomy
from lungcad.synth.geometry import ScanGeometry, sample_geometry, scan_rngs
from lungcad.synth.lesions import RenderedLesion, render_lesion
from lungcad.synth.masses import sample_mass
from lungcad.synth.nodules import NoduleSpec, sample_lesions
from lungcad.synth.raster import mix_into, render_capsules, splat_segments, to_grid_mm
from lungcad.synth.readers import ReaderOutcome, simulate_readers
from lungcad.synth.realism import Realism
from lungcad.synth.skeleton import CapsuleSet, clavicles, ribs
from lungcad.synth.synth_nodule import SynthNodule
from lungcad.synth.thorax import render_anatomy
from lungcad.synth.vessels import VEIN, VesselTree, build_vessels
from lungcad.types import CTVolume, SeriesMetadata, Texture, stable_hash

GENERATOR_VERSION = "1.0"
# Vessels thinner than this fraction of the pixel are splatted as lines of mass (see ``raster``).
SPLAT_RADIUS_FRACTION = 0.6


@dataclass(frozen=True, eq=False)
class SynthScan:
    """One generated scan: the CT, its label mask, nodules, reader XML and LUNA16 rows."""

    index: int
    scan_id: str
    volume: CTVolume
    label: np.ndarray  # uint8 (z, y, x): 0 background, SynthNodule.label inside each lesion
    nodules: tuple[SynthNodule, ...]
    read: LidcRead
    annotations: tuple[LunaAnnotation, ...]  # LUNA16 annotations.csv rows
    excluded: tuple[LunaAnnotation, ...]  # LUNA16 annotations_excluded.csv rows
    uids: SeriesUids
    acquisition: Acquisition
    params: dict[str, Any]
    timings_s: dict[str, float] = field(default_factory=dict)  # per stage; not part of any output file

    @property
    def series_uid(self) -> str:
        return self.uids.series_uid


class _Clock:
    """Wall time per generation stage (for benchmarks; never written to files, which stay deterministic)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = now - self._last
        self._last = now


def scan_uid_seed(cfg: SynthConfig, index: int) -> str:
    """Seed of the scan's DICOM UIDs: the generation settings and the index (not worker count etc.)."""
    return f"lungcad-synth/{GENERATOR_VERSION}/{stable_hash(cfg.generation_dict())}/{index}"


def _grid(volume: CTVolume, geom: ScanGeometry, caps: CapsuleSet) -> tuple[np.ndarray, np.ndarray]:
    return to_grid_mm(volume, geom.frame.to_world(caps.a)), to_grid_mm(volume, geom.frame.to_world(caps.b))


def _draw(volume: CTVolume, geom: ScanGeometry, scratch: np.ndarray, caps: CapsuleSet, hu: float) -> None:
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
    _draw(volume, geom, scratch, bones, 2.6 * anat.bone_hu)  # cortex
    _draw(volume, geom, scratch, bones.scaled(0.62), anat.bone_hu)  # marrow
    _draw(volume, geom, scratch, cartilage, 110.0)


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


def _inside_scan(volume: CTVolume, geom: ScanGeometry):
    """Whether body points lie in the scanned slab and reconstruction circle with a margin (mm)."""
    nz, ny, nx = volume.shape
    sz, sy, sx = volume.spacing_zyx_mm

    def check(body: np.ndarray, margin: np.ndarray) -> np.ndarray:
        zyx = volume.world_to_voxel(geom.frame.to_world(body))
        in_z = (zyx[:, 0] * sz >= margin) & ((nz - 1 - zyx[:, 0]) * sz >= margin)
        ry, rx = (zyx[:, 1] - (ny - 1) / 2) * sy, (zyx[:, 2] - (nx - 1) / 2) * sx
        return in_z & (np.sqrt(ry * ry + rx * rx) < 0.5 * geom.fov_mm - margin - 10.0)

    return check


def _nodule_records(
    cfg: SynthConfig,
    volume: CTVolume,
    geom: ScanGeometry,
    specs: list[NoduleSpec],
    lesions: list[RenderedLesion | None],
    outcome: ReaderOutcome,
) -> list[SynthNodule]:
    voxel_mm3 = float(np.prod(volume.spacing_zyx_mm))
    out = []
    for i, (spec, lesion) in enumerate(zip(specs, lesions, strict=True)):
        world = geom.frame.to_world(spec.centre)
        solid = spec.core_fraction * spec.diameter_mm if spec.texture == Texture.PART_SOLID else None
        category = lung_rads_category(spec.diameter_mm, spec.texture, solid)
        accepted = (
            lesion is not None
            and not spec.micronodule
            and spec.diameter_mm >= 3.0
            and outcome.contoured[i] >= cfg.reader_agreement_min
        )
        out.append(
            SynthNodule(
                label=i + 1,
                center_xyz_mm=tuple(float(v) for v in world),  # type: ignore[arg-type]
                center_zyx_vox=tuple(float(v) for v in volume.world_to_voxel(world)),  # type: ignore[arg-type]
                diameter_mm=float(spec.diameter_mm),
                volume_mm3=(lesion.voxels if lesion else 0) * voxel_mm3,
                texture=spec.texture,
                shape=spec.shape,
                location=spec.location,
                fissure=spec.fissure,
                malignancy=spec.malignancy,
                lung_rads=category,
                actionable=is_actionable(category, spec.malignancy),
                characteristics=dict(spec.characteristics),
                micronodule=spec.micronodule,
                readers_contoured=outcome.contoured[i],
                readers_pointed=outcome.pointed[i],
                accepted=accepted,
                mass=spec.mass,
            )
        )
    return out


def _series_metadata(
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


def _render_body(
    volume: CTVolume,
    geom: ScanGeometry,
    anat: Anatomy,
    rngs: dict[str, np.random.Generator],
    cfg: SynthConfig,
    clock: _Clock,
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
    _draw(volume, geom, scratch, outer, 30.0)
    _draw(volume, geom, scratch, lumen, an.HU_AIR)
    clock.lap("airways")
    return tree, scratch


def _luna_lists(
    uid: str, nodules: list[SynthNodule], outcome: ReaderOutcome
) -> tuple[tuple[LunaAnnotation, ...], tuple[LunaAnnotation, ...]]:
    """LUNA16 ``annotations.csv`` rows (accepted nodules) and ``annotations_excluded.csv`` rows (the rest,
    and each non-nodule the readers pointed at, diameter -1 = unknown, as LUNA16 writes it)."""
    annotations = tuple(LunaAnnotation(uid, *n.center_xyz_mm, n.diameter_mm) for n in nodules if n.accepted)
    excluded = [LunaAnnotation(uid, *n.center_xyz_mm, n.diameter_mm) for n in nodules if not n.accepted]
    for marks in outcome.nonnodule_marks:
        if marks:
            centre = np.mean(np.asarray(marks), axis=0)
            excluded.append(LunaAnnotation(uid, *(float(v) for v in centre), -1.0))
    return annotations, tuple(excluded)


def generate_scan(cfg: SynthConfig, index: int) -> SynthScan:
    """Generate scan ``index`` of the cohort described by ``cfg`` (deterministic in ``(cfg, index)``).

    Args:
        cfg: validated synthesis settings (``lungcad.config.SynthConfig``).
        index: scan number within the cohort, >= 0.

    Returns:
        ``SynthScan`` whose volume is float32 HU ``(z, y, x)`` on the sampled grid, with a uint8 label mask
        on the same grid.
    """
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    # Stage 1.  The draws below keep their order: each stream's sequence is part of the cohort's identity.
    rngs = scan_rngs(cfg.seed, index)
    r_anat = rngs["anatomy"]
    body_width = float(r_anat.uniform(*cfg.body_width_range_mm))
    lung_height = float(r_anat.uniform(*cfg.lung_height_range_mm))
    contrast = bool(r_anat.random() < cfg.p_contrast)
    geom = sample_geometry(cfg, rngs["geometry"], body_width, lung_height)
    anat = sample_anatomy(r_anat, body_width, lung_height, contrast)
    acq = sample_acquisition(cfg, geom, rngs["acquisition"])
    uids = derive_series_uids(scan_uid_seed(cfg, index), geom.shape_zyx[0])
    scan_id = f"SYN-{index:04d}"
    meta = _series_metadata(uids, scan_id, anat, geom, acq, contrast)
    empty = geom.empty_volume()
    volume = CTVolume(empty.hu, empty.spacing_zyx_mm, empty.origin_xyz_mm, empty.direction, meta)

    clock = _Clock()
    tree, scratch = _render_body(volume, geom, anat, rngs, cfg, clock)
    realism = Realism(cfg, index)  # draws and draws nothing at the defaults (``lungcad.synth.realism``)
    realism.body(volume, geom, anat, tree, scratch)
    # Stage 4.
    r_nod = rngs["nodules"]
    perihilar = realism.perihilar(anat, tree)
    specs, scars = sample_lesions(cfg, anat, tree, _inside_scan(volume, geom), r_nod, perihilar)
    r_mass = rngs["masses"]  # drawn only when cfg.p_mass > 0
    mass = sample_mass(cfg, anat, _inside_scan(volume, geom), specs, r_mass)
    if mass is not None:
        specs.append(mass)
    for scar in scars:
        _draw(volume, geom, scratch, CapsuleSet.from_polylines([scar.points], [scar.radii]), 30.0)
    del scratch
    label = np.zeros(volume.shape, dtype=np.uint8)
    lesions = [
        render_lesion(volume, label, geom.frame, anat, s, i + 1, r_mass if s.mass else r_nod)
        for i, s in enumerate(specs)
    ]
    taken = [(s.centre, s.diameter_mm / 2) for s in specs] + [(sc.centre, 6.0) for sc in scars]
    realism.add_distractors(volume, geom, anat, taken, _inside_scan(volume, geom))
    clock.lap("lesions")
    # Stage 5.
    apply_acquisition(volume, geom, acq, rngs["acquisition"])
    # Whole HU, as a scanner stores them: the DICOM, MetaImage and in-memory volumes are then identical.
    np.rint(volume.hu, out=volume.hu)
    clock.lap("acquisition")
    # Stage 6.
    outcome = simulate_readers(
        volume,
        geom.frame,
        specs,
        lesions,
        scars,
        uids.sop_uids,
        set(acq.missing_slices),
        cfg.n_readers,
        uids.series_uid,
        uids.study_uid,
        rngs["readers"],
    )
    clock.lap("readers")
    nodules = _nodule_records(cfg, volume, geom, specs, lesions, outcome)
    annotations, excluded = _luna_lists(uids.series_uid, nodules, outcome)
    excluded += realism.excluded(geom, uids.series_uid)
    params = {
        "scan_id": scan_id,
        "uid_seed": scan_uid_seed(cfg, index),
        "shape_zyx": list(geom.shape_zyx),
        "spacing_zyx_mm": list(geom.spacing_zyx_mm),
        "origin_xyz_mm": list(geom.origin_xyz_mm),
        "direction": geom.direction.ravel().tolist(),
        "fov_mm": geom.fov_mm,
        "body_width_mm": body_width,
        "lung_height_mm": lung_height,
        "contrast": contrast,
        "sex": meta.patient_sex,
        "acquisition": acq.to_dict(),
        "n_vessel_segments": int(len(tree.a)),
        "n_scars": len(scars),
        **realism.params(geom),
    }
    return SynthScan(
        index=index,
        scan_id=scan_id,
        volume=volume,
        label=label,
        nodules=tuple(nodules),
        read=outcome.read,
        annotations=annotations,
        excluded=excluded,
        uids=uids,
        acquisition=acq,
        params=params,
        timings_s=clock.laps,
    )
