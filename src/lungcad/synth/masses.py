"""Lung masses: solid lesions of 30-80 mm (the Fleischner glossary calls a lesion >= 3 cm a mass).

A mass is a ``NoduleSpec`` with ``mass=True``, drawn by ``lesions.render_lesion`` like any nodule (so its
ground truth -- label mask, LUNA16 row, reader XML -- comes out the same way).  What makes it a mass:

* size: uniform on ``mass_diameter_range_mm`` (30-80 mm);
* shape: lobulated or spiculated (a smooth sphere of 5 cm is rare in lung cancer);
* density: solid soft tissue (+20..+50 HU, enhancing with contrast), and in 60 % of the masses above 4 cm a
  necrotic low-density centre (0..+20 HU, 35-60 % of the radius) as in large carcinomas;
* site (``mass_site_mix``): *mediastinal* -- broad-based against the mediastinum or the heart, at the hilar
  levels, so the lesion's soft tissue merges with the mediastinum's (the case a threshold lung mask
  leaves outside the lung); *chest-wall* -- broad-based against the costal pleura; *parenchymal* -- inside
  the lung, clear of the pleura by 3 mm at least.  The lesion is clipped to the lung as every nodule is, so
  a mass against the mediastinum ends flat on it.

The masses have their own random stream (``geometry.scan_rngs``'s "masses"), drawn only when
``p_mass > 0``: scans of cohorts without masses are bit-identical to what they were before masses existed.
"""

from __future__ import annotations

import numpy as np

from lungcad.config import SynthConfig
from lungcad.synth.anatomy import Anatomy, ellipse_sdf, outline_sdf
from lungcad.synth.nodules import NoduleLocation, NoduleShape, NoduleSpec, _finish, _pick, _shape_parts
from lungcad.types import Texture

# How deep the mass's centre lies inside the lung, as a fraction of its radius, at the pleural sites: the
# lesion overlaps the mediastinum / chest wall by 0.3-0.55 r and is clipped there (a broad base).
BASE_DEPTH = (0.45, 0.7)
TRIES = 30
CANDIDATES = 2048


def mass_site_ok(anat: Anatomy, pts: np.ndarray, r: float, site: str) -> np.ndarray:
    """Which body points (N, 3) can centre a mass of radius ``r`` mm at ``site`` (see module docstring).

    The mediastinal surface is the binding one when the distance to the mediastinal ellipse (or the heart)
    equals the lung's signed distance; the costal one when the mediastinum is far away.
    """
    x, y, z = pts[:, 0], pts[:, 1], pts[:, 2]
    sdf, _ = anat.lung_sdf(x, y, z)
    cx, cy, mw, md = anat.mediastinum(z)
    med = ellipse_sdf(x, y, cx, cy, mw, md)
    if anat.heart_overlaps(float(z.min()), float(z.max())):
        med = np.minimum(med, anat.heart_sdf(x, y, z))
    costal = -outline_sdf(x, y, *anat.cavity_axes(z))  # distance inside the chest wall
    lo, hi = BASE_DEPTH
    u = anat.level(z)
    if site == "parenchymal":
        return sdf < -(r + 3.0)
    at_pleura = (sdf > -hi * r) & (sdf < -lo * r)
    if site == "mediastinal":
        # hilar levels (a third to two thirds down the lung), beside the middle of the mediastinum (the
        # hilum, not the sternal or paravertebral corners), the chest wall well clear
        return at_pleura & (med < hi * r + 2.0) & (u > 0.3) & (u < 0.7) & (costal > r + 10.0)
    # the costal pleura the nearest surface (not the diaphragm, the spine or the apex)
    return at_pleura & (med > r + 10.0) & (costal < hi * r + 2.0) & (u > 0.2) & (u < 0.8)


def sample_mass(
    cfg: SynthConfig,
    anat: Anatomy,
    inside_scan,
    taken: list[NoduleSpec],
    rng: np.random.Generator,
) -> NoduleSpec | None:
    """One mass for a scan, with probability ``cfg.p_mass``; ``None`` without one or where none fits.

    Args:
        inside_scan: callable ``(body (N, 3), margin_mm (N,)) -> bool (N,)``: inside the scanned volume.
        taken: the scan's nodules; the mass keeps 5 mm clear of each.
    """
    if cfg.p_mass <= 0 or rng.random() >= cfg.p_mass:
        return None
    d = float(rng.uniform(*cfg.mass_diameter_range_mm))
    site = _pick(rng, cfg.mass_site_mix)
    shape = NoduleShape.LOBULATED if rng.random() < 0.5 else NoduleShape.SPICULATED
    r = 0.5 * d
    h, a = anat.lung_height, anat.half_width
    centre = None
    for _ in range(TRIES):
        cand = rng.uniform([-a, -a, -h], [a, a, 0.0], size=(CANDIDATES, 3))
        ok = mass_site_ok(anat, cand, r, site)
        ok &= inside_scan(cand, np.full(len(cand), r + 3.0))
        for c in cand[ok]:
            if all(np.linalg.norm(c - t.centre) > r + 0.5 * t.diameter_mm + 5.0 for t in taken):
                centre = c
                break
        if centre is not None:
            break
    if centre is None:
        return None
    enhance = rng.uniform(10, 50) if anat.contrast else 0.0
    necrotic = d >= 40.0 and rng.random() < 0.6
    spec = NoduleSpec(
        centre=centre,
        diameter_mm=d,
        texture=Texture.SOLID,
        shape=shape,
        location=NoduleLocation.ISOLATED if site == "parenchymal" else NoduleLocation.JUXTAPLEURAL,
        hu=float(rng.uniform(20, 50) + enhance),
        mass=True,
        necrosis_fraction=float(rng.uniform(0.35, 0.6)) if necrotic else 0.0,
        necrosis_hu=float(rng.uniform(0, 20)),
        **_shape_parts(rng, r, shape),
    )
    return _finish(spec, rng)
