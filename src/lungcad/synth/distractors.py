"""Non-nodule distractors: calcified pleural plaques, calcified granulomas and faint sub-3 mm dots.

Why: on real scans the detector fired on small calcified pleural spots and faint dots in the parenchyma
(issue 10).  These are anatomy a CAD must learn to ignore, so they never enter ``annotations.csv``.  As
LUNA16 treats irrelevant findings, plaques and granulomas go to ``annotations_excluded.csv`` with their
diameter (an evaluation neither rewards nor punishes a mark on them); faint dots are plain background and
are listed nowhere but the manifest (``params["distractors"]``, each with its ``kind``).

* Plaque: a flat calcified plate on the costal pleura, 8-25 mm across and 1.5-4 mm thick, 350-900 HU,
  drawn as parallel capsules (radius = half the thickness) laid side by side in the pleural tangent plane.
* Granuloma: a 1-4 mm sphere of 600-1200 HU in the parenchyma (often subpleural).
* Faint dot: a 1-2.8 mm sphere of -300..0 HU; partial volume leaves it a faint -750..-500 HU spot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lungcad.synth.anatomy import Anatomy
from lungcad.synth.skeleton import CapsuleSet

PLAQUE, GRANULOMA, FAINT_DOT = "pleural plaque", "calcified granuloma", "faint dot"


@dataclass(frozen=True)
class Distractor:
    """One distractor (body mm): its kind, centre, diameter, HU and the capsules that draw it."""

    kind: str
    centre: np.ndarray  # (3,)
    diameter_mm: float
    hu: float
    capsules: CapsuleSet
    normal: np.ndarray | None = None  # plaques: outward pleural normal (unit, body frame)

    @property
    def listed(self) -> bool:
        """Whether it goes to annotations_excluded.csv (plaques and granulomas; not faint dots)."""
        return self.kind != FAINT_DOT


def _sphere(c: np.ndarray, r: float) -> CapsuleSet:
    return CapsuleSet(c[None], c[None] + 1e-3, np.array([r]), np.array([r]))


def _free(c: np.ndarray, r: float, taken: list[tuple[np.ndarray, float]]) -> bool:
    return all(np.linalg.norm(c - q) > r + rq + 4.0 for q, rq in taken)


def _lung_candidates(anat: Anatomy, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    h, a = anat.lung_height, anat.half_width
    cand = rng.uniform([-a, -a, -h], [a, a, 0.0], size=(n, 3))
    sdf, _ = anat.lung_sdf(cand[:, 0], cand[:, 1], cand[:, 2])
    return cand, sdf


def costal_normal(anat: Anatomy, p: np.ndarray) -> np.ndarray:
    """Outward unit normal of the lung surface at ``p`` (central differences of the signed distance)."""
    e = 0.5
    pts = np.array([p + e * np.eye(3)[k] * s for k in range(3) for s in (1, -1)])
    sdf, _ = anat.lung_sdf(pts[:, 0], pts[:, 1], pts[:, 2])
    g = np.array([sdf[2 * k] - sdf[2 * k + 1] for k in range(3)], dtype=np.float64)
    return g / max(float(np.linalg.norm(g)), 1e-9)


def _plaque(anat: Anatomy, rng: np.random.Generator, taken, inside_scan) -> Distractor | None:
    cand, sdf = _lung_candidates(anat, rng, 4096)
    a_cav = anat.cavity_axes(cand[:, 2].astype(np.float32))[0]
    # Costal pleura only (not mediastinal): the point lies laterally or posteriorly, near the cavity wall.
    ok = (sdf > -1.5) & (sdf < 0.0) & (np.abs(cand[:, 0]) > 0.45 * a_cav)
    for c in cand[ok]:
        n = costal_normal(anat, c)
        length = rng.uniform(8.0, 25.0)
        width = length * rng.uniform(0.4, 0.9)
        thick = rng.uniform(1.5, 4.0)
        # On the parietal pleura, protruding into the lung by about two thirds of its thickness.
        centre = c + n * (float(-_sdf1(anat, c)) - 0.2 * thick)
        if not _free(centre, length / 2, taken) or not inside_scan(centre[None], np.array([length]))[0]:
            continue
        e1 = np.cross(n, [0.0, 0.0, 1.0] if abs(n[2]) < 0.9 else [1.0, 0.0, 0.0])
        e1 = e1 / np.linalg.norm(e1)
        if rng.random() < 0.5:
            e1 = np.cross(n, e1)  # plaques run along the ribs or across them
        e2 = np.cross(n, e1)
        r = thick / 2
        rows = np.arange(-width / 2 + r, width / 2 - r + 1e-6, 0.6 * r) if width > 2 * r else np.zeros(1)
        a, b = [], []
        for off in rows:
            half = max(0.5 * length * np.sqrt(max(1.0 - (2 * off / width) ** 2, 0.0)) - r, 0.1)
            a.append(centre + off * e2 - half * e1)
            b.append(centre + off * e2 + half * e1)
        caps = CapsuleSet(np.array(a), np.array(b), np.full(len(a), r), np.full(len(a), r))
        taken.append((centre, length / 2))
        return Distractor(PLAQUE, centre, float(length), float(rng.uniform(350.0, 900.0)), caps, n)
    return None


def _sdf1(anat: Anatomy, p: np.ndarray) -> float:
    sdf, _ = anat.lung_sdf(p[0:1], p[1:2], p[2:3])
    return float(sdf[0])


def _sphere_in_lung(anat, rng, taken, inside_scan, d: float, subpleural: bool) -> np.ndarray | None:
    cand, sdf = _lung_candidates(anat, rng, 1024)
    r = d / 2
    ok = (sdf < -(r + 1.0)) & (sdf > -(r + 6.0)) if subpleural else sdf < -(r + 6.0)
    for c in cand[ok][:64]:
        if _free(c, r, taken) and inside_scan(c[None], np.array([r + 3.0]))[0]:
            taken.append((c, r))
            return c
    return None


def sample_distractors(
    anat: Anatomy,
    p_plaque: float,
    granulomas_max: int,
    dots_max: int,
    taken: list[tuple[np.ndarray, float]],
    inside_scan,
    rng: np.random.Generator,
) -> list[Distractor]:
    """Plaques (1-4 with probability ``p_plaque``), 0..``granulomas_max`` granulomas, 0..``dots_max`` dots.

    ``taken`` holds ``(centre, radius)`` of lesions already placed (body mm); distractors keep 4 mm clear
    of them and of each other.  ``inside_scan(body (N, 3), margin (N,)) -> bool (N,)``.
    """
    out: list[Distractor] = []
    if p_plaque > 0 and rng.random() < p_plaque:
        for _ in range(int(rng.integers(1, 5))):
            plaque = _plaque(anat, rng, taken, inside_scan)
            if plaque is not None:
                out.append(plaque)
    for _ in range(int(rng.integers(0, granulomas_max + 1))):
        d = float(rng.uniform(1.0, 4.0))
        c = _sphere_in_lung(anat, rng, taken, inside_scan, d, subpleural=bool(rng.random() < 0.4))
        if c is not None:
            out.append(Distractor(GRANULOMA, c, d, float(rng.uniform(600.0, 1200.0)), _sphere(c, d / 2)))
    for _ in range(int(rng.integers(0, dots_max + 1))):
        d = float(rng.uniform(1.0, 2.8))
        c = _sphere_in_lung(anat, rng, taken, inside_scan, d, subpleural=bool(rng.random() < 0.3))
        if c is not None:
            out.append(Distractor(FAINT_DOT, c, d, float(rng.uniform(-300.0, 0.0)), _sphere(c, d / 2)))
    return out
