"""Trachea, main bronchi and the bronchial tree (air lumen inside a soft-tissue wall).

Bronchi travel with their pulmonary arteries (bronchovascular bundles) and have about the artery's calibre,
so the tree is derived from the arterial segments: every artery segment of radius >= 1.1 mm gets a bronchus
beside it, offset sideways by the two radii plus the wall.  A bronchus cut across is a dark ring next to a
bright disc, a classic appearance that a detector must not call a nodule.  Wall thickness is ~20% of the
lumen radius plus 0.3 mm, so a 1 mm bronchus has a 0.5 mm wall and the trachea (9 mm) about 2 mm.
"""

from __future__ import annotations

import numpy as np

from lungcad.synth.anatomy import LEFT, RIGHT, Anatomy
from lungcad.synth.skeleton import CapsuleSet
from lungcad.synth.vessels import ARTERY, VesselTree

MIN_BRONCHUS_ARTERY_RADIUS_MM = 1.1


def _side_offsets(d: np.ndarray) -> np.ndarray:
    """A unit vector perpendicular to each direction ``d`` ``(N, 3)``, varying smoothly with ``d``."""
    ref = np.where(np.abs(d[:, 2:3]) < 0.9, np.array([[0.0, 0.0, 1.0]]), np.array([[1.0, 0.0, 0.0]]))
    n = np.cross(d, ref)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-9)


def _trachea_y(anat: Anatomy) -> float:
    h = anat.lung_height
    sy = float(anat.spine_y(np.float32(-0.2 * h)))
    sr = float(anat.spine_r(np.float32(-0.2 * h)))
    return sy - sr - 24.0


def carina_position(anat: Anatomy) -> np.ndarray:
    """Body position (mm) of the carina, where the trachea divides into the main bronchi."""
    return np.array([-1.0, _trachea_y(anat) + 6.0, -0.31 * anat.lung_height])


def build_airways(
    anat: Anatomy, vessels: VesselTree, rng: np.random.Generator
) -> tuple[CapsuleSet, CapsuleSet]:
    """Airway lumens and outer wall surfaces as capsule sets (body mm): ``(lumen, outer)``."""
    h = anat.lung_height
    trachea_y = _trachea_y(anat)
    carina = carina_position(anat)
    r_tr = rng.uniform(7.5, 9.5)
    lines = [np.array([[-3.0, trachea_y - 4.0, 70.0], [-2.0, trachea_y, -0.1 * h], carina])]
    radii = [np.array([r_tr, r_tr, 0.9 * r_tr])]

    art = (vessels.kind == ARTERY) & (vessels.ra >= MIN_BRONCHUS_ARTERY_RADIUS_MM)
    d = vessels.b[art] - vessels.a[art]
    length = np.linalg.norm(d, axis=1, keepdims=True)
    n = _side_offsets(d / np.maximum(length, 1e-9))
    lumen_a = 0.85 * vessels.ra[art]
    lumen_b = 0.85 * vessels.rb[art]
    wall = 0.2 * lumen_a + 0.3
    shift = n * (vessels.ra[art] + lumen_a + wall + 0.5)[:, None]
    bronchi_a, bronchi_b = vessels.a[art] + shift, vessels.b[art] + shift
    # Main bronchi: carina to the start of each lung's bronchial tree (the right one shorter and steeper).
    for side in (RIGHT, LEFT):
        own = vessels.side[art] == side
        if not own.any():
            continue
        first = int(np.argmax(np.where(own, vessels.ra[art], -1.0)))
        start = bronchi_a[first]
        mid = carina + np.array([0.5, 0.4, 0.6 if side == RIGHT else 0.45]) * (start - carina)
        r0 = 0.75 * r_tr if side == RIGHT else 0.68 * r_tr
        lines.append(np.stack([carina, mid, start]))
        radii.append(np.array([r0, r0, max(r0 * 0.9, lumen_a[first])]))
    trunk = CapsuleSet.from_polylines(lines, radii)
    lumen = CapsuleSet(
        np.concatenate([trunk.a, bronchi_a]),
        np.concatenate([trunk.b, bronchi_b]),
        np.concatenate([trunk.ra, lumen_a]),
        np.concatenate([trunk.rb, lumen_b]),
    )
    outer = CapsuleSet(lumen.a, lumen.b, lumen.ra * 1.2 + 0.3, lumen.rb * 1.2 + 0.3)
    return lumen, outer


def main_bronchus_ends(vessels: VesselTree) -> dict[int, np.ndarray]:
    """Where each main bronchus of ``build_airways`` ends (body mm), by side: the lobar bronchi of the hilum
    (``lungcad.synth.hilum``) start there.  The same arithmetic as ``build_airways``, without drawing."""
    art = (vessels.kind == ARTERY) & (vessels.ra >= MIN_BRONCHUS_ARTERY_RADIUS_MM)
    d = vessels.b[art] - vessels.a[art]
    n = _side_offsets(d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9))
    lumen_a = 0.85 * vessels.ra[art]
    shift = n * (vessels.ra[art] + lumen_a + (0.2 * lumen_a + 0.3) + 0.5)[:, None]
    out = {}
    for side in (RIGHT, LEFT):
        own = vessels.side[art] == side
        if own.any():
            out[side] = (vessels.a[art] + shift)[int(np.argmax(np.where(own, vessels.ra[art], -1.0)))]
    return out
