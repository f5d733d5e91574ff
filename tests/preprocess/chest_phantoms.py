"""Analytic chest phantoms with known anatomy, for testing the lung mask on widely varied geometry.

Everything is defined in world millimetres around the body axis (LPS: +x is the patient's left, +y
posterior, +z superior) and sampled on a coarse grid, so one phantom costs a few tens of milliseconds.
The anatomy that makes a lung mask hard is there on purpose: a heart that indents the left lung, a
descending aorta in a groove of the left lung, a spine, a chest wall of chosen thickness, lungs that may
leave the scanned range or the field of view, and optional solid masses of the same HU as the
mediastinum (the worst case: nothing but shape tells them apart).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from lungcad.types import CTVolume

TISSUE_HU = 40.0
LUNG_HU = -850.0
AIR_HU = -1000.0
MassSite = Literal["mediastinum", "chest_wall"]


@dataclass(frozen=True)
class Mass:
    """A spherical solid mass of ``diameter_mm`` in the ``side`` lung ("left" or "right")."""

    diameter_mm: float
    site: MassSite
    side: str = "right"
    z_mm: float = 20.0  # centre height relative to the lungs' centre


@dataclass(frozen=True)
class ChestPhantom:
    """The volume and its ground truth (bool masks on the volume's grid)."""

    volume: CTVolume
    left_lung: np.ndarray  # aerated lung, patient left (+x)
    right_lung: np.ndarray
    heart: np.ndarray
    aorta: np.ndarray
    trachea: np.ndarray  # the trachea above the carina (empty without ``with_trachea``)
    masses: tuple[np.ndarray, ...]  # per mass: its voxels inside the lung's outline (the mask must hold them)

    @property
    def mass(self) -> np.ndarray:
        """All masses together."""
        return np.logical_or.reduce(self.masses) if self.masses else np.zeros(self.volume.shape, dtype=bool)

    @property
    def lungs(self) -> np.ndarray:
        """Both aerated lungs."""
        return self.left_lung | self.right_lung


def chest_phantom(
    *,
    shape: tuple[int, int, int] = (56, 128, 128),
    spacing_zyx_mm: tuple[float, float, float] = (5.0, 2.8, 2.8),
    wall_mm: float = 14.0,
    body_half_mm: tuple[float, float] = (160.0, 110.0),
    lung_half_height_mm: float = 110.0,
    lung_centre_z_mm: float = 0.0,
    lung_scale: tuple[float, float] = (1.0, 1.0),
    masses: tuple[Mass, ...] = (),
    with_trachea: bool = False,
    noise_hu: float = 20.0,
    seed: int = 0,
) -> ChestPhantom:
    """Build a chest phantom.

    Args:
        shape: (z, y, x) voxels; the volume is centred on the body axis and on z = 0.
        spacing_zyx_mm: voxel size.
        wall_mm: chest-wall thickness between the lungs and the skin (laterally, front and back).
        body_half_mm: body half-width (x) and half-depth (y); wider than half the field of view
            (``shape * spacing / 2``) truncates the body and the lungs at the image border.
        lung_half_height_mm: half the lungs' cranio-caudal extent; with ``lung_centre_z_mm`` it decides
            whether the lungs leave the scanned range at the first or last slice.
        lung_scale: (right, left) linear scale of each lung about its own centre: 0.63 gives 25 % of the
            volume (a lobectomy-like small lung), 0 removes the lung (pneumonectomy).
        masses: solid masses to insert (their voxels replace lung).
        with_trachea: draw an air-filled trachea and main bronchi.
        noise_hu: standard deviation of white noise.
    """
    nz, ny, nx = shape
    sz, sy, sx = spacing_zyx_mm
    z = ((np.arange(nz) - (nz - 1) / 2) * sz)[:, None, None]
    y = ((np.arange(ny) - (ny - 1) / 2) * sy)[None, :, None]
    x = ((np.arange(nx) - (nx - 1) / 2) * sx)[None, None, :]
    ax, ay = body_half_mm
    body = np.broadcast_to((x / ax) ** 2 + (y / ay) ** 2 < 1, shape)
    inner = (x / (ax - wall_mm)) ** 2 + (y / (ay - wall_mm)) ** 2 < 1  # inside the chest wall
    zc = z - lung_centre_z_mm
    h = lung_half_height_mm
    # The diaphragm: the lungs' floor, highest medially and in front (the domes and the central tendon
    # the heart rests on), lowest in the lateral and posterior recesses.
    floor = -h + 45.0 * np.clip(1 - np.abs(x) / 150.0, 0, 1) + 15.0 * np.clip(-y / 100.0, 0, 1)
    # Mediastinal organs: the heart left of the midline, flat on the diaphragm and touching the anterior
    # chest wall; the descending aorta, a vertical tube left of the spine, its arch and the left
    # subclavian artery rising from it; the spine behind.
    zf = -h + 46.5
    heart = (((x - 15) / 60.0) ** 2 + ((y + 40) / 60.0) ** 2 + ((zc - zf) / 75.0) ** 2 < 1) & (
        zc > floor - 10
    )
    z_arch = 0.45 * h
    aorta = np.broadcast_to(((x - 28) / 13.0) ** 2 + ((y - 52) / 13.0) ** 2 < 1, shape) & (zc < z_arch)
    t = np.clip(((x - 28) * -23 + (y - 52) * -67) / (23**2 + 67**2), 0, 1)  # arch: (28, 52) -> (5, -15)
    arch_d2 = (x - 28 + 23 * t) ** 2 + (y - 52 + 67 * t) ** 2 + (zc - z_arch) ** 2
    aorta = aorta | (arch_d2 < 13.0**2)
    aorta = aorta | (np.broadcast_to((x - 20) ** 2 + (y - 20) ** 2 < 36, shape) & (zc > z_arch))
    spine = ((x / 22.0) ** 2 + ((y - 78) / 22.0) ** 2 < 1) | ((np.abs(x) < 12) & (y > 60))
    organs = heart | aorta | np.broadcast_to(spine, shape)
    # Each lung lies lateral to every mediastinal organ of its row (z, y): the mediastinum is all that
    # lies between the lungs, so no lung slips between an organ and the midline.
    xs = np.broadcast_to(x, shape)
    organ_max = np.where(organs, xs, -np.inf).max(axis=2, keepdims=True)
    organ_min = np.where(organs, xs, np.inf).min(axis=2, keepdims=True)
    lungs = {}
    for side, sign, scale in (("right", -1.0, lung_scale[0]), ("left", 1.0, lung_scale[1])):
        cx = sign * 78.0
        if scale <= 0:
            lungs[side] = np.zeros(shape, dtype=bool)
            continue
        # An upright half-ellipsoid (the apex) on a cylinder cut by the floor, the chest wall laterally
        # and the mediastinum medially; ``scale`` shrinks it about its own centre.
        zs = zc / scale
        apex = ((x - cx) / (75.0 * scale)) ** 2 + (y / (100.0 * scale)) ** 2 + (
            np.maximum(zs, 0) / h
        ) ** 2 < 1
        lung = apex & (zs > floor) & inner & (sign * x > 14.0)
        medial = x > np.maximum(organ_max, 14.0) if sign > 0 else x < np.minimum(organ_min, -14.0)
        lungs[side] = lung & medial
    mass_masks = []
    solid = np.zeros(shape, dtype=bool)
    for m in masses:
        r = m.diameter_mm / 2
        sign = 1.0 if m.side == "left" else -1.0
        lung = lungs[m.side]
        zm = lung_centre_z_mm + m.z_mm
        k = int(np.argmin(np.abs(z.ravel() - zm)))
        xs = x.ravel()[np.nonzero(lung[k].any(axis=0))[0]]
        if m.site == "mediastinum":  # centred 0.3 r inside the mediastinal surface of that lung
            cx = sign * (np.min(np.abs(xs)) + 0.7 * r)
        else:  # against the lateral chest wall
            cx = sign * (np.max(np.abs(xs)) - 0.7 * r)
        ball = ((x - cx) ** 2 + y**2 + (z - zm) ** 2) < r * r
        mass_masks.append(ball & lung)
        solid |= ball & (lung | inner)
    mass_truth = np.logical_or.reduce(mass_masks) if mass_masks else np.zeros(shape, dtype=bool)
    trachea = np.zeros(shape, dtype=bool)
    airway = np.zeros(shape, dtype=bool)
    if with_trachea:  # down the midline to the carina, then a main bronchus into each lung
        z_carina = 0.3 * h
        trachea = np.broadcast_to(x**2 + (y - 5) ** 2 < 81, shape) & (zc > z_carina) & body
        airway = trachea.copy()
        for sign in (-1.0, 1.0):
            t = np.clip(((x * sign) * 45 + (z_carina - zc) * 35) / (45**2 + 35**2), 0, 1)
            d2 = (x - sign * 45 * t) ** 2 + (y - 5) ** 2 + (zc - z_carina + 35 * t) ** 2
            airway |= d2 < 36
    rng = np.random.default_rng(seed)
    hu = np.full(shape, AIR_HU, dtype=np.float32)
    hu[body] = TISSUE_HU
    hu[lungs["left"] | lungs["right"]] = LUNG_HU
    hu[solid] = TISSUE_HU
    hu[airway & body] = AIR_HU
    hu += rng.normal(0.0, noise_hu, shape).astype(np.float32)
    origin = (-(nx - 1) / 2 * sx, -(ny - 1) / 2 * sy, -(nz - 1) / 2 * sz)
    volume = CTVolume(hu, spacing_zyx_mm, origin)
    return ChestPhantom(
        volume,
        lungs["left"] & ~mass_truth,
        lungs["right"] & ~mass_truth,
        heart & body,
        aorta & body,
        trachea,
        tuple(mass_masks),
    )
