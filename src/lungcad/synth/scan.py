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

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lungcad.annotations.lungrads import is_actionable, lung_rads_category
from lungcad.annotations.model import LidcRead, LunaAnnotation
from lungcad.config import SynthConfig
from lungcad.io.dicom_write import SeriesUids, derive_series_uids
from lungcad.synth.acquisition import Acquisition, apply_acquisition, sample_acquisition
from lungcad.synth.anatomy import Anatomy, sample_anatomy
from lungcad.synth.geometry import ScanGeometry, sample_geometry, scan_rngs
from lungcad.synth.lesions import RenderedLesion, render_lesion
from lungcad.synth.masses import sample_mass
from lungcad.synth.nodules import NoduleSpec, sample_lesions
from lungcad.synth.readers import ReaderOutcome, simulate_readers
from lungcad.synth.realism import Realism
from lungcad.synth.scan_render import (
    StageClock,
    draw_capsules,
    inside_scan,
    render_body_stages,
    series_metadata,
)
from lungcad.synth.skeleton import CapsuleSet
from lungcad.synth.synth_nodule import SynthNodule
from lungcad.synth.vessels import VesselTree
from lungcad.types import CTVolume, Texture, stable_hash

GENERATOR_VERSION = "1.0"


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


def scan_uid_seed(cfg: SynthConfig, index: int) -> str:
    """Seed of the scan's DICOM UIDs: the generation settings and the index (not worker count etc.)."""
    return f"lungcad-synth/{GENERATOR_VERSION}/{stable_hash(cfg.generation_dict())}/{index}"


def _nodule_records(
    cfg: SynthConfig,
    volume: CTVolume,
    geom: ScanGeometry,
    specs: list[NoduleSpec],
    lesions: list[RenderedLesion | None],
    outcome: ReaderOutcome,
    labels: list[int],
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
                label=labels[i],
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


@dataclass(frozen=True, eq=False)
class PatientDraw:
    """Stage 1 of one scan: the patient and the acquisition as drawn, before anything is rendered.

    ``rngs`` are the scan's streams in the state stage 1 leaves them; rendering consumes them, so a second
    rendering of the same patient (``lungcad.synth.followup``) draws a fresh ``PatientDraw``.
    """

    rngs: dict[str, np.random.Generator]
    body_width_mm: float
    lung_height_mm: float
    contrast: bool
    geom: ScanGeometry
    anat: Anatomy
    acq: Acquisition


def draw_patient(cfg: SynthConfig, index: int) -> PatientDraw:
    """Stage 1 of scan ``index``: body size, contrast, geometry, anatomy and acquisition (deterministic)."""
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    # The draws below keep their order: each stream's sequence is part of the cohort's identity.
    rngs = scan_rngs(cfg.seed, index)
    r_anat = rngs["anatomy"]
    body_width = float(r_anat.uniform(*cfg.body_width_range_mm))
    lung_height = float(r_anat.uniform(*cfg.lung_height_range_mm))
    contrast = bool(r_anat.random() < cfg.p_contrast)
    geom = sample_geometry(cfg, rngs["geometry"], body_width, lung_height)
    anat = sample_anatomy(r_anat, body_width, lung_height, contrast)
    acq = sample_acquisition(cfg, geom, rngs["acquisition"])
    return PatientDraw(rngs, body_width, lung_height, contrast, geom, anat, acq)


@dataclass(eq=False)
class RenderedBody:
    """Stages 2-3 (and the realism pass's body part) drawn into ``volume``, with what later stages need."""

    volume: CTVolume
    tree: VesselTree
    scratch: np.ndarray
    realism: Realism
    clock: StageClock


def render_body(
    cfg: SynthConfig, index: int, draw: PatientDraw, geom: ScanGeometry, uids: SeriesUids, scan_id: str
) -> RenderedBody:
    """Anatomy, skeleton, vessels, airways and the realism body pass of ``draw`` on ``geom``."""
    meta = series_metadata(uids, scan_id, draw.anat, geom, draw.acq, draw.contrast)
    empty = geom.empty_volume()
    volume = CTVolume(empty.hu, empty.spacing_zyx_mm, empty.origin_xyz_mm, empty.direction, meta)
    clock = StageClock()
    tree, scratch = render_body_stages(volume, geom, draw.anat, draw.rngs, cfg, clock)
    realism = Realism(cfg, index)  # draws and draws nothing at the defaults (``lungcad.synth.realism``)
    realism.body(volume, geom, draw.anat, tree, scratch)
    return RenderedBody(volume, tree, scratch, realism, clock)


def sample_findings(cfg: SynthConfig, draw: PatientDraw, body: RenderedBody, inside) -> tuple[list, list]:
    """Stage 4's draws: nodules, micronodules, the optional mass (appended last) and scars."""
    perihilar = body.realism.perihilar(draw.anat, body.tree)
    specs, scars = sample_lesions(cfg, draw.anat, body.tree, inside, draw.rngs["nodules"], perihilar)
    mass = sample_mass(cfg, draw.anat, inside, specs, draw.rngs["masses"])  # draws only when p_mass > 0
    if mass is not None:
        specs.append(mass)
    return specs, scars


def draw_findings(
    body: RenderedBody,
    geom: ScanGeometry,
    anat: Anatomy,
    specs: list[NoduleSpec],
    scars: list,
    labels: list[int],
    rngs: list[np.random.Generator],
) -> tuple[np.ndarray, list[RenderedLesion | None]]:
    """Scars, then each lesion ``specs[i]`` with label value ``labels[i]`` and texture stream ``rngs[i]``;
    frees the scratch buffer.  Returns the uint8 label mask and the rendered lesions."""
    for scar in scars:
        draw_capsules(
            body.volume, geom, body.scratch, CapsuleSet.from_polylines([scar.points], [scar.radii]), 30.0
        )
    body.scratch = np.zeros((1, 1, 1), dtype=np.float32)
    label = np.zeros(body.volume.shape, dtype=np.uint8)
    lesions = [
        render_lesion(body.volume, label, geom.frame, anat, s, value, rng)
        for s, value, rng in zip(specs, labels, rngs, strict=True)
    ]
    return label, lesions


@dataclass(frozen=True)
class ScanIds:
    """Who a rendered scan is: its index, id, UIDs and the seed the UIDs came from."""

    index: int
    scan_id: str
    uids: SeriesUids
    uid_seed: str


def finish_scan(
    cfg: SynthConfig,
    ids: ScanIds,
    draw: PatientDraw,
    geom: ScanGeometry,
    body: RenderedBody,
    findings: tuple[list[NoduleSpec], list, list[RenderedLesion | None], np.ndarray],
    labels: list[int],
    rngs: tuple[np.random.Generator, np.random.Generator],
) -> SynthScan:
    """Stages 5-6: the scanner (stream ``rngs[0]``), the readers (``rngs[1]``), records and parameters."""
    specs, scars, lesions, label = findings
    volume, acq, uids, clock = body.volume, draw.acq, ids.uids, body.clock
    apply_acquisition(volume, geom, acq, rngs[0])
    # Whole HU, as a scanner stores them: the DICOM, MetaImage and in-memory volumes are then identical.
    np.rint(volume.hu, out=volume.hu)
    clock.lap("acquisition")
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
        rngs[1],
    )
    clock.lap("readers")
    nodules = _nodule_records(cfg, volume, geom, specs, lesions, outcome, labels)
    annotations, excluded = _luna_lists(uids.series_uid, nodules, outcome)
    excluded += body.realism.excluded(geom, uids.series_uid)
    params = {
        "scan_id": ids.scan_id,
        "uid_seed": ids.uid_seed,
        "shape_zyx": list(geom.shape_zyx),
        "spacing_zyx_mm": list(geom.spacing_zyx_mm),
        "origin_xyz_mm": list(geom.origin_xyz_mm),
        "direction": geom.direction.ravel().tolist(),
        "fov_mm": geom.fov_mm,
        "body_width_mm": draw.body_width_mm,
        "lung_height_mm": draw.lung_height_mm,
        "contrast": draw.contrast,
        "sex": volume.metadata.patient_sex,
        "acquisition": acq.to_dict(),
        "n_vessel_segments": int(len(body.tree.a)),
        "n_scars": len(scars),
        **body.realism.params(geom),
    }
    return SynthScan(
        index=ids.index,
        scan_id=ids.scan_id,
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


def generate_scan(cfg: SynthConfig, index: int) -> SynthScan:
    """Generate scan ``index`` of the cohort described by ``cfg`` (deterministic in ``(cfg, index)``).

    Args:
        cfg: validated synthesis settings (``lungcad.config.SynthConfig``).
        index: scan number within the cohort, >= 0.

    Returns:
        ``SynthScan`` whose volume is float32 HU ``(z, y, x)`` on the sampled grid, with a uint8 label mask
        on the same grid.
    """
    draw = draw_patient(cfg, index)  # stage 1
    geom, anat = draw.geom, draw.anat
    ids = ScanIds(
        index,
        f"SYN-{index:04d}",
        derive_series_uids(scan_uid_seed(cfg, index), geom.shape_zyx[0]),
        scan_uid_seed(cfg, index),
    )
    body = render_body(cfg, index, draw, geom, ids.uids, ids.scan_id)  # stages 2-3
    # Stage 4.
    specs, scars = sample_findings(cfg, draw, body, inside_scan(body.volume, geom))
    r_nod, r_mass = draw.rngs["nodules"], draw.rngs["masses"]
    labels = list(range(1, len(specs) + 1))
    label, lesions = draw_findings(
        body, geom, anat, specs, scars, labels, [r_mass if s.mass else r_nod for s in specs]
    )
    taken = [(s.centre, s.diameter_mm / 2) for s in specs] + [(sc.centre, 6.0) for sc in scars]
    body.realism.add_distractors(body.volume, geom, anat, taken, inside_scan(body.volume, geom))
    body.clock.lap("lesions")
    # Stages 5-6.
    rngs = (draw.rngs["acquisition"], draw.rngs["readers"])
    return finish_scan(cfg, ids, draw, geom, body, (specs, scars, lesions, label), labels, rngs)
