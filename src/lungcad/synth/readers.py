"""Simulated LIDC-style reads: four radiologists contouring, missing, point-marking and disagreeing.

Each reader has a personal contour threshold (draws tight or generous outlines), a detection threshold (a
50%-detection diameter around 3.5 mm, higher for ground glass and vessel-attached nodules) and a habit of
marking non-nodules.  Per lesion a reader:

* misses it with probability ``1 - sigmoid((d - d50) / 1.2 mm)``: a 3 mm solid nodule is missed about
  half the time, a 10 mm one almost never;
* estimates its diameter with ~10% error; below 3 mm it is a single point (``small_nodules``), as LIDC
  instructed, otherwise contours on every slice where the lesion's occupancy exceeds the reader's
  threshold (0.2-0.8, jittered per nodule), sometimes skipping a tiny end slice, and rates the nine
  characteristics with +-1 disagreement;
* marks each scar as a ``nonNodule`` with its own probability.

Contours follow LIDC's convention that outlines lie *just outside* the nodule: each is the ordered chain of
pixels bordering the reader's region from outside, so filling strictly inside the chain
(``lungcad.annotations.masks``) gives the region back.  Slices missing from the series get no contours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.measure import find_contours

from lungcad.annotations.lidc_xml import CHARACTERISTIC_RANGES
from lungcad.annotations.model import LidcRead, PointMark, ReaderNodule, ReadingSession, Roi
from lungcad.synth.geometry import BodyFrame
from lungcad.synth.lesions import RenderedLesion
from lungcad.synth.nodules import NoduleLocation, NoduleSpec, Scar
from lungcad.types import CTVolume, Texture

_CROSS = ndimage.generate_binary_structure(2, 1)


@dataclass(frozen=True)
class ReaderOutcome:
    """The XML read plus, per lesion and per scar, which readers marked it and how."""

    read: LidcRead
    contoured: tuple[int, ...]  # per lesion: number of readers who drew contours
    pointed: tuple[int, ...]  # per lesion: number of readers who marked a < 3 mm point
    nonnodule_marks: tuple[tuple[tuple[float, float, float], ...], ...]  # per scar: world xyz of each mark


def outer_boundary_chain(region: np.ndarray) -> list[np.ndarray]:
    """Closed chains ``(n, 2)`` (row, col) of the pixels just outside each connected part of ``region``.

    The chain is traced along the boundary of ``region`` dilated by one pixel (4-connected), taking at each
    contour vertex the pixel on the dilated side, so consecutive pixels are 8-neighbours.
    """
    grown = ndimage.binary_dilation(np.pad(region, 2), structure=_CROSS)
    chains = []
    for contour in find_contours(grown.astype(np.float32), 0.5):
        if len(contour) < 3:
            continue
        lo, hi = np.floor(contour).astype(int), np.ceil(contour).astype(int)
        pick_lo = grown[lo[:, 0], lo[:, 1]]
        pix = np.where(pick_lo[:, None], lo, hi)
        keep = np.ones(len(pix), dtype=bool)
        keep[1:] = np.any(pix[1:] != pix[:-1], axis=1)
        pix = pix[keep]
        if len(pix) > 1 and np.all(pix[0] == pix[-1]):
            pix = pix[:-1]
        chains.append(np.concatenate([pix, pix[:1]]) - 2)  # closed, back to unpadded coordinates
    return chains


def _jitter_characteristics(true: dict[str, int], rng: np.random.Generator) -> dict[str, int]:
    out = {}
    for key, value in true.items():
        lo, hi = CHARACTERISTIC_RANGES[key]
        delta = int(rng.choice([-1, 0, 0, 0, 1])) if key not in ("internalStructure", "calcification") else 0
        out[key] = int(np.clip(value + delta, lo, hi))
    return out


def _detect_d50(spec: NoduleSpec, bias: float) -> float:
    d50 = 3.5 + bias
    d50 += {Texture.GROUND_GLASS: 2.0, Texture.PART_SOLID: 0.8}.get(spec.texture, 0.0)
    d50 += 1.0 if spec.location == NoduleLocation.JUXTAVASCULAR else 0.0
    return d50


def simulate_readers(
    volume: CTVolume,
    frame: BodyFrame,
    specs: list[NoduleSpec],
    lesions: list[RenderedLesion | None],
    scars: list[Scar],
    sop_uids: tuple[str, ...],
    missing: set[int],
    n_readers: int,
    series_uid: str,
    study_uid: str,
    rng: np.random.Generator,
) -> ReaderOutcome:
    """Read the scan ``n_readers`` times (see module docstring)."""
    nz, ny, nx = volume.shape
    present = np.array([k for k in range(nz) if k not in missing])

    def point(body_xyz: np.ndarray, jitter: float) -> tuple[int, int, int]:
        k, r, c = volume.world_to_voxel(frame.to_world(body_xyz))
        k = int(present[np.argmin(np.abs(present - k))])
        r = int(np.clip(round(r + rng.normal(0, jitter)), 0, ny - 1))
        c = int(np.clip(round(c + rng.normal(0, jitter)), 0, nx - 1))
        return k, r, c

    def z_of(k: int) -> float:
        return float(volume.voxel_to_world(np.array([k, 0.0, 0.0]))[2])

    contoured = [0] * len(specs)
    pointed = [0] * len(specs)
    marks: list[list[tuple[float, float, float]]] = [[] for _ in scars]
    sessions = []
    for reader in range(n_readers):
        level = rng.uniform(0.25, 0.7)
        bias = rng.normal(0.0, 0.4)
        p_nonnodule = rng.uniform(0.35, 0.85)
        nodules, small, non = [], [], []
        for i, (spec, lesion) in enumerate(zip(specs, lesions, strict=True)):
            if lesion is None:
                continue
            p = 1.0 / (1.0 + np.exp(-(spec.diameter_mm - _detect_d50(spec, bias)) / 1.2))
            if rng.random() >= p:
                continue
            seen = spec.diameter_mm * np.exp(rng.normal(0, 0.1))
            rois = _contours(lesion, level, missing, sop_uids, z_of, rng) if seen >= 3.0 else []
            if rois:
                chars = _jitter_characteristics(spec.characteristics, rng)
                nodules.append(ReaderNodule(f"Nodule {len(nodules) + 1:03d}", tuple(rois), chars))
                contoured[i] += 1
            else:
                k, r, c = point(spec.centre, 0.6)
                small.append(PointMark(f"Small {len(small) + 1:03d}", z_of(k), sop_uids[k], c, r))
                pointed[i] += 1
        for j, scar in enumerate(scars):
            if rng.random() < p_nonnodule:
                k, r, c = point(scar.centre, 1.5)
                non.append(PointMark(f"Non-nodule {len(non) + 1:03d}", z_of(k), sop_uids[k], c, r))
                marks[j].append(tuple(float(v) for v in volume.voxel_to_world(np.array([k, r, c], float))))
        sessions.append(
            ReadingSession(
                reader_id=f"lungcad-reader-{reader + 1}",
                nodules=tuple(nodules),
                small_nodules=tuple(small),
                non_nodules=tuple(non),
                annotation_version="3.12",
                blinded=False,
            )
        )
    read = LidcRead(series_uid=series_uid, study_uid=study_uid, sessions=tuple(sessions))
    return ReaderOutcome(read, tuple(contoured), tuple(pointed), tuple(tuple(m) for m in marks))


def _contours(
    lesion: RenderedLesion,
    level: float,
    missing: set[int],
    sop_uids: tuple[str, ...],
    z_of,
    rng: np.random.Generator,
) -> list[Roi]:
    """One reader's contours of one lesion (outer-boundary pixel chains, LIDC convention)."""
    zs, ys, xs = lesion.box
    tau = float(np.clip(level + rng.normal(0, 0.07), 0.2, 0.8))
    regions = [(zs.start + i, lesion.occupancy[i] >= tau) for i in range(lesion.occupancy.shape[0])]
    regions = [(k, reg) for k, reg in regions if reg.any() and k not in missing]
    if len(regions) > 2 and rng.random() < 0.25:
        # Readers often leave out a tiny cap at one end of the nodule.
        end = 0 if regions[0][1].sum() < regions[-1][1].sum() else -1
        if regions[end][1].sum() <= 6:
            regions.pop(end)
    rois = []
    for k, region in regions:
        for chain in outer_boundary_chain(region):
            pts = tuple((int(xs.start + c), int(ys.start + r)) for r, c in chain)
            rois.append(Roi(z_of(k), sop_uids[k], True, pts))
    return rois
