"""Synthetic follow-up pairs: one patient drawn once, scanned twice, months apart (issue 17).

``generate_followup_pair(cfg, index)`` renders the patient of ``generate_scan``'s stage 1 twice through the
same stage functions (``lungcad.synth.scan``):

* **PRIOR**: the drawn geometry.  **CURRENT**: the same grid with the body moved (``_pose_change``): the
  body frame rolled about the world z axis, its long axis tilted (shear), shifted, and scaled along the
  body axes about the lung apex (another inspiration level).  The exact map of anatomy from prior to
  current world mm is ``F_cur.affine() @ inv(F_prior.affine())``.
* Anatomy, skeleton, vessels, airways and the realism pass come from the same random streams (a fresh
  ``draw_patient``), so they are the same body; the scanner noise and the readers of the current scan
  draw from a follow-up stream (new noise, new reads).
* Lesions are sampled once, inside both scans.  Each prior nodule gets a fate from
  ``followup.status_mix``: stable (same size), growing / shrinking (every linear dimension scaled by
  ``2 ** (dt / (3 VDT))``), resolved (prior only); ``0..new_nodules_max`` new nodules appear on the
  current scan only.  Each lesion's texture has its own stream, so it looks the same on both scans.
  Micronodules, masses and scars stay stable.

Random numbers of the follow-up come from ``SeedSequence([seed, index, FOLLOWUP_TAG])``; the prior scan
is therefore not the single-timepoint scan ``index`` of the same seed (its lesions differ).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from lungcad.config import SynthConfig
from lungcad.config_synth import FollowupConfig
from lungcad.io.dicom_write import derive_series_uids
from lungcad.synth.followup_manifest import FOLLOWUP_VERSION, NoduleStatus, sphere_volume
from lungcad.synth.geometry import BodyFrame, ScanGeometry
from lungcad.synth.nodules import NoduleSpec, Scar, sample_lesions
from lungcad.synth.scan import (
    PatientDraw,
    ScanIds,
    SynthScan,
    draw_findings,
    draw_patient,
    finish_scan,
    render_body,
    sample_findings,
)
from lungcad.synth.scan_render import inside_scan
from lungcad.types import stable_hash

FOLLOWUP_TAG = 0x666F6C6C  # "foll": a third seed word no other stream uses
_STREAMS = ("change", "new", "acquisition", "readers")
_TEXTURE_STREAM = 1  # fourth seed word of the per-lesion texture streams


@dataclass(frozen=True)
class PoseDraw:
    """The drawn change of position and inspiration (see ``followup_manifest.PoseChange``)."""

    roll_deg: float
    tilt_deg: tuple[float, float]
    shift_mm: tuple[float, float, float]
    scale_xyz: tuple[float, float, float]


@dataclass(frozen=True)
class NoduleFate:
    """What happens to lesion ``label`` between the scans (``prior`` / ``current``: its spec on each)."""

    label: int
    status: NoduleStatus
    vdt_days: float | None
    prior: NoduleSpec | None
    current: NoduleSpec | None


@dataclass(frozen=True, eq=False)
class FollowupPair:
    """Both scans of one patient and the ground truth that links them."""

    index: int
    patient_id: str
    prior: SynthScan
    current: SynthScan
    prior_date: str  # YYYYMMDD
    current_date: str
    interval_days: int
    prior_to_current: np.ndarray  # (4, 4) world mm -> world mm
    pose: PoseDraw
    fates: tuple[NoduleFate, ...]


def followup_rngs(seed: int, index: int) -> dict[str, np.random.Generator]:
    children = np.random.SeedSequence([int(seed), int(index), FOLLOWUP_TAG]).spawn(len(_STREAMS))
    return {name: np.random.default_rng(ss) for name, ss in zip(_STREAMS, children, strict=True)}


def _texture_rng(seed: int, index: int, label: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, index, FOLLOWUP_TAG, _TEXTURE_STREAM, label]))


def followup_uid_seed(cfg: SynthConfig, index: int, timepoint: str) -> str:
    return (
        f"lungcad-synth-followup/{FOLLOWUP_VERSION}/{stable_hash(cfg.generation_dict())}/{index}/{timepoint}"
    )


def _rotation_z(deg: float) -> np.ndarray:
    t = math.radians(deg)
    c, s = math.cos(t), math.sin(t)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _pose_change(fu: FollowupConfig, rng: np.random.Generator) -> PoseDraw:
    roll = float(rng.uniform(-fu.max_roll_deg, fu.max_roll_deg))
    tilt = tuple(float(v) for v in rng.uniform(-fu.max_tilt_deg, fu.max_tilt_deg, size=2))
    shift = tuple(float(rng.uniform(-m, m)) for m in fu.max_shift_mm)
    level = float(rng.uniform(-1.0, 1.0))  # one inspiration level, scaled per axis
    scale = tuple(1.0 + level * a for a in fu.inspiration_scale_max)
    return PoseDraw(roll, tilt, shift, scale)  # type: ignore[arg-type]


def moved_geometry(geom: ScanGeometry, pose: PoseDraw) -> ScanGeometry:
    """The same grid with the body moved by ``pose``.

    ``A_cur = R_z(roll) @ (A_prior + tilt shear)`` keeps the generator's form ``[[R, t], [0, 0, 1]]`` (an
    axial slice is one body z); the scale is the frame's ``scale_xyz``, so body z of slice ``k`` is
    ``(origin_z + k sz - centre_z) / scale_z``.
    """
    a = geom.frame.matrix.copy()
    a[0, 2] += math.tan(math.radians(pose.tilt_deg[0]))
    a[1, 2] += math.tan(math.radians(pose.tilt_deg[1]))
    matrix = _rotation_z(pose.roll_deg) @ a
    centre = geom.frame.centre_xyz_mm + np.asarray(pose.shift_mm, dtype=np.float64)
    scale = np.asarray(pose.scale_xyz, dtype=np.float64)
    frame = BodyFrame(centre, matrix, scale)
    z_first = (geom.origin_xyz_mm[2] - centre[2]) / scale[2]
    step = geom.spacing_zyx_mm[0] / scale[2]
    z_range = (float(z_first), float(z_first + (geom.shape_zyx[0] - 1) * step))
    return replace(geom, frame=frame, body_z_range_mm=z_range)


def scaled_spec(spec: NoduleSpec, factor: float) -> NoduleSpec:
    """``spec`` with every linear dimension times ``factor`` (volume times ``factor ** 3``)."""
    f = float(factor)
    return replace(
        spec,
        diameter_mm=spec.diameter_mm * f,
        semi_axes=spec.semi_axes * f,
        lobes=tuple((off * f, rad * f) for off, rad in spec.lobes),
        spicules=tuple((a * f, b * f, rad * f) for a, b, rad in spec.spicules),
    )


def _draw_vdt(
    fu: FollowupConfig, rng: np.random.Generator, status: str, d_mm: float, dt: int
) -> float | None:
    """A log-uniform doubling (or halving) time inside the window the volume-ratio limits allow; None
    when no such time exists (the nodule then stays stable)."""
    log2_min = math.log2(1.0 + fu.min_volume_change)
    if status == NoduleStatus.GROWING:
        log2_max = min(math.log2(fu.max_volume_ratio), 3.0 * math.log2(max(30.0 / d_mm, 1.0)))
        lo, hi = fu.growing_vdt_range_days
    else:  # shrinking: keep the nodule >= 3 mm
        log2_max = min(math.log2(fu.max_volume_ratio), 3.0 * math.log2(max(d_mm / 3.0, 1.0)))
        lo, hi = fu.shrinking_halving_range_days
    # |V ratio| = 2 ** (dt / T) in [2 ** log2_min, 2 ** log2_max]  <=>  T in [dt / log2_max, dt / log2_min]
    lo = max(lo, dt / log2_max) if log2_max > 0 else math.inf
    hi = min(hi, dt / log2_min) if log2_min > 0 else hi
    if not lo <= hi:
        return None
    t = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    return t if status == NoduleStatus.GROWING else -t


def _fates(
    fu: FollowupConfig, rng: np.random.Generator, specs: list[NoduleSpec], new: list[NoduleSpec], dt: int
) -> list[NoduleFate]:
    keys = sorted(fu.status_mix)
    p = np.array([fu.status_mix[k] for k in keys], dtype=np.float64)
    out = []
    for i, spec in enumerate(specs):
        status = NoduleStatus(keys[int(rng.choice(len(keys), p=p / p.sum()))])
        if spec.micronodule or spec.mass or spec.diameter_mm < 3.0:
            status = NoduleStatus.STABLE
        vdt = None
        if status in (NoduleStatus.GROWING, NoduleStatus.SHRINKING):
            vdt = _draw_vdt(fu, rng, status, spec.diameter_mm, dt)
            if vdt is None:
                status = NoduleStatus.STABLE
        current: NoduleSpec | None = spec
        if status == NoduleStatus.RESOLVED:
            current = None
        elif vdt is not None:
            current = scaled_spec(spec, 2.0 ** (dt / (3.0 * vdt)))
        out.append(NoduleFate(i + 1, status, vdt, spec, current))
    for j, spec in enumerate(new):
        out.append(NoduleFate(len(specs) + j + 1, NoduleStatus.NEW, None, None, spec))
    return out


def _new_nodules(
    cfg: SynthConfig, draw: PatientDraw, tree, inside, taken: list[NoduleSpec], scars: list[Scar], rng
) -> list[NoduleSpec]:
    fu = cfg.followup
    k = int(rng.integers(0, fu.new_nodules_max + 1))
    one = cfg.model_copy(
        update={
            "nodules_per_scan_max": 1,
            "p_no_nodule": 0.0,
            "diameter_range_mm": fu.new_diameter_range_mm,
            "micronodules_per_scan_max": 0,
            "non_nodules_per_scan_max": 0,
        }
    )
    occupied = [(s.centre, s.diameter_mm / 2) for s in taken] + [(sc.centre, 6.0) for sc in scars]
    new: list[NoduleSpec] = []
    for _ in range(3 * k):  # a few spare tries: a draw may land on another lesion
        if len(new) == k:
            break
        specs, _ = sample_lesions(one, draw.anat, tree, inside, rng)
        for spec in specs[:1]:
            r = spec.diameter_mm / 2
            if all(np.linalg.norm(spec.centre - c) > r + rc + 8.0 for c, rc in occupied):
                new.append(spec)
                occupied.append((spec.centre, r))
    return new


@dataclass(frozen=True)
class _Findings:
    """What both renderings of a patient share: lesion fates, scars, the inside check, occupied spots."""

    fates: list[NoduleFate]
    scars: list[Scar]
    inside: Any  # (body (N, 3), margin (N,)) -> bool (N,): inside both scans
    taken: list  # (body centre, radius mm) kept clear by the distractors


def _render_timepoint(
    cfg: SynthConfig,
    ids: ScanIds,
    draw: PatientDraw,
    geom: ScanGeometry,
    shared: _Findings,
    which: str,
    rngs: tuple[np.random.Generator, np.random.Generator],
    body=None,
) -> SynthScan:
    """One scan: the body (unless given), the lesions on the ``which`` scan, distractors, scanner, readers."""
    body = body or render_body(cfg, ids.index, draw, geom, ids.uids, ids.scan_id)
    on = [f for f in shared.fates if getattr(f, which) is not None]
    specs = [getattr(f, which) for f in on]
    labels = [f.label for f in on]
    streams = [_texture_rng(cfg.seed, ids.index, f.label) for f in on]
    label, lesions = draw_findings(body, geom, draw.anat, specs, shared.scars, labels, streams)
    body.realism.add_distractors(body.volume, geom, draw.anat, shared.taken, shared.inside)
    body.clock.lap("lesions")
    findings = (specs, shared.scars, lesions, label)
    return finish_scan(cfg, ids, draw, geom, body, findings, labels, rngs)


def _ids(cfg: SynthConfig, index: int, geom: ScanGeometry, timepoint: str) -> ScanIds:
    seed = followup_uid_seed(cfg, index, timepoint)
    return ScanIds(index, f"SYN-{index:04d}", derive_series_uids(seed, geom.shape_zyx[0]), seed)


def generate_followup_pair(cfg: SynthConfig, index: int) -> FollowupPair:
    """The PRIOR and CURRENT scans of follow-up patient ``index`` (deterministic in ``(cfg, index)``).

    Args:
        cfg: synthesis settings; ``cfg.followup`` says how the two scans differ.
        index: patient number, >= 0.
    """
    fu = cfg.followup
    frng = followup_rngs(cfg.seed, index)
    r_change = frng["change"]
    dt = int(r_change.integers(fu.interval_days_range[0], fu.interval_days_range[1] + 1))
    first, last = (datetime.strptime(d, "%Y%m%d") for d in fu.prior_date_range)
    prior_day = first + timedelta(days=int(r_change.integers(0, (last - first).days + 1)))
    pose = _pose_change(fu, r_change)

    draw = draw_patient(cfg, index)
    geom_p = draw.geom
    geom_c = moved_geometry(geom_p, pose)
    ids_p, ids_c = _ids(cfg, index, geom_p, "prior"), _ids(cfg, index, geom_c, "current")
    body_p = render_body(cfg, index, draw, geom_p, ids_p.uids, ids_p.scan_id)
    in_p = inside_scan(body_p.volume, geom_p)
    in_c = inside_scan(body_p.volume, geom_c)  # the same grid: the volume only lends its geometry

    def both_inside(body_xyz: np.ndarray, margin: np.ndarray) -> np.ndarray:
        return in_p(body_xyz, margin) & in_c(body_xyz, margin)

    specs, scars = sample_findings(cfg, draw, body_p, both_inside)
    new = _new_nodules(cfg, draw, body_p.tree, both_inside, specs, scars, frng["new"])
    fates = _fates(fu, r_change, specs, new, dt)
    # Distractors keep clear of every lesion of either scan (at its larger size), so both scans draw the
    # same ones from the realism stream.
    taken = [
        (f.prior.centre if f.prior is not None else f.current.centre, _radius(f))  # type: ignore[union-attr]
        for f in fates
    ] + [(sc.centre, 6.0) for sc in scars]
    shared = _Findings(fates, scars, both_inside, taken)
    prior = _render_timepoint(
        cfg, ids_p, draw, geom_p, shared, "prior", (draw.rngs["acquisition"], draw.rngs["readers"]), body_p
    )
    del body_p
    draw_c = draw_patient(cfg, index)  # fresh streams: the same body again
    current = _render_timepoint(
        cfg, ids_c, draw_c, geom_c, shared, "current", (frng["acquisition"], frng["readers"])
    )
    transform = geom_c.frame.affine() @ np.linalg.inv(geom_p.frame.affine())
    return FollowupPair(
        index=index,
        patient_id=ids_p.scan_id,
        prior=prior,
        current=current,
        prior_date=prior_day.strftime("%Y%m%d"),
        current_date=(prior_day + timedelta(days=dt)).strftime("%Y%m%d"),
        interval_days=dt,
        prior_to_current=transform,
        pose=pose,
        fates=tuple(fates),
    )


def _radius(fate: NoduleFate) -> float:
    return max(s.diameter_mm / 2 for s in (fate.prior, fate.current) if s is not None)


def nominal_volume(spec: NoduleSpec) -> float:
    """The nominal volume of a lesion, ``pi / 6 * d ** 3`` (see ``followup_manifest``)."""
    return sphere_volume(spec.diameter_mm)


def fate_summary(fates: tuple[NoduleFate, ...]) -> dict[str, Any]:
    """Counts of each status (CLI summary)."""
    out: dict[str, Any] = {}
    for f in fates:
        out[f.status.value] = out.get(f.status.value, 0) + 1
    return dict(sorted(out.items()))
