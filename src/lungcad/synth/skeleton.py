"""Ribs, costal cartilages and clavicles as capsule chains (drawn at full resolution).

Ribs matter to a nodule detector: they run in the chest wall a few millimetres from the pleura, and a rib
cut obliquely is a bright oval right next to juxtapleural nodules.  Each rib starts at the costovertebral
joint beside the vertebral body, follows the cavity outline ``6 mm + radius`` outside the pleura (so it
never enters the lung), and descends anteriorly (a rib's front end lies 3-6 cm below its head).  Ribs 1-7
end in costal cartilage reaching the sternum; 8-10 in cartilage along the costal margin; 11-12 float.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lungcad.synth.anatomy import Anatomy


@dataclass(frozen=True)
class CapsuleSet:
    """Capsule chains in body mm: segment ends ``a``, ``b`` ``(N, 3)`` and radii ``ra``, ``rb`` ``(N,)``."""

    a: np.ndarray
    b: np.ndarray
    ra: np.ndarray
    rb: np.ndarray

    @staticmethod
    def from_polylines(
        lines: list[np.ndarray], radii: list[np.ndarray], max_ratio: float = 3.0
    ) -> CapsuleSet:
        """Segments between consecutive points of each polyline ``(n_i, 3)`` with radii ``(n_i,)``.

        Segments longer than ``max_ratio`` x radius are cut into equal pieces: a capsule's bounding box
        grows with the cube of its length when it runs obliquely, so short pieces rasterise much faster.
        """
        lines, radii = (
            zip(*(_refine(p, r, max_ratio) for p, r in zip(lines, radii, strict=True)), strict=True)
            if lines
            else ((), ())
        )
        if not lines:
            empty = np.zeros((0, 3))
            return CapsuleSet(empty, empty, np.zeros(0), np.zeros(0))
        a = np.concatenate([p[:-1] for p in lines])
        b = np.concatenate([p[1:] for p in lines])
        ra = np.concatenate([r[:-1] for r in radii])
        rb = np.concatenate([r[1:] for r in radii])
        return CapsuleSet(a, b, ra, rb)

    def scaled(self, factor: float) -> CapsuleSet:
        return CapsuleSet(self.a, self.b, self.ra * factor, self.rb * factor)

    def __len__(self) -> int:
        return len(self.a)


def _refine(points: np.ndarray, radii: np.ndarray, max_ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Insert points so no segment is longer than ``max_ratio`` x its mean radius."""
    out_p, out_r = [points[:1]], [radii[:1]]
    for i in range(len(points) - 1):
        seg = np.linalg.norm(points[i + 1] - points[i])
        n = max(1, int(np.ceil(seg / (max_ratio * max(0.5 * (radii[i] + radii[i + 1]), 0.5)))))
        t = np.linspace(0, 1, n + 1)[1:]
        out_p.append(points[i] + t[:, None] * (points[i + 1] - points[i]))
        out_r.append(radii[i] + t * (radii[i + 1] - radii[i]))
    return np.concatenate(out_p), np.concatenate(out_r)


def outline_point(anat: Anatomy, phi: np.ndarray, z: np.ndarray, offset: float, side: float) -> np.ndarray:
    """Points ``offset`` mm outside the cavity outline at angle ``phi`` (0 = straight back, pi = front).

    Solves ``g(t d) = 1`` along the direction ``d = (side sin phi, cos phi)``: ``t = 1 / |d / axes|`` in
    front (ellipse) and ``t^2 = (-A + sqrt(A^2 + 4B)) / 2B`` behind (``A t^2 + B t^4 = 1``, the quartic).
    """
    a, b_ant, b_post = anat.cavity_axes(z)
    dx, dy = side * np.sin(phi), np.cos(phi)
    big_a = (dx / a) ** 2
    t_front = 1.0 / np.sqrt(big_a + (dy / b_ant) ** 2)
    big_b = np.maximum((dy / b_post) ** 4, 1e-12)
    t_back = np.sqrt((-big_a + np.sqrt(big_a**2 + 4 * big_b)) / (2 * big_b))
    t = np.where(dy < 0, t_front, t_back) + offset
    return np.stack([t * dx, t * dy, np.asarray(z, dtype=np.float64) + 0 * t], axis=-1)


def ribs(anat: Anatomy, rng: np.random.Generator) -> tuple[CapsuleSet, CapsuleSet]:
    """Bony ribs and their costal cartilages, both sides: ``(bone, cartilage)`` capsule sets (body mm)."""
    h = anat.lung_height
    bone_lines, bone_r, cart_lines, cart_r = [], [], [], []
    for k in range(1, 13):
        head_z = 18.0 - (k - 1) * (h + 30.0) / 11.0 + rng.normal(0, 2.0)
        drop = 50.0 + 4.0 * k + rng.uniform(-6, 6)
        radius = 3.2 + 0.12 * min(k, 8) + rng.uniform(-0.2, 0.2)
        end = {True: 0.86, False: 0.8}[k <= 7] if k <= 10 else 0.45 + 0.05 * (k - 11)
        for side in (-1.0, 1.0):
            phi = np.linspace(0.1 * np.pi, end * np.pi, 14 + k)
            z = head_z - drop * (phi / np.pi) ** 1.4
            pts = outline_point(anat, phi, z, 6.0 + radius, side)
            # Costovertebral joint: the rib head beside the vertebral body, at the transverse process.
            sy, sr = float(anat.spine_y(np.float32(head_z))), float(anat.spine_r(np.float32(head_z)))
            head = np.array([[side * (sr + 5.0), sy + 0.6 * sr, head_z + 2.0]])
            line = np.concatenate([head, pts])
            bone_lines.append(line)
            bone_r.append(np.full(len(line), radius))
            if k <= 10:
                # Cartilage: on toward the sternum edge (1-7) or up along the costal margin (8-10).
                phi_c = np.linspace(end * np.pi, (0.97 if k <= 7 else 0.9) * np.pi, 6)
                zc = z[-1] + (np.linspace(0, 1, 6) ** 1.5) * (6.0 if k <= 7 else 25.0)
                cpts = outline_point(anat, phi_c, zc, 6.0 + radius, side)
                cart_lines.append(np.concatenate([line[-1:], cpts[1:]]))
                cart_r.append(np.full(6, radius * 0.95))
    return CapsuleSet.from_polylines(bone_lines, bone_r), CapsuleSet.from_polylines(cart_lines, cart_r)


def clavicles(anat: Anatomy, rng: np.random.Generator) -> CapsuleSet:
    """S-shaped clavicles from the manubrium out to the shoulders, above the lung apices."""
    lines, radii = [], []
    for side in (-1.0, 1.0):
        t = np.linspace(0.0, 1.0, 9)
        a = anat.half_width
        x = side * (22.0 + t * 0.62 * a)
        y = -anat.half_depth_ant * 0.62 + 18.0 * np.sin(np.pi * t) * 0.5 + 40.0 * t**2
        z = 22.0 + 18.0 * t + rng.uniform(-5, 5)
        lines.append(np.stack([x, y, z], axis=-1))
        radii.append(np.full(9, 6.0))
    return CapsuleSet.from_polylines(lines, radii)
