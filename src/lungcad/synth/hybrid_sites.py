"""Where a synthetic nodule goes in a real lung: isolated, juxtavascular, juxtapleural or perihilar.

Definitions (``r`` the nodule radius; "lung" the host's native lung, ``hybrid_host``; "vessel" a lung voxel
above -400 HU, i.e. blood vessel, bronchial wall or a real lesion; a vessel's local radius is the distance
transform of the vessel mask at its voxel):

* **isolated**: the centre is >= r + 5 mm from any non-lung voxel and no vessel voxel of local radius
  >= 1 mm lies within r + 1.5 mm of it (small vessels may cross, as in real parenchyma).
* **juxtavascular**: outside the hilum region, >= r + 3 mm from the pleura; the centre sits
  ``r_v + 0.7 r`` from a vessel voxel of local radius r_v in [1, 4] mm, so the nodule overlaps that
  vessel by ~0.3 r (the phantom's rule, ``nodules.Placer``), and the nodule's sphere holds vessel voxels.
* **juxtapleural**: the centre lies 0.4-0.75 r inside the lung boundary (costal or mediastinal pleura):
  a broad-based attachment; the label touches the boundary.
* **perihilar**: inside the hilum region (``hybrid_host._hilum``: medial, mid-height, mid-depth) touching
  a vessel of local radius 1.5-8 mm (hilar arteries and veins): centre ``r_v + 0.6 r`` from it.
* **fissural**: not supported.  Fissures are 1-2 voxel sheets of ~-750 HU that a threshold cannot find
  reliably on 1.25-2.5 mm slices (a Hessian plate filter would be needed, and would confuse fissures with
  scars and vessel walls), so no site is claimed on one.

Every site also keeps >= 15 mm + r + r_f from each known host finding (real nodules and LUNA16 excluded
findings, radius r_f; 0 when unknown) and r + r_o + 8 mm from each nodule already placed, and lies far
enough from the first and last slice for the slice profile.  Candidates are drawn at random from the
coarse lung grid and refined on native voxels in a small box, so a site costs milliseconds.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
from scipy import ndimage

from lungcad.synth.hybrid_host import VESSEL_HU, Host


class SiteKind(StrEnum):
    ISOLATED = "isolated"
    JUXTAVASCULAR = "juxtavascular"
    JUXTAPLEURAL = "juxtapleural"
    PERIHILAR = "perihilar"


SITE_KINDS: tuple[str, ...] = tuple(k.value for k in SiteKind)
DEFAULT_SITE_MIX = {"isolated": 0.3, "juxtavascular": 0.3, "juxtapleural": 0.2, "perihilar": 0.2}
FINDING_CLEARANCE_MM = 15.0
NODULE_CLEARANCE_MM = 8.0
TRIES = 300


class _Local:
    """Native-resolution lung and vessel geometry in a box around a candidate centre."""

    def __init__(self, host: Host, centre_vox: np.ndarray, half_mm: float) -> None:
        vol = host.volume
        sp = np.asarray(vol.spacing_zyx_mm)
        half = np.ceil(half_mm / sp).astype(int) + 1
        c = np.rint(centre_vox).astype(int)
        self.lo = np.clip(c - half, 0, vol.shape)
        hi = np.clip(c + half + 1, 0, vol.shape)
        box = tuple(slice(int(a), int(b)) for a, b in zip(self.lo, hi, strict=True))
        self.sp = sp
        self.lung = host.lung[box]
        self.vessel = self.lung & (vol.hu[box] > VESSEL_HU)
        grids = np.meshgrid(
            *[(np.arange(a, b) - cv) * s for a, b, cv, s in zip(self.lo, hi, centre_vox, sp, strict=True)],
            indexing="ij",
        )
        self.dist = np.sqrt(grids[0] ** 2 + grids[1] ** 2 + grids[2] ** 2)  # mm from the candidate centre
        self.c = np.rint(centre_vox).astype(int) - self.lo

    def inside(self) -> bool:
        return bool(
            all(0 <= v < n for v, n in zip(self.c, self.lung.shape, strict=True)) and self.lung[tuple(self.c)]
        )

    def depth(self) -> float:
        """Distance (mm) from the centre to the nearest non-lung voxel of the box (box edge = far)."""
        out = ~self.lung
        return float(self.dist[out].min()) if out.any() else float(self.dist.max())

    def vessel_radius(self) -> np.ndarray:
        return ndimage.distance_transform_edt(self.vessel, sampling=self.sp)


class SiteChooser:
    """Draws sites in one host scan; remembers the ones taken (``taken``: world centre, radius)."""

    def __init__(self, host: Host, rng: np.random.Generator) -> None:
        self.host = host
        self.rng = rng
        lungs = host.lungs
        self.factors = np.asarray(lungs.factors)
        self.coarse_lung = np.argwhere(lungs.mask)
        coarse_hu = lungs.grid.hu
        self.coarse_vessel = np.argwhere(
            ndimage.binary_erosion(lungs.mask) & (coarse_hu > VESSEL_HU) & ~host.hilum
        )
        self.coarse_hilar = np.argwhere(host.hilum & (coarse_hu > VESSEL_HU))
        self.taken: list[tuple[np.ndarray, float]] = []
        self.avoid = [(np.asarray(f.center_xyz_mm), f.radius_mm) for f in host.findings]

    def _native(self, coarse_idx: np.ndarray) -> np.ndarray:
        jitter = self.rng.uniform(0, 1, 3) * self.factors
        return np.minimum(coarse_idx * self.factors + jitter, np.asarray(self.host.volume.shape) - 1)

    def _clear(self, c_vox: np.ndarray, r: float) -> bool:
        vol = self.host.volume
        nz = vol.shape[0]
        sz = vol.spacing_zyx_mm[0]
        # The slice profile and the lesion must fit between the first and last slice.
        margin = (r + 0.5 * self.host.slice_thickness_mm) / sz + 1
        if c_vox[0] < margin or c_vox[0] > nz - 1 - margin:
            return False
        w = vol.voxel_to_world(c_vox)
        if any(np.linalg.norm(w - p) < FINDING_CLEARANCE_MM + r + rp for p, rp in self.avoid):
            return False
        return all(np.linalg.norm(w - p) >= r + rp + NODULE_CLEARANCE_MM for p, rp in self.taken)

    def choose(self, kind: SiteKind, r: float) -> np.ndarray | None:
        """A world centre (x, y, z) mm for a nodule of radius ``r`` mm at a site of ``kind``, or None."""
        fn = {
            SiteKind.ISOLATED: self._isolated,
            SiteKind.JUXTAVASCULAR: self._juxtavascular,
            SiteKind.JUXTAPLEURAL: self._juxtapleural,
            SiteKind.PERIHILAR: self._perihilar,
        }[kind]
        for _ in range(TRIES):
            c = fn(r)
            if c is not None and self._clear(c, r):
                world = self.host.volume.voxel_to_world(c)
                self.taken.append((world, r))
                return world
        return None

    def _pick(self, pool: np.ndarray, ok=None) -> np.ndarray | None:
        if len(pool) == 0:
            return None
        idx = pool[int(self.rng.integers(len(pool)))]
        if ok is not None and not ok(idx):
            return None
        return self._native(idx)

    def _isolated(self, r: float) -> np.ndarray | None:
        depth = self.host.coarse_depth_mm
        c = self._pick(self.coarse_lung, lambda i: depth[tuple(i)] >= r + 6.0)
        if c is None:
            return None
        loc = _Local(self.host, c, r + 6.0)
        if not loc.inside() or loc.depth() < r + 5.0 or loc.vessel[tuple(loc.c)]:
            return None
        big = loc.vessel_radius() >= 1.0
        if np.any(big & (loc.dist < r + 1.5)):
            return None
        return c

    def _next_to_vessel(self, r: float, pool: np.ndarray, rv_range: tuple[float, float], gap: float):
        """A centre ``r_v + gap r`` from a vessel voxel of local radius in ``rv_range`` (or None)."""
        v = self._pick(pool)
        if v is None:
            return None, None
        loc = _Local(self.host, v, 2 * r + rv_range[1] + 3.0)
        rad = loc.vessel_radius()
        near = (rad >= rv_range[0]) & (rad <= rv_range[1]) & (loc.dist < 3.0)
        if not near.any():
            return None, None
        cand = np.argwhere(near)
        j = cand[int(self.rng.integers(len(cand)))]
        rv = float(rad[tuple(j)])
        u = self.rng.normal(size=3)
        u /= np.linalg.norm(u)
        c = (j + loc.lo) + u * (rv + gap * r) / loc.sp
        if np.any(c < 0) or np.any(c > np.asarray(self.host.volume.shape) - 1):
            return None, None
        loc2 = _Local(self.host, c, r + 4.0)
        if not loc2.inside() or loc2.vessel[tuple(loc2.c)]:
            return None, None
        if not np.any(loc2.vessel & (loc2.dist < r)):
            return None, None
        return c, loc2

    def _juxtavascular(self, r: float) -> np.ndarray | None:
        c, loc = self._next_to_vessel(r, self.coarse_vessel, (1.0, 4.0), 0.7)
        if c is None or loc.depth() < r + 3.0:
            return None
        return c

    def _perihilar(self, r: float) -> np.ndarray | None:
        c, _ = self._next_to_vessel(r, self.coarse_hilar, (1.5, 8.0), 0.6)
        return c

    def _juxtapleural(self, r: float) -> np.ndarray | None:
        depth = self.host.coarse_depth_mm
        c = self._pick(self.coarse_lung, lambda i: depth[tuple(i)] <= r + 4.0)
        if c is None:
            return None
        loc = _Local(self.host, c, r + 6.0)
        if not loc.lung.any() or loc.lung.all():
            return None
        # Slide the centre along the local normal to the wanted depth: from the nearest non-lung voxel p
        # through c, to the point at depth t r (0.4 <= t <= 0.75) on that line.
        out = ~loc.lung
        d = np.where(out, loc.dist, np.inf)
        p = np.array(np.unravel_index(int(np.argmin(d)), d.shape), dtype=np.float64)
        normal = (loc.c - p) * loc.sp
        n = np.linalg.norm(normal)
        if n < 1e-6:
            return None
        t = self.rng.uniform(0.4, 0.75)
        c2 = (p + normal / n * (t * r + 0.5 * float(loc.sp.min())) / loc.sp) + loc.lo
        loc2 = _Local(self.host, c2, r + 2.0)
        if not loc2.inside():
            return None
        depth2 = loc2.depth()
        return c2 if 0.3 * r <= depth2 <= 0.85 * r + 0.5 else None
