"""Nodules (and the other focal findings readers mark): what they are, where they sit, how malignant.

Sampling follows the configured mixes, with the clinical regularities that make the labels learnable:

* Diameters follow a truncated power law ``p(d) ~ d^-power`` on ``diameter_range_mm`` (power 1.7 gives a
  median of ~7 mm on 3-30 mm, close to LIDC's); calcified granulomas are capped at 12 mm.
* Malignancy (1-5, LIDC's scale) rises with size (+1 per ~8 mm), spiculation (+1.3), lobulation (+0.6)
  and a solid component in a ground-glass nodule (+0.9), falls for calcification (-2.5) and fissure
  attachment (-0.8, perifissural lymph nodes), plus reader-like noise.  A 5 mm smooth solid nodule is
  usually 2; a 25 mm spiculated solid one is 5.
* Locations: isolated (clear of vessels of >= 1 mm), juxtavascular (centre ``r_vessel + 0.7 r`` from a
  1-4 mm vessel's axis, so the two overlap by 0.3 r), juxtapleural (centre 0.4-0.75 r inside the costal
  or mediastinal pleura, or beside a fissure: broad-based attachment).

Micronodules (< 3 mm) and scars (linear opacities readers call non-nodules) are generated here too; they
feed the LUNA16 excluded list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from lungcad.config import SynthConfig
from lungcad.synth.anatomy import Anatomy
from lungcad.synth.vessels import GREAT, VesselTree
from lungcad.types import Texture


class NoduleShape(StrEnum):
    SPHERICAL = "spherical"
    ELLIPSOIDAL = "ellipsoidal"
    LOBULATED = "lobulated"
    SPICULATED = "spiculated"


class NoduleLocation(StrEnum):
    ISOLATED = "isolated"
    JUXTAVASCULAR = "juxtavascular"
    JUXTAPLEURAL = "juxtapleural"
    PERIHILAR = "perihilar"  # touching a hilar vessel (``lungcad.synth.hilum``; realism pass)


@dataclass(frozen=True)
class NoduleSpec:
    """One lesion in body mm.  ``sub_shapes`` are (offset (3,), radius) spheres unioned with the core."""

    centre: np.ndarray  # (3,) body mm
    diameter_mm: float
    texture: Texture
    shape: NoduleShape
    location: NoduleLocation
    semi_axes: np.ndarray  # (3,) core ellipsoid semi-axes (mm)
    rotation: np.ndarray  # (3, 3) core orientation
    hu: float  # main body HU (ground glass for part-solid)
    core_hu: float = 0.0  # part-solid: solid core HU; calcified: calcification HU
    core_fraction: float = 0.0  # radius of the solid core / calcification relative to the nodule
    calcification: str = "none"  # none | diffuse | central | popcorn
    soft_margin_mm: float = 0.0  # extra edge width of ill-defined (ground-glass) margins
    lobes: tuple[tuple[np.ndarray, float], ...] = ()
    spicules: tuple[tuple[np.ndarray, np.ndarray, float], ...] = ()  # (start, end, base radius)
    fissure: bool = False  # juxtapleural against a fissure rather than the costal pleura
    malignancy: int = 1
    characteristics: dict[str, int] = field(default_factory=dict)
    micronodule: bool = False
    mass: bool = False  # >= 30 mm (``lungcad.synth.masses``)
    necrosis_fraction: float = 0.0  # radius of a low-density (necrotic) centre relative to the lesion
    necrosis_hu: float = 0.0


@dataclass(frozen=True)
class Scar:
    """A linear subpleural opacity (a non-nodule): a chain of points and radii in body mm."""

    points: np.ndarray  # (n, 3)
    radii: np.ndarray  # (n,)

    @property
    def centre(self) -> np.ndarray:
        return self.points[len(self.points) // 2]


def _pick(rng: np.random.Generator, mix: dict[str, float]) -> str:
    keys = sorted(mix)
    p = np.array([mix[k] for k in keys], dtype=np.float64)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def sample_diameter(rng: np.random.Generator, low: float, high: float, power: float) -> float:
    """Inverse-CDF draw from ``p(d) ~ d^-power`` on ``[low, high]``."""
    u = rng.random()
    if abs(power - 1.0) < 1e-6:
        return float(low * (high / low) ** u)
    e = 1.0 - power
    return float((low**e + u * (high**e - low**e)) ** (1.0 / e))


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def malignancy_score(
    d: float, texture: Texture, shape: NoduleShape, fissure: bool, rng: np.random.Generator
) -> int:
    """LIDC-style malignancy 1-5 (see module docstring for the weights)."""
    s = 0.125 * (d - 8.0)
    s += {NoduleShape.SPICULATED: 1.3, NoduleShape.LOBULATED: 0.6, NoduleShape.ELLIPSOIDAL: 0.1}.get(
        shape, 0.0
    )
    s += {Texture.PART_SOLID: 0.9, Texture.GROUND_GLASS: 0.2, Texture.CALCIFIED: -2.5}.get(texture, 0.0)
    s += -0.8 if fissure else 0.0
    return int(np.clip(np.rint(2.3 + s + rng.normal(0, 0.5)), 1, 5))


def characteristics(spec: NoduleSpec, rng: np.random.Generator) -> dict[str, int]:
    """The nine LIDC characteristics implied by a nodule (readers add their own noise later)."""
    d, tex, shape = spec.diameter_mm, spec.texture, spec.shape
    ratio = float(spec.semi_axes.min() / spec.semi_axes.max())
    calc = {"none": 6, "diffuse": 3, "central": 5, "popcorn": 1}[spec.calcification]
    sphericity = {NoduleShape.SPHERICAL: 5, NoduleShape.LOBULATED: 3, NoduleShape.SPICULATED: 3}.get(
        shape, int(np.clip(round(1 + 4 * ratio), 2, 5))
    )
    ill_defined = tex == Texture.GROUND_GLASS or shape == NoduleShape.SPICULATED
    subtle = 1.5 + d / 6.0 - (1.2 if tex == Texture.GROUND_GLASS else 0.0)
    subtle -= 0.5 if spec.location == NoduleLocation.JUXTAVASCULAR else 0.0
    return {
        "subtlety": int(np.clip(round(subtle), 1, 5)),
        "internalStructure": 1,
        "calcification": calc,
        "sphericity": sphericity,
        "margin": 2 if ill_defined else int(rng.integers(4, 6)),
        "lobulation": int(rng.integers(3, 6)) if shape == NoduleShape.LOBULATED else int(rng.integers(1, 3)),
        "spiculation": int(rng.integers(3, 6)) if shape == NoduleShape.SPICULATED else 1,
        "texture": {Texture.GROUND_GLASS: 1, Texture.PART_SOLID: 3}.get(tex, 5),
        "malignancy": spec.malignancy,
    }


def _shape_parts(rng: np.random.Generator, r: float, shape: NoduleShape) -> dict:
    """Semi-axes, rotation, lobes and spicules for a nodule of nominal radius ``r``."""
    parts: dict = {"rotation": _random_rotation(rng), "lobes": (), "spicules": ()}
    if shape == NoduleShape.ELLIPSOIDAL:
        # Axis ratios 1 : 0.65-0.9 : 0.5-0.85, scaled so the geometric mean radius stays r.
        ratios = np.array([1.0, rng.uniform(0.65, 0.9), rng.uniform(0.5, 0.85)])
        parts["semi_axes"] = r * ratios / np.cbrt(np.prod(ratios))
    elif shape == NoduleShape.LOBULATED:
        core = r * rng.uniform(0.7, 0.8)
        parts["semi_axes"] = np.full(3, core)
        n = int(rng.integers(4, 7))
        dirs = _unit(rng, n)
        parts["lobes"] = tuple(
            (dirs[i] * r * rng.uniform(0.35, 0.5), r * rng.uniform(0.4, 0.55)) for i in range(n)
        )
    elif shape == NoduleShape.SPICULATED:
        core = r * rng.uniform(0.75, 0.9)
        parts["semi_axes"] = core * np.array([1.0, rng.uniform(0.8, 1.0), rng.uniform(0.75, 1.0)])
        n = int(rng.integers(5, 13))
        dirs = _unit(rng, n)
        parts["spicules"] = tuple(
            (dirs[i] * core * 0.8, dirs[i] * (core + r * rng.uniform(0.5, 1.4)), rng.uniform(0.5, 1.0))
            for i in range(n)
        )
    else:
        parts["semi_axes"] = np.full(3, r)
    return parts


def _texture_hu(rng: np.random.Generator, texture: Texture, d: float, contrast: bool) -> dict:
    # Solid tissue enhances with intravenous contrast by 10-50 HU (ground glass barely does).
    enhance = rng.uniform(10, 50) if contrast else 0.0
    if texture == Texture.SOLID:
        return {"hu": rng.uniform(-20, 60) + enhance}
    if texture == Texture.GROUND_GLASS:
        return {"hu": rng.uniform(-720, -380), "soft_margin_mm": rng.uniform(0.8, 2.0)}
    if texture == Texture.PART_SOLID:
        return {
            "hu": rng.uniform(-680, -400),
            "core_hu": rng.uniform(-20, 50) + enhance,
            "core_fraction": rng.uniform(0.3, 0.65),
            "soft_margin_mm": rng.uniform(0.5, 1.5),
        }
    pattern = str(
        rng.choice(["diffuse", "central", "popcorn"], p=[0.5, 0.3, 0.2] if d < 8 else [0.2, 0.5, 0.3])
    )
    return {
        "hu": rng.uniform(0, 60) if pattern != "diffuse" else rng.uniform(250, 700),
        "core_hu": rng.uniform(400, 1000),
        "core_fraction": rng.uniform(0.35, 0.6),
        "calcification": pattern,
    }


class Placer:
    """Finds centres for lesions inside the lungs and inside the scanned, reconstructed field of view."""

    def __init__(
        self, anat: Anatomy, vessels: VesselTree, inside_scan, rng: np.random.Generator, perihilar=None
    ) -> None:
        self.anat = anat
        self.perihilar = perihilar  # callable r -> body centre | None (``lungcad.synth.hilum``)
        self.rng = rng
        self.inside_scan = inside_scan  # callable: body (N, 3), margin_mm (N,) -> bool (N,)
        lung = vessels.kind != GREAT
        self.va, self.vb = vessels.a[lung], vessels.b[lung]
        self.vr = 0.5 * (vessels.ra[lung] + vessels.rb[lung])
        self.taken: list[tuple[np.ndarray, float]] = []

    def _axis_distance(self, p: np.ndarray, big: np.ndarray) -> np.ndarray:
        a, b = self.va[big], self.vb[big]
        d = b - a
        t = np.clip(np.einsum("ij,ij->i", p - a, d) / np.maximum(np.einsum("ij,ij->i", d, d), 1e-9), 0, 1)
        return np.linalg.norm(p - (a + t[:, None] * d), axis=1)

    def _free(self, c: np.ndarray, r: float) -> bool:
        return all(np.linalg.norm(c - q) > r + rq + 8.0 for q, rq in self.taken)

    def _lung_points(self, n: int) -> np.ndarray:
        h, a = self.anat.lung_height, self.anat.half_width
        return self.rng.uniform([-a, -a, -h], [a, a, 0.0], size=(n, 3))

    def place(self, r: float, location: NoduleLocation) -> tuple[np.ndarray, bool] | None:
        """A centre (body mm) for a lesion of radius ``r`` at ``location`` and whether it is on a fissure."""
        for _ in range(40):
            fissure = False
            if location == NoduleLocation.JUXTAVASCULAR:
                c = self._juxtavascular(r)
            elif location == NoduleLocation.PERIHILAR:
                c = self.perihilar(r) if self.perihilar is not None else None
            else:
                cand = self._lung_points(512)
                sdf, _ = self.anat.lung_sdf(cand[:, 0], cand[:, 1], cand[:, 2])
                if location == NoduleLocation.ISOLATED:
                    ok = sdf < -(r + 5.0)
                else:
                    fissure = bool(self.rng.random() < 0.3)
                    if fissure:
                        fd = self.anat.fissure_distance(cand[:, 0], cand[:, 1], cand[:, 2])
                        ok = (fd > 0.4 * r) & (fd < 0.75 * r) & (sdf < -(r + 3.0))
                    else:
                        ok = (sdf > -0.75 * r) & (sdf < -0.4 * r)
                good = cand[ok]
                c = good[0] if len(good) else None
                if c is not None and location == NoduleLocation.ISOLATED:
                    big = self.vr >= 1.0
                    if np.any(self._axis_distance(c[None], big) - self.vr[big] < r + 1.5):
                        c = None
            if c is None or not self._free(c, r):
                continue
            if not self.inside_scan(c[None], np.array([r + 3.0]))[0]:
                continue
            self.taken.append((c, r))
            return c, fissure
        return None

    def _juxtavascular(self, r: float) -> np.ndarray | None:
        ok = np.flatnonzero((self.vr >= 1.0) & (self.vr <= 4.0))
        if ok.size == 0:
            return None
        for i in self.rng.choice(ok, size=min(64, ok.size), replace=False):
            t = self.rng.uniform(0.2, 0.8)
            p = self.va[i] + t * (self.vb[i] - self.va[i])
            d = self.vb[i] - self.va[i]
            u = self.rng.normal(size=3)
            u -= u @ d / max(d @ d, 1e-9) * d
            u /= np.linalg.norm(u)
            c = p + u * (self.vr[i] + 0.7 * r)
            sdf, _ = self.anat.lung_sdf(c[0:1], c[1:2], c[2:3])
            if sdf[0] < -(r + 3.0):
                return c
        return None


def sample_lesions(
    cfg: SynthConfig,
    anat: Anatomy,
    vessels: VesselTree,
    inside_scan,
    rng: np.random.Generator,
    perihilar=None,
) -> tuple[list[NoduleSpec], list[Scar]]:
    """Nodules (>= 3 mm), micronodules (< 3 mm) and scars for one scan (``perihilar``: see ``Placer``)."""
    placer = Placer(anat, vessels, inside_scan, rng, perihilar)
    specs: list[NoduleSpec] = []
    n = 0
    if cfg.nodules_per_scan_max > 0 and rng.random() >= cfg.p_no_nodule:
        k = np.arange(1, cfg.nodules_per_scan_max + 1)
        p = 0.6**k
        n = int(rng.choice(k, p=p / p.sum()))
    lo, hi = cfg.diameter_range_mm
    for _ in range(n):
        texture = Texture(_pick(rng, cfg.texture_mix))
        shape = NoduleShape(_pick(rng, cfg.shape_mix))
        location = NoduleLocation(_pick(rng, cfg.location_mix))
        d = sample_diameter(rng, lo, hi, cfg.diameter_power)
        if texture == Texture.CALCIFIED and d > 12.0:
            d = float(rng.uniform(lo, max(lo, min(hi, 12.0))))
        placed = placer.place(d / 2, location)
        if placed is None:
            continue
        centre, fissure = placed
        spec = NoduleSpec(
            centre=centre,
            diameter_mm=d,
            texture=texture,
            shape=shape,
            location=location,
            fissure=fissure,
            **_shape_parts(rng, d / 2, shape),
            **_texture_hu(rng, texture, d, anat.contrast),
        )
        specs.append(_finish(spec, rng))
    for _ in range(int(rng.integers(0, cfg.micronodules_per_scan_max + 1))):
        d = float(rng.uniform(1.5, 2.9))
        texture = Texture.CALCIFIED if rng.random() < 0.3 else Texture.SOLID
        location = NoduleLocation.JUXTAPLEURAL if rng.random() < 0.3 else NoduleLocation.ISOLATED
        placed = placer.place(d / 2, location)
        if placed is None:
            continue
        spec = NoduleSpec(
            centre=placed[0],
            diameter_mm=d,
            texture=texture,
            shape=NoduleShape.SPHERICAL,
            location=location,
            fissure=placed[1],
            micronodule=True,
            **_shape_parts(rng, d / 2, NoduleShape.SPHERICAL),
            **_texture_hu(rng, texture, d, anat.contrast),
        )
        specs.append(_finish(spec, rng))
    scars = [_scar(anat, placer, rng) for _ in range(int(rng.integers(0, cfg.non_nodules_per_scan_max + 1)))]
    return specs, [s for s in scars if s is not None]


def _finish(spec: NoduleSpec, rng: np.random.Generator) -> NoduleSpec:
    m = malignancy_score(spec.diameter_mm, spec.texture, spec.shape, spec.fissure, rng)
    base = NoduleSpec(**{**spec.__dict__, "malignancy": m})
    return NoduleSpec(**{**base.__dict__, "characteristics": characteristics(base, rng)})


def _scar(anat: Anatomy, placer: Placer, rng: np.random.Generator) -> Scar | None:
    """A 8-20 mm linear band just under the pleura, roughly tangential to it."""
    length = rng.uniform(8.0, 20.0)
    placed = placer.place(length / 2, NoduleLocation.ISOLATED)
    if placed is None:
        return None
    c = placed[0]
    direction = _unit(rng, 1)[0]
    t = np.linspace(-0.5, 0.5, 4)[:, None] * length
    pts = c + t * direction + rng.normal(0, 0.8, (4, 3))
    radii = rng.uniform(0.6, 1.2) * np.array([0.5, 1.0, 1.0, 0.5])
    return Scar(pts, radii)
