"""The hila: lobar pulmonary arteries and veins converging on the mediastinum, lobar bronchi with walls,
hilar and mediastinal lymph nodes, and the sites of perihilar nodules.

Why: on real scans the detector missed perihilar nodules touching the thick vessels near the mediastinum
(issue 10), a region the vessel trees alone render as a few smooth trunks.  A real hilum is crowded: on
each side a pulmonary artery (~12-15 mm) enters from the mediastinum and splits at once into 2-3 lobar
arteries (6-10 mm); the superior and inferior pulmonary veins (8-12 mm) run separately, lower and more
anterior, to the left atrium; the lobar bronchi (air lumen 4-8 mm inside a 1-2 mm soft-tissue wall) lie
beside the arteries; 5-12 mm lymph nodes sit in the angles between them.

Everything is in body mm (``lungcad.synth.anatomy``).  Each vessel is a polyline from an anchor ~20 mm
inside the mediastinum (so it visibly connects to it) out through the tree's hilar root into its lobe;
endpoints that would leave the lung are pulled back toward the root.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lungcad.synth.anatomy import LEFT, RIGHT, Anatomy
from lungcad.synth.skeleton import CapsuleSet
from lungcad.synth.vessels import ARTERY, GREAT, VEIN, VesselTree, hilum_roots

MEDIASTINAL_ANCHOR_MM = 20.0  # how far medial of the hilar root the vessels start (inside the mediastinum)
PERIHILAR_VESSEL_RADIUS_MM = 2.5  # perihilar nodules attach to vessels at least this thick ...
PERIHILAR_REACH_MM = 45.0  # ... within this distance of a hilar root

# Lobar directions (lateral, anterior-posterior, cranio-caudal) x length (mm) for arteries and veins.
_ARTERY_LOBES = ((0.35, -0.15, 0.9), (0.55, -0.55, -0.35), (0.3, 0.45, -0.85))  # upper, middle/lingula, lower
_VEIN_LOBES = ((0.45, -0.45, 0.75), (0.5, 0.25, -0.8))  # superior, inferior pulmonary vein


@dataclass(frozen=True)
class Hilum:
    """Hilar structures of one scan (body mm)."""

    vessels: CapsuleSet
    vessel_kind: np.ndarray  # ARTERY / VEIN per segment (int8)
    vessel_side: np.ndarray  # RIGHT / LEFT per segment (uint8)
    bronchus_lumen: CapsuleSet
    bronchus_outer: CapsuleSet
    node_centres: np.ndarray  # (n, 3) lymph node centres
    node_radii: np.ndarray  # (n,)
    node_hu: float

    def as_tree(self) -> VesselTree:
        v = self.vessels
        return VesselTree(v.a, v.b, v.ra, v.rb, self.vessel_kind, self.vessel_side)

    def summary(self) -> dict[str, object]:
        """What the manifest records (``params["hilum"]``)."""
        return {
            "vessel_segments": len(self.vessels),
            "bronchus_segments": len(self.bronchus_lumen),
            "lymph_nodes": [
                {
                    "kind": "lymph node",
                    "center_body_mm": [round(float(v), 2) for v in c],
                    "diameter_mm": 2 * r,
                }
                for c, r in zip(self.node_centres, self.node_radii.tolist(), strict=True)
            ],
        }


def _inside_lung(anat: Anatomy, root: np.ndarray, target: np.ndarray, margin: float) -> np.ndarray:
    """``target`` pulled toward ``root`` until it lies ``margin`` mm inside the lung (or at the root)."""
    for f in (1.0, 0.85, 0.7, 0.55, 0.4, 0.25):
        p = root + f * (target - root)
        sdf, _ = anat.lung_sdf(p[0:1], p[1:2], p[2:3])
        if sdf[0] < -margin:
            return p
    return root + 0.25 * (target - root)


def _polyline(
    anat: Anatomy,
    anchor: np.ndarray,
    root: np.ndarray,
    direction: tuple[float, float, float],
    sgn: float,
    length: float,
    r0: float,
    r1: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    d = np.array([sgn * direction[0], direction[1], direction[2]])
    d = d / np.linalg.norm(d) + rng.normal(0, 0.08, 3)
    end = _inside_lung(anat, root, root + length * d / np.linalg.norm(d), 2.0 + r1)
    mid = 0.5 * (root + end) + rng.normal(0, 1.5, 3)
    pts = np.stack([anchor, root, mid, end])
    return pts, np.array([r0, r0, 0.5 * (r0 + r1), r1])


def build_hilum(
    anat: Anatomy,
    carina: np.ndarray,
    rng: np.random.Generator,
    bronchus_ends: dict[int, np.ndarray] | None = None,
) -> Hilum:
    """Lobar vessels, bronchi and lymph nodes of both hila (see module docstring).

    ``bronchus_ends``: where the scan's main bronchi already end (``airways.main_bronchus_ends``); the
    lobar bronchi then start there and no second main bronchus is drawn beside the first.
    """
    lines, radii, kinds, sides = [], [], [], []
    b_lines, b_radii = [], []
    nodes: list[tuple[np.ndarray, float]] = []
    for side in (RIGHT, LEFT):
        sgn = -1.0 if side == RIGHT else 1.0
        art_root, vein_root = hilum_roots(anat, side)
        for kind, root, lobes, r_range in (
            (ARTERY, art_root, _ARTERY_LOBES if side == RIGHT else _ARTERY_LOBES[::2], (5.0, 6.5)),
            (VEIN, vein_root, _VEIN_LOBES, (4.5, 6.0)),
        ):
            anchor = root - np.array([sgn * MEDIASTINAL_ANCHOR_MM, 0.0, 0.0])
            for lobe in lobes:
                r0 = rng.uniform(*r_range)
                pts, rr = _polyline(anat, anchor, root, lobe, sgn, rng.uniform(35, 55), r0, 0.5 * r0, rng)
                lines.append(pts)
                radii.append(rr)
                kinds.append(kind)
                sides.append(side)
        # Main bronchus: carina to the hilum, beside and behind the artery; then the lobar bronchi.
        b0 = art_root + np.array([-sgn * 4.0, 11.0, -4.0])
        r_main = rng.uniform(5.0, 6.5) * (1.0 if side == RIGHT else 0.9)
        if bronchus_ends is not None and side in bronchus_ends:
            b0 = bronchus_ends[side]
        else:
            b_lines.append(np.stack([carina, 0.5 * (carina + b0) + np.array([0.0, 2.0, 0.0]), b0]))
            b_radii.append(np.array([r_main, r_main, 0.9 * r_main]))
        for lobe in _ARTERY_LOBES if side == RIGHT else _ARTERY_LOBES[::2]:
            rl = rng.uniform(2.8, 4.0)
            d = np.array([sgn * lobe[0], lobe[1] + 0.3, lobe[2]])
            end = _inside_lung(anat, b0, b0 + rng.uniform(22, 32) * d / np.linalg.norm(d), 2.0 + rl)
            b_lines.append(np.stack([b0, end]))
            b_radii.append(np.array([rl, 0.7 * rl]))
        # Hilar nodes: in the angles between the vessels at the mediastinal border.
        for _ in range(int(rng.integers(1, 3))):
            c = 0.5 * (art_root + vein_root) + np.array([-sgn * rng.uniform(6, 14), rng.uniform(-8, 8), 0.0])
            nodes.append((c, rng.uniform(2.5, 6.0)))
    # Subcarinal and right paratracheal nodes (mediastinal stations 7 and 4R).
    nodes.append(
        (
            carina + np.array([rng.uniform(-4, 4), rng.uniform(6, 12), -rng.uniform(12, 20)]),
            rng.uniform(3.0, 6.0),
        )
    )
    nodes.append(
        (
            carina + np.array([-rng.uniform(14, 20), rng.uniform(-6, 2), rng.uniform(10, 25)]),
            rng.uniform(2.5, 5.0),
        )
    )
    vessels = CapsuleSet.from_polylines(lines, radii)
    counts = [len(CapsuleSet.from_polylines([p], [r])) for p, r in zip(lines, radii, strict=True)]
    lumen = CapsuleSet.from_polylines(b_lines, b_radii)
    # Wall: ~20% of the lumen radius plus 0.8 mm (1.5-2 mm on lobar and main bronchi).
    outer = CapsuleSet(lumen.a, lumen.b, 1.2 * lumen.ra + 0.8, 1.2 * lumen.rb + 0.8)
    return Hilum(
        vessels=vessels,
        vessel_kind=np.repeat(np.array(kinds, np.int8), counts),
        vessel_side=np.repeat(np.array(sides, np.uint8), counts),
        bronchus_lumen=lumen,
        bronchus_outer=outer,
        node_centres=np.array([c for c, _ in nodes]),
        node_radii=np.array([r for _, r in nodes]),
        node_hu=float(rng.uniform(25.0, 50.0)),
    )


def perihilar_sites(
    anat: Anatomy, tree: VesselTree, hilum: Hilum | None, rng: np.random.Generator
) -> Callable[[float], np.ndarray | None]:
    """A function ``r -> centre`` (body mm) of a nodule of radius ``r`` touching a hilar vessel.

    Candidate vessels: the hilum's lobar vessels and the trees' segments of >= 2.5 mm radius within 45 mm of
    a hilar root.  The centre lies ``r_vessel + 0.7 r`` from the vessel axis (they overlap by 0.3 r) and at
    least 0.3 r inside the lung: perihilar nodules may abut the mediastinal pleura.  Draws from ``rng``
    (the realism stream), not the nodule stream.
    """
    roots = np.array([p for s in (RIGHT, LEFT) for p in hilum_roots(anat, s)])
    keep = tree.kind != GREAT
    ra = 0.5 * (tree.ra + tree.rb)
    near = np.min(np.linalg.norm(tree.a[:, None, :] - roots[None], axis=2), axis=1) < PERIHILAR_REACH_MM
    keep &= near & (ra >= PERIHILAR_VESSEL_RADIUS_MM)
    va, vb, vr = tree.a[keep], tree.b[keep], ra[keep]
    if hilum is not None:
        h = hilum.vessels
        va, vb = np.concatenate([va, h.a]), np.concatenate([vb, h.b])
        vr = np.concatenate([vr, 0.5 * (h.ra + h.rb)])

    def site(r: float) -> np.ndarray | None:
        if len(va) == 0:
            return None
        for i in rng.choice(len(va), size=min(48, len(va)), replace=False):
            d = vb[i] - va[i]
            p = va[i] + rng.uniform(0.2, 0.9) * d
            u = rng.normal(size=3)
            u -= u @ d / max(float(d @ d), 1e-9) * d
            u /= np.linalg.norm(u)
            c = p + u * (vr[i] + 0.7 * r)
            sdf, _ = anat.lung_sdf(c[0:1], c[1:2], c[2:3])
            if sdf[0] < -0.3 * r:
                return c
        return None

    return site


def vessel_gap_mm(centre: np.ndarray, tree: VesselTree) -> float:
    """Smallest distance (mm) from ``centre`` to the surface of any segment of ``tree`` (< 0: inside)."""
    d = tree.b - tree.a
    t = np.clip(
        np.einsum("ij,ij->i", centre - tree.a, d) / np.maximum(np.einsum("ij,ij->i", d, d), 1e-9), 0, 1
    )
    dist = np.linalg.norm(centre - (tree.a + t[:, None] * d), axis=1)
    return float(np.min(dist - (tree.ra + t * (tree.rb - tree.ra))))
