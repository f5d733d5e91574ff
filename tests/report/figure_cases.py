"""Seeded synthetic scenes for the report's figure goldens (no model, no real data: fast and exact).

A chest-like phantom with a 12 mm solid nodule in the patient's left lung (LPS +x) and a 6 mm one in the
right; the label map marks both.  ``render_all`` draws the key image, the coronal MIP and the 3-D PNG;
the goldens are these PNGs at half size (``golden_pixels``), compared by mean absolute pixel difference.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lungcad.preprocess.lung_mask import segment_lungs
from lungcad.report.figures import finding_views, mip, surface
from lungcad.report.shown import ShownFinding
from lungcad.types import CTVolume, Finding, LungRads, Texture

GOLDEN_DIR = Path(__file__).parent / "golden"
NAMES = ("key_image", "mip", "surface")
# Mean absolute difference (0-255 scale) a figure may drift: font rasterisation and anti-aliasing differ a
# little between matplotlib / FreeType builds; a moved contour, letter or marker costs far more (> 3).
TOLERANCE = 1.5


def phantom_scene(flip_x: bool = False) -> tuple[CTVolume, np.ndarray, list[ShownFinding]]:
    """The phantom (80 slices of 2.5 mm, 160 x 160 at 1.5 mm), its labels and two shown findings.

    ``flip_x`` stores the same anatomy with the x axis reversed (direction ``diag(-1, 1, 1)``), which
    must not change any figure.
    """
    rng = np.random.default_rng(7)
    shape, spacing = (80, 160, 160), (2.5, 1.5, 1.5)
    origin = np.array([-120.0, -120.0, -200.0])
    zz, yy, xx = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    wx, wy, wz = origin[0] + xx * spacing[2], origin[1] + yy * spacing[1], origin[2] + zz * spacing[0]
    hu = np.full(shape, -1000.0, np.float32)
    body = (wx / 110) ** 2 + (wy / 85) ** 2 < 1
    hu[body] = 30.0
    for cx in (-50.0, 50.0):
        lung = ((wx - cx) / 38) ** 2 + (wy / 62) ** 2 + ((wz + 100) / 90) ** 2 < 1
        hu[lung] = -860.0
    spine = ((wx / 14) ** 2 + ((wy - 65) / 14) ** 2) < 1
    hu[spine] = 700.0
    centres = [(55.0, -10.0, -90.0, 12.0), (-45.0, 20.0, -120.0, 6.0)]
    labels = np.zeros(shape, np.uint16)
    for n, (cx, cy, cz, d) in enumerate(centres, start=1):
        inside = (wx - cx) ** 2 + (wy - cy) ** 2 + (wz - cz) ** 2 <= (d / 2) ** 2
        hu[inside] = 20.0
        labels[inside] = n
    hu += rng.normal(0, 12, shape).astype(np.float32)
    direction = np.eye(3)
    if flip_x:
        hu, labels = hu[:, :, ::-1].copy(), labels[:, :, ::-1].copy()
        origin = origin.copy()
        origin[0] = origin[0] + (shape[2] - 1) * spacing[2]
        direction = np.diag([-1.0, 1.0, 1.0])
    volume = CTVolume(hu, spacing, tuple(origin), direction)  # type: ignore[arg-type]
    shown = [
        ShownFinding(
            1,
            0,
            Finding(
                (55.0, -10.0, -90.0), 12.0, probability=0.97, texture=Texture.SOLID, lung_rads=LungRads.C4A
            ),
        ),
        ShownFinding(
            2,
            1,
            Finding(
                (-45.0, 20.0, -120.0), 6.0, probability=0.71, texture=Texture.SOLID, lung_rads=LungRads.C3
            ),
        ),
    ]
    return volume, labels, shown


def render_all(out: Path, flip_x: bool = False) -> dict[str, Path]:
    volume, labels, shown = phantom_scene(flip_x)
    lungs = segment_lungs(volume)
    paths = {
        "key_image": finding_views.render_finding(shown[0], volume, labels, out / "key_image.png"),
        "mip": mip.render_mip(volume, lungs, shown, out / "mip.png"),
    }
    meshes = surface.nodule_meshes(labels, volume, shown)
    paths["surface"] = surface.render_png(surface.lung_mesh(lungs), meshes, shown, out / "surface.png")
    return paths


def golden_pixels(path: Path) -> np.ndarray:
    """A figure as RGB uint8 at half size (what the goldens store)."""
    from PIL import Image

    img = Image.open(path).convert("RGB")
    return np.asarray(img.resize((img.width // 2, img.height // 2), Image.Resampling.BOX))
