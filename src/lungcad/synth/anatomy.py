"""The patient model: torso, chest wall, thoracic cavity, lungs, mediastinum, heart, spine, diaphragm.

Everything is an implicit function of body coordinates (mm; x to the patient's left, y posterior, z up,
z = 0 at the lung apex, ``u = -z / H`` runs 0 at the apex to 1 at the lowest lung base).  Each function
broadcasts, so the same code answers point queries ``(N,)`` (vessel territories, nodule placement) and
renders slabs ``(nz, ny, nx)``.

Cross-sections are nested "outlines": an ellipse anteriorly and a flatter quartic posteriorly (a patient
lying on the table), ``g = (x/a)^2 + (y/b_ant)^2`` for y < 0 and ``(x/a)^2 + (y/b_post)^4`` behind.  Layers
(skin-fat, muscle, cavity) are outlines shrunk by per-direction thicknesses, which reproduces the thick
posterior and thin lateral chest wall.  Distances use the normalised form
``(sqrt(g) - 1) 2 sqrt(g) / |grad g|``, exact for circles and within a few per cent near any ellipse
boundary (where nodules are placed).

Lungs are the cavity minus the mediastinum (an ellipse that widens at the hila), the heart (a rotated
ellipsoid on the left diaphragm), the paravertebral spine, above the diaphragm domes (paraboloids, the
right ~2 cm higher) and below a paraboloid apex per lung.  The lung "signed distance" is the max of those
constraints: negative inside, in mm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RIGHT, LEFT = 1, 2  # lung labels (patient right = -x in LPS)

# Non-contrast tissue HU (typical adult values; contrast raises blood, heart, liver, spleen).
HU_AIR = -1000.0
HU_FAT = -100.0
HU_MUSCLE = 45.0
HU_BLOOD = 40.0
HU_LIVER = 58.0
HU_SPLEEN = 48.0
HU_DISC = 85.0
HU_CSF = 15.0


def smoothstep(v: np.ndarray | float, lo: float, hi: float) -> np.ndarray:
    t = np.clip((np.asarray(v, dtype=np.float32) - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def bump(v: np.ndarray | float, centre: float, width: float) -> np.ndarray:
    d = (np.asarray(v, dtype=np.float32) - centre) / width
    return np.exp(-0.5 * d * d)


def outline_g(
    x: np.ndarray, y: np.ndarray, a: np.ndarray, b_ant: np.ndarray, b_post: np.ndarray
) -> np.ndarray:
    """Implicit outline value ``g`` (< 1 inside) of the ellipse-front / quartic-back cross-section."""
    xa = x / a
    yb = np.where(y < 0, y / b_ant, y / b_post)
    y2 = yb * yb
    return xa * xa + np.where(y < 0, y2, y2 * y2)


def outline_sdf(
    x: np.ndarray, y: np.ndarray, a: np.ndarray, b_ant: np.ndarray, b_post: np.ndarray
) -> np.ndarray:
    """Approximate signed distance (mm, negative inside) to the outline (see module docstring)."""
    xa = x / a
    post = y >= 0
    b = np.where(post, b_post, b_ant)
    yb = y / b
    y2 = yb * yb
    g = xa * xa + np.where(post, y2 * y2, y2)
    gx = 2.0 * xa / a
    gy = np.where(post, 4.0 * y2 * yb, 2.0 * yb) / b
    sg = np.sqrt(g)
    return (sg - 1.0) * 2.0 * sg / np.maximum(np.sqrt(gx * gx + gy * gy), 1e-6)


def ellipse_sdf(x: np.ndarray, y: np.ndarray, cx: float, cy: float, ax: float, ay: float) -> np.ndarray:
    """Approximate signed distance (mm) to an axis-aligned ellipse."""
    px, py = (x - cx) / ax, (y - cy) / ay
    g = px * px + py * py
    sg = np.sqrt(g)
    grad = 2.0 * np.sqrt((px / ax) ** 2 + (py / ay) ** 2)
    return (sg - 1.0) * 2.0 * sg / np.maximum(grad, 1e-6)


@dataclass(frozen=True)
class Anatomy:
    """One sampled patient (lengths in mm, body frame).  Sample with ``sample_anatomy``."""

    lung_height: float  # H: apex (z = 0) to the lowest base (z = -H)
    half_width: float  # torso half-width at mid-chest
    half_depth_ant: float  # centre to anterior skin
    half_depth_post: float  # centre to posterior skin
    fat_mm: tuple[float, float, float]  # subcutaneous fat: lateral, anterior, posterior
    muscle_mm: tuple[float, float, float]  # chest wall incl. ribs: lateral, anterior, posterior
    dome_mm: tuple[float, float]  # right, left diaphragm dome height above z = -H
    heart_centre: tuple[float, float, float]
    heart_axes: tuple[float, float, float]
    heart_angle_rad: float
    spine_radius_mm: float
    vertebra_height_mm: float
    vertebra_phase_mm: float
    lung_hu: float  # parenchyma at the anterior, non-dependent lung
    lung_gradient_hu: float  # anterior -> posterior increase (gravity)
    contrast: bool
    blood_hu: float  # arteries, heart, aorta
    venous_hu: float  # pulmonary veins (less enhanced than arteries in the usual arterial phase)
    bone_hu: float  # cancellous bone; cortex is ~2.5x
    fissure_tilt: tuple[float, float]  # right, left major fissure slope perturbation
    stomach_gas: bool
    female: bool

    # --- level-dependent shape parameters (all broadcast over z) ---

    def level(self, z: np.ndarray) -> np.ndarray:
        """``u = -z / H``: 0 at the apex, 1 at the lowest base (float32)."""
        return (-np.asarray(z, dtype=np.float32) / np.float32(self.lung_height)).astype(np.float32)

    def body_axes(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Skin outline half-axes ``(a, b_ant, b_post)`` at body z."""
        u = self.level(z)
        grow = smoothstep(u, -0.2, 0.45)
        belly = smoothstep(u, 0.8, 1.4)
        a = self.half_width * (0.86 + 0.14 * grow + 0.03 * belly)
        b_ant = self.half_depth_ant * (0.84 + 0.16 * grow + 0.06 * belly)
        b_post = self.half_depth_post * (0.95 + 0.05 * grow)
        return a, b_ant, b_post

    def muscle_axes(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Outer boundary of the muscle layer (inner boundary of subcutaneous fat)."""
        a, b_ant, b_post = self.body_axes(z)
        extra = 1.0 + 0.6 * smoothstep(self.level(z), 0.75, 1.3)  # more fat over the abdomen
        fl, fa, fp = self.fat_mm
        return a - fl * extra, b_ant - fa * extra, b_post - fp

    def cavity_axes(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The thoracic cavity (parietal pleura): muscle outline shrunk by the chest-wall thickness."""
        a, b_ant, b_post = self.muscle_axes(z)
        u = self.level(z)
        ml, ma, mp = self.muscle_mm
        pectoral = 1.0 + 0.5 * (1.0 - smoothstep(u, 0.1, 0.5))  # pectoral muscles thicken the upper front
        return a - ml, b_ant - ma * pectoral, b_post - mp

    def mediastinum(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Mediastinal ellipse ``(cx, cy, half_width, half_depth)``: narrow above, widest at the hila."""
        u = self.level(z)
        _, b_ant, b_post = self.cavity_axes(z)
        half_w = 22.0 + 24.0 * bump(u, 0.36, 0.1) + 8.0 * smoothstep(u, 0.4, 0.8)
        cx = 4.0 + 8.0 * bump(u, 0.3, 0.12)
        depth = 0.5 * (b_ant + b_post)
        cy = 0.5 * (b_post - b_ant) - 0.05 * depth
        return cx, cy, half_w, 1.02 * depth

    def spine_y(self, z: np.ndarray) -> np.ndarray:
        """Body y of the vertebral body centre (just in front of the back muscles)."""
        _, _, b_post = self.body_axes(z)
        return b_post - self.muscle_mm[2] - self.fat_mm[2] - 0.9 * self.spine_radius_mm - 22.0

    def spine_r(self, z: np.ndarray) -> np.ndarray:
        return self.spine_radius_mm * (0.8 + 0.3 * np.clip(self.level(z), 0.0, 1.3))

    def dome_z(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Diaphragm surface height and its slope magnitude below (x, y) (both broadcast like x)."""
        a, b_ant, b_post = self.cavity_axes(z)
        side_right = x < 0
        h = np.where(side_right, self.dome_mm[0], self.dome_mm[1])
        xd = np.where(side_right, -0.45, 0.5) * a
        rx, ry = 0.75 * a, 0.85 * b_post
        yd = -0.15 * b_ant
        px, py = (x - xd) / rx, (y - yd) / ry
        r2 = px * px + py * py
        inside = r2 < 1
        zd = -self.lung_height + h * np.where(inside, 1.0 - r2, 0.0)
        slope = np.where(inside, 2.0 * h * np.sqrt((px / rx) ** 2 + (py / ry) ** 2), 0.0)
        return zd, slope

    def heart_overlaps(self, zmin: float, zmax: float) -> bool:
        """Whether body z in ``[zmin, zmax]`` can meet the heart (skips its evaluation elsewhere)."""
        reach = max(self.heart_axes) + 2.0
        return zmin < self.heart_centre[2] + reach and zmax > self.heart_centre[2] - reach

    def dome_top_z(self) -> float:
        """Highest point of either diaphragm dome."""
        return -self.lung_height + max(self.dome_mm)

    def heart_sdf(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Approximate signed distance (mm) to the heart ellipsoid."""
        cx, cy, cz = self.heart_centre
        ax, ay, az = self.heart_axes
        c, s = np.cos(self.heart_angle_rad), np.sin(self.heart_angle_rad)
        dx, dy = x - cx, y - cy
        qx, qy, qz = (c * dx + s * dy) / ax, (-s * dx + c * dy) / ay, (z - cz) / az
        g = qx * qx + qy * qy + qz * qz
        sg = np.sqrt(g)
        grad = 2.0 * np.sqrt((qx / ax) ** 2 + (qy / ay) ** 2 + (qz / az) ** 2)
        return (sg - 1.0) * 2.0 * sg / np.maximum(grad, 1e-6)

    def lung_sdf(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Approximate signed distance to the lung surface (mm, < 0 inside) and the side label.

        Args:
            x, y, z: body coordinates; any broadcastable shapes.

        Returns:
            ``(sdf, side)``: float32 distance and uint8 ``RIGHT`` / ``LEFT`` (which lung the point is
            nearest to, by the mediastinal midline).
        """
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.float32)
        z = np.asarray(z, dtype=np.float32)
        a, b_ant, b_post = self.cavity_axes(z)
        sdf = outline_sdf(x, y, a, b_ant, b_post)
        mcx, mcy, mw, md = self.mediastinum(z)
        sdf = np.maximum(sdf, -ellipse_sdf(x, y, mcx, mcy, mw, md))
        zmin, zmax = float(z.min()), float(z.max())
        if self.heart_overlaps(zmin, zmax):
            sdf = np.maximum(sdf, -self.heart_sdf(x, y, z) - 2.0)
        # Paravertebral: lungs wrap the spine but stay ~6 mm from the vertebral body.
        sy = self.spine_y(z)
        sr = self.spine_r(z)
        spine_d = np.sqrt(x * x + (y - sy) ** 2) - (sr + 6.0)
        sdf = np.maximum(sdf, -spine_d)
        # Behind the vertebral body (canal, arch, paraspinal muscles) is never lung either.
        sdf = np.maximum(sdf, np.minimum(sr + 10.0 - np.abs(x), y - sy))
        if zmin < self.dome_top_z() + 1.0:
            zd, slope = self.dome_z(x, y, z)
            sdf = np.maximum(sdf, (zd - z) / np.sqrt(1.0 + slope * slope))
        side = np.where(x < mcx, RIGHT, LEFT).astype(np.uint8)
        if zmax > -0.22 * self.lung_height:
            # Apex: a paraboloid cap per lung, r_ap^2 <= u / 0.22, above which the lungs end at z = 0.
            u = self.level(z)
            sgn = np.where(side == RIGHT, -1.0, 1.0)
            ax_ap, ay_ap = 0.5 * a, 0.75 * b_post
            px, py = (x - sgn * 0.42 * a) / ax_ap, (y - 0.2 * b_post) / ay_ap
            r_ap = np.sqrt(px * px + py * py)
            cap = (r_ap - np.sqrt(np.clip(u / 0.22, 0.0, None))) * 0.5 * (ax_ap + ay_ap)
            sdf = np.maximum(sdf, np.where(u < 0.22, cap, -1e3))
        sdf = np.maximum(sdf, z)
        return sdf.astype(np.float32), side

    def fissure_distance(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Distance (mm) to the nearest fissure of the lung the point is in (major both sides, minor right).

        The major (oblique) fissure runs from high posteriorly (u ~ 0.28 at the back) to low anteriorly
        (u ~ 0.95); the right minor fissure is horizontal at u ~ 0.45, in front of the hilum.
        """
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.float32)
        z = np.asarray(z, dtype=np.float32)
        _, b_ant, b_post = self.cavity_axes(z)
        mcx = self.mediastinum(z)[0]
        right = x < mcx
        tilt = np.where(right, self.fissure_tilt[0], self.fissure_tilt[1])
        h = self.lung_height
        slope = 0.67 * h / (1.6 * 0.5 * (b_ant + b_post)) * (1.0 + tilt)
        # Laterally the fissure lies further back: on an axial slice it runs obliquely from the hilum
        # out to the posterolateral chest wall, not straight across the lung.
        z_major = -0.28 * h + slope * (y - 0.9 * b_post - 0.45 * np.abs(x - mcx))
        d_major = np.abs(z - z_major) / np.sqrt(1.0 + slope * slope)
        minor = np.where(right & (y < 0.1 * b_post) & (z > z_major), np.abs(z + 0.45 * h), np.inf)
        return np.minimum(d_major, minor).astype(np.float32)


def sample_anatomy(
    rng: np.random.Generator, body_width_mm: float, lung_height_mm: float, contrast: bool
) -> Anatomy:
    """Draw one patient.  Widths and heights come from the configured ranges; the rest scales with them."""
    a = body_width_mm / 2
    blood = rng.uniform(150, 320) if contrast else rng.uniform(35, 50)
    depth = a * rng.uniform(0.66, 0.8)  # half AP diameter: AP / lateral ratio of adult chests
    h = lung_height_mm
    fat_scale = rng.uniform(0.3, 1.6)
    fat = tuple(float(v) * fat_scale for v in (rng.uniform(10, 22), rng.uniform(8, 18), rng.uniform(8, 16)))
    muscle = (rng.uniform(9, 14), rng.uniform(8, 13), rng.uniform(14, 20))
    heart_axes = (a * rng.uniform(0.34, 0.4), depth * rng.uniform(0.36, 0.42), h * rng.uniform(0.19, 0.23))
    heart_centre = (a * rng.uniform(0.1, 0.17), -depth * rng.uniform(0.22, 0.3), -h * rng.uniform(0.6, 0.68))
    return Anatomy(
        lung_height=h,
        half_width=a,
        half_depth_ant=depth * 1.04,
        half_depth_post=depth * 0.96,
        fat_mm=fat,  # type: ignore[arg-type]
        muscle_mm=muscle,  # type: ignore[arg-type]
        dome_mm=(h * rng.uniform(0.28, 0.36), h * rng.uniform(0.2, 0.28)),
        heart_centre=heart_centre,  # type: ignore[arg-type]
        heart_axes=heart_axes,  # type: ignore[arg-type]
        heart_angle_rad=float(np.deg2rad(rng.uniform(-35, -20))),
        spine_radius_mm=rng.uniform(15, 19),
        vertebra_height_mm=rng.uniform(24, 30),
        vertebra_phase_mm=rng.uniform(0, 30),
        lung_hu=rng.uniform(-915, -865),
        lung_gradient_hu=rng.uniform(15, 55),
        contrast=contrast,
        blood_hu=blood,
        venous_hu=rng.uniform(40.0, 0.6 * blood) if contrast else blood,
        bone_hu=rng.uniform(180, 300),
        fissure_tilt=(rng.uniform(-0.15, 0.15), rng.uniform(-0.15, 0.15)),
        stomach_gas=bool(rng.random() < 0.5),
        female=bool(rng.random() < 0.5),
    )
