"""Pulmonary vascular trees (one arterial and one venous per lung) and the mediastinal great vessels.

Why this matters: on a single axial slice a vessel running through the plane is a bright disc, exactly like
a small solid nodule; only its continuation on neighbouring slices tells them apart.  The trees must
therefore fill the lungs the way real ones do: thick (~10 mm) at the hilum, branching 10-12 times down to
sub-millimetre twigs a centimetre from the pleura, curving, and crossing each other.

Growth is space-filling by recursive territory splitting.  Each tree gets its own cloud of territory points
sampled uniformly inside its lung.  A branch at ``p`` with radius ``r`` and territory ``S`` runs part of the
way toward the centroid of ``S`` (12-20% for the main trunk, so the thickest vessels stay at the hilum as
on real scans; 25-50% deeper in the tree), splits ``S`` at a random quantile (asymmetric bifurcations) by
a plane containing its direction of travel, and hands each half to a child.  Child radii follow Murray's
law with flow proportional to territory size, ``r_i = r (n_i / n)^(1/k)`` with ``k = MURRAY_EXPONENT``
(2.5), so a 10 mm root with 1800 territory points ends in ~0.5 mm twigs.  Every segment is then split in
two with its midpoint pushed sideways by ~7% of its length, the gentle tortuosity of real vessels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lungcad.synth.anatomy import LEFT, RIGHT, Anatomy
from lungcad.synth.skeleton import CapsuleSet

ARTERY, VEIN, GREAT = 1, 2, 0
# r^k = r_1^k + r_2^k at every bifurcation.  Murray's 3 (flow ~ r^3) filled the lungs of the figure's
# synthetic scan with twice LIDC-IDRI-0001's vessel volume fraction (5.7% vs 2.6% of lung above -500 HU);
# 2.5, within the 2.3-3 range measured on pulmonary arterial casts, matches it (2.8-3.4%).
MURRAY_EXPONENT = 2.5
HILUM_DEPTH_MM = 12.0  # roots lie this far inside the lung: the hilum is a notch the lung wraps around


@dataclass(frozen=True)
class VesselTree:
    """All vessel segments of a scan in body mm (ends ``a``, ``b`` ``(N, 3)``, radii ``ra``, ``rb``)."""

    a: np.ndarray
    b: np.ndarray
    ra: np.ndarray
    rb: np.ndarray
    kind: np.ndarray  # ARTERY / VEIN / GREAT (int8)
    side: np.ndarray  # RIGHT / LEFT / 0 for mediastinal (uint8)

    def capsules(self, mask: np.ndarray | None = None) -> CapsuleSet:
        m = slice(None) if mask is None else mask
        return CapsuleSet(self.a[m], self.b[m], self.ra[m], self.rb[m])


def sample_lung_points(
    anat: Anatomy, side: int, n: int, rng: np.random.Generator, margin_mm: float = 3.0
) -> np.ndarray:
    """``n`` points uniform inside one lung, at least ``margin_mm`` from its surface (body mm ``(n, 3)``)."""
    a = float(anat.half_width)
    lo = np.array([-a, -a, -anat.lung_height])
    hi = np.array([a, a, 0.0])
    if side == RIGHT:
        hi[0] = 30.0
    else:
        lo[0] = -20.0
    out: list[np.ndarray] = []
    have = 0
    while have < n:
        cand = rng.uniform(lo, hi, size=(max(4 * (n - have), 256), 3))
        sdf, s = anat.lung_sdf(cand[:, 0], cand[:, 1], cand[:, 2])
        keep = cand[(sdf < -margin_mm) & (s == side)]
        out.append(keep)
        have += len(keep)
    return np.concatenate(out)[:n]


def grow_tree(
    root: np.ndarray, radius: float, points: np.ndarray, rng: np.random.Generator, r_min: float = 0.25
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Grow one tree from ``root`` over its territory ``points`` (see module docstring).

    Returns:
        ``(a, b, ra, rb)``: segment ends ``(N, 3)`` and radii ``(N,)`` in the points' frame (mm).
    """
    seg_a: list[np.ndarray] = []
    seg_b: list[np.ndarray] = []
    seg_ra: list[float] = []
    seg_rb: list[float] = []
    stack: list[tuple[np.ndarray, float, np.ndarray, int]] = [(root, radius, np.arange(len(points)), 0)]
    while stack:
        p, r, idx, gen = stack.pop()
        pts = points[idx]
        if len(idx) <= 2 or r < r_min:
            for q in pts:  # terminal twigs toward the remaining territory points, tapering out
                seg_a.append(p)
                seg_b.append(p + 0.7 * (q - p))
                seg_ra.append(r)
                seg_rb.append(0.5 * r)
            continue
        c = pts.mean(axis=0)
        # The main and lobar trunks divide close to the hilum (on real scans the thick vessels crowd
        # the hila, and the deep lung holds segmental and smaller branches).
        alpha = (
            rng.uniform(0.12, 0.2)
            if gen == 0
            else rng.uniform(0.25, 0.4)
            if gen < 3
            else rng.uniform(0.3, 0.5)
        )
        q = p + alpha * (c - p)
        seg_a.append(p)
        seg_b.append(q)
        seg_ra.append(r)
        seg_rb.append(0.98 * r)
        # Split the territory by a plane that contains the direction of travel, across the territory's
        # widest extent perpendicular to it: both children keep heading outward and fan apart, which
        # gives the long radiating branches seen on a lung MIP.  (A cut across the travel direction
        # would leave one child a stub and send the other leaping ahead.)
        travel = c - p
        travel /= max(float(np.linalg.norm(travel)), 1e-9)
        spread = pts - c
        perp = spread - np.outer(spread @ travel, travel)
        _, vecs = np.linalg.eigh(perp.T @ perp)
        normal = vecs[:, -1] + rng.normal(0, 0.15, 3)
        proj = spread @ normal
        k = int(np.clip(round(len(idx) * rng.uniform(0.3, 0.7)), 1, len(idx) - 1))
        part = np.argpartition(proj, k)
        for sub in (idx[part[:k]], idx[part[k:]]):
            stack.append((q, r * (len(sub) / len(idx)) ** (1 / MURRAY_EXPONENT), sub, gen + 1))
    return np.array(seg_a), np.array(seg_b), np.array(seg_ra), np.array(seg_rb)


def add_tortuosity(
    a: np.ndarray,
    b: np.ndarray,
    ra: np.ndarray,
    rb: np.ndarray,
    rng: np.random.Generator,
    amount: float = 0.07,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split each segment at a midpoint displaced perpendicular to it by ``N(0, amount x length)``."""
    d = b - a
    length = np.linalg.norm(d, axis=1, keepdims=True)
    offset = rng.normal(0, 1, a.shape)
    unit = d / np.maximum(length, 1e-9)
    offset -= np.sum(offset * unit, axis=1, keepdims=True) * unit
    mid = 0.5 * (a + b) + offset * amount * length
    rm = 0.5 * (ra + rb)
    return (
        np.concatenate([a, mid]),
        np.concatenate([mid, b]),
        np.concatenate([ra, rm]),
        np.concatenate([rm, rb]),
    )


def hilum_roots(anat: Anatomy, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Body positions of the arterial and venous roots of one lung (at the mediastinal border)."""
    h = anat.lung_height
    sgn = -1.0 if side == RIGHT else 1.0
    out = []
    for u, dy in ((0.42, 0.08), (0.56, -0.12)):
        z = np.float32(-u * h)
        cx, cy, hw, hd = anat.mediastinum(z)
        y = float(cy) + dy * float(hd)
        # Half-width of the mediastinal ellipse at this y, then 4 mm into the lung.
        half = float(hw) * np.sqrt(max(1.0 - ((y - float(cy)) / float(hd)) ** 2, 0.05))
        out.append(np.array([float(cx) + sgn * (half + HILUM_DEPTH_MM), y, float(z)]))
    return out[0], out[1]


def great_vessels(anat: Anatomy, roots: dict[tuple[int, int], np.ndarray]) -> CapsuleSet:
    """Aorta, pulmonary trunk and arteries, pulmonary veins, cavae and arch branches (body mm)."""
    h = anat.lung_height
    sy = float(anat.spine_y(np.float32(-0.5 * h)))
    sr = float(anat.spine_r(np.float32(-0.5 * h)))
    hx, hy, hz = anat.heart_centre
    _, _, az = anat.heart_axes
    top = 60.0
    lines: list[tuple[list[list[float]], list[float]]] = []
    desc_y = sy - sr - 4.0
    aorta = [
        [hx - 15, hy + 12, hz + 0.5 * az],
        [hx - 22, hy + 5, -0.3 * h],
        [-12, -0.25 * desc_y, -0.2 * h],
        [4, 0.3 * desc_y, -0.14 * h],
        [18, 0.8 * desc_y, -0.2 * h],
        [22, desc_y, -0.35 * h],
        [20, desc_y, -0.7 * h],
        [12, desc_y, -h - 60],
    ]
    lines.append((aorta, [15.0, 15.5, 14.0, 13.0, 12.0, 11.5, 11.0, 10.5]))
    bif = [8.0, hy + 30.0, -0.36 * h]
    lines.append(
        (
            [[hx + 0.3 * anat.heart_axes[0], hy - 10, hz + 0.55 * az], [hx + 15, hy + 10, -0.42 * h], bif],
            [13.0, 13.0, 12.0],
        )
    )
    ra_, la_ = roots[(RIGHT, ARTERY)], roots[(LEFT, ARTERY)]
    lines.append(([bif, [-10, bif[1] + 8, bif[2] - 2], list(ra_)], [10.0, 9.5, 8.0]))
    lines.append(([bif, [bif[0] + 18, bif[1] + 14, bif[2] + 6], list(la_)], [10.0, 9.5, 8.0]))
    atrium = [hx - 10, hy + 0.8 * anat.heart_axes[1], hz + 0.45 * az]
    for side in (RIGHT, LEFT):
        rv = roots[(side, VEIN)]
        lines.append(
            (
                [list(rv), [0.5 * (rv[0] + atrium[0]), 0.5 * (rv[1] + atrium[1]), rv[2]], atrium],
                [7.5, 7.5, 7.0],
            )
        )
    svc = [
        [-28, -0.35 * abs(desc_y) - 5, top],
        [-26, hy + 15, -0.35 * h],
        [hx - 0.6 * anat.heart_axes[0], hy + 5, hz + 0.3 * az],
    ]
    lines.append((svc, [9.0, 10.0, 10.0]))
    ivc = [[hx - 0.5 * anat.heart_axes[0], hy + 25, hz - 0.6 * az], [-15, desc_y - 12, -h - 60]]
    lines.append((ivc, [11.0, 11.0]))
    for x0, r in ((-12.0, 6.0), (2.0, 4.5), (12.0, 4.5)):  # brachiocephalic trunk, left carotid, subclavian
        lines.append(
            ([[x0 * 0.5, 0.1 * desc_y, -0.15 * h], [x0, 0.0, 0.0], [x0 * 1.6, -10.0, top]], [r, r, r * 0.9])
        )
    for sgn in (-1.0, 1.0):  # brachiocephalic veins joining into the SVC
        lines.append(([[sgn * 60.0, -25.0, 5.0], [-28, -0.35 * abs(desc_y) - 5, -0.12 * h]], [7.0, 8.0]))
    return CapsuleSet.from_polylines(
        [np.asarray(p, dtype=np.float64) for p, _ in lines],
        [np.asarray(r, dtype=np.float64) for _, r in lines],
    )


def build_vessels(anat: Anatomy, rng: np.random.Generator, points_per_tree: int) -> VesselTree:
    """Both lungs' arterial and venous trees plus the great vessels."""
    parts = []
    roots: dict[tuple[int, int], np.ndarray] = {}
    for side in (RIGHT, LEFT):
        art_root, vein_root = hilum_roots(anat, side)
        roots[(side, ARTERY)], roots[(side, VEIN)] = art_root, vein_root
        # The right lung is ~10% larger and gets proportionally more territory.
        n = int(points_per_tree * (1.05 if side == RIGHT else 0.95))
        for kind, root, r0 in (
            (ARTERY, art_root, rng.uniform(6.5, 8.0)),
            (VEIN, vein_root, rng.uniform(6.0, 7.5)),
        ):
            pts = sample_lung_points(anat, side, n, rng, margin_mm=4.0)
            a, b, ra, rb = add_tortuosity(*grow_tree(root, r0, pts, rng), rng)
            parts.append((a, b, ra, rb, np.full(len(a), kind, np.int8), np.full(len(a), side, np.uint8)))
    g = great_vessels(anat, roots)
    parts.append((g.a, g.b, g.ra, g.rb, np.full(len(g), GREAT, np.int8), np.zeros(len(g), np.uint8)))
    cols = list(zip(*parts, strict=True))
    return VesselTree(*(np.concatenate(c) for c in cols))
