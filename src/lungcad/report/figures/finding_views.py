"""Per-finding key images: axial, coronal and sagittal crops through the nodule's centre.

One PNG per finding, rows of three panels (axial | coronal | sagittal):

* lung window (W 1500 / L -600) for every finding;
* mediastinal window (W 400 / L 40) as well for solid and calcified findings, where the soft-tissue and
  calcium content is what the reader judges;
* Grad-CAM of the centre-heatmap head when an explanation is given (``--explain``).

Each panel has the finding's segmentation contour (yellow; other findings in blue), a 10 mm scale bar,
orientation letters, and the plane's world position; the title gives the finding number, diameter, type
and Lung-RADS category.  The window's side is 3 x the diameter, at least 40 mm, so small nodules keep
their surroundings and large ones fit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lungcad.report.figures.planes import Plane, PlaneView, sample_plane
from lungcad.report.figures.style import (
    CONTOUR_COLOUR,
    LUNG_WINDOW,
    MEDIASTINAL_WINDOW,
    OTHER_CONTOUR_COLOUR,
    draw_contour,
    new_figure,
    outlined_text,
    save_figure,
    show_plane,
)
from lungcad.report.shown import ShownFinding
from lungcad.types import CTVolume, Grid, Texture

PANEL_PIXELS = 160
PLANES = (Plane.AXIAL, Plane.CORONAL, Plane.SAGITTAL)


def finding_title(s: ShownFinding) -> str:
    """``"Nodule 1 - 23.9 mm solid - Lung-RADS 4B - p 1.00"``."""
    f = s.finding
    kind = f.texture.value if f.texture else "type unknown"
    rads = f"Lung-RADS {f.lung_rads.value}" if f.lung_rads else "Lung-RADS -"
    return f"{s.label} - {f.diameter_mm:.1f} mm {kind} - {rads} - p {f.probability:.2f}"


def window_half_mm(diameter_mm: float) -> float:
    """Half the crop side: 1.5 x the diameter, at least 20 mm (a 40 mm window)."""
    return max(20.0, 1.5 * float(diameter_mm))


def views_of(s: ShownFinding) -> list[PlaneView]:
    half = window_half_mm(s.finding.diameter_mm)
    centre = tuple(float(v) for v in s.finding.center_xyz_mm)
    return [PlaneView(p, centre, half, 2 * half / PANEL_PIXELS) for p in PLANES]  # type: ignore[arg-type]


def render_finding(
    s: ShownFinding,
    volume: CTVolume,
    labels: np.ndarray,
    path: Path,
    cam: tuple[np.ndarray, Grid] | None = None,
) -> Path:
    """Write the key-image PNG of one finding.

    Args:
        s: the finding (its ``number`` is its label in ``labels``).
        volume: the input scan.
        labels: the report's label map on ``volume``'s grid (uint16).
        path: PNG to write.
        cam: Grad-CAM map in [0, 1] and the grid it lies on (a patch of the preprocessed grid), or ``None``.
    """
    views = views_of(s)
    # outside the scanned volume is NaN, drawn black: never mistaken for air (-1000 HU shows grey)
    images = [sample_plane(volume.hu, volume.grid, v, fill=np.nan) for v in views]
    planes = [sample_plane(labels, volume.grid, v, order=0, fill=0) for v in views]
    rows: list[tuple[str, tuple[float, float]]] = [("lung window", LUNG_WINDOW)]
    if s.finding.texture in (Texture.SOLID, Texture.CALCIFIED, None):
        rows.append(("mediastinal window", MEDIASTINAL_WINDOW))
    cams = None
    if cam is not None:
        cams = [sample_plane(cam[0], cam[1], v, order=1, fill=0.0) for v in views]
        rows.append(("Grad-CAM (centre heatmap)", LUNG_WINDOW))
    panel_in = 2.3
    fig = new_figure(3 * panel_in, len(rows) * panel_in + 0.35)
    fig.subplots_adjust(
        left=0.005,
        right=0.995,
        bottom=0.005,
        top=1 - 0.35 / (len(rows) * panel_in + 0.35),
        wspace=0.02,
        hspace=0.02,
    )
    fig.suptitle(finding_title(s), color="white", fontsize=10, y=0.995, va="top")
    axes = fig.subplots(len(rows), 3, squeeze=False)
    for r, (row_name, window) in enumerate(rows):
        for c, view in enumerate(views):
            ax = axes[r][c]
            side = show_plane(ax, images[c], view, window)
            if cams is not None and row_name.startswith("Grad-CAM"):
                heat = np.ma.masked_less(cams[c], 0.15)
                ax.imshow(
                    heat,
                    cmap="jet",
                    vmin=0,
                    vmax=1,
                    alpha=0.45,
                    extent=(0, side, side, 0),
                    interpolation="bilinear",
                )
            draw_contour(ax, (planes[c] > 0) & (planes[c] != s.number), view, OTHER_CONTOUR_COLOUR, 0.8)
            draw_contour(ax, planes[c] == s.number, view, CONTOUR_COLOUR)
            if c == 0:
                outlined_text(ax, side * 0.03, side * 0.1, row_name, ha="left", va="top", fontsize=7)
    return save_figure(fig, path)
