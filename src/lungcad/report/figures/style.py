"""What every report figure shares: CT windows, colours, orientation letters, the scale bar, saving.

Figures are drawn with matplotlib's object API (``Figure`` + Agg canvas), never ``pyplot``: no global figure
state, nothing to close, and safe in a service worker thread.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import matplotlib.patheffects as pe
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lungcad.fileio import atomic_write
from lungcad.report.figures.planes import LETTERS, PlaneView
from lungcad.types import LungRads

# (low, high) HU of the display windows: lung W 1500 / L -600, mediastinum W 400 / L 40
LUNG_WINDOW = (-1350.0, 150.0)
MEDIASTINAL_WINDOW = (-160.0, 240.0)
SCALE_BAR_MM = 10.0
CONTOUR_COLOUR = "#ffd21f"
OTHER_CONTOUR_COLOUR = "#35c3ff"
_OUTLINE = [pe.withStroke(linewidth=2.2, foreground="black")]

# Lung-RADS colours: the urgency scale reads from green (benign) to red (very suspicious)
RADS_COLOURS: dict[LungRads | None, str] = {
    LungRads.C1: "#2e9d4a",
    LungRads.C2: "#7cb342",
    LungRads.C3: "#f2b705",
    LungRads.C4A: "#f57c00",
    LungRads.C4B: "#d32f2f",
    LungRads.C4X: "#8e0000",
    None: "#9e9e9e",
}


def new_figure(width_in: float, height_in: float) -> Figure:
    fig = Figure(figsize=(width_in, height_in), facecolor="black")
    return fig


def outlined_text(ax: Axes, x: float, y: float, text: str, **kwargs: object) -> None:
    """White text with a black outline, readable on any CT grey."""
    kwargs.setdefault("color", "white")
    kwargs.setdefault("fontsize", 8)
    ax.text(x, y, text, path_effects=_OUTLINE, **kwargs)  # type: ignore[arg-type]


def show_plane(ax: Axes, image: np.ndarray, view: PlaneView, window: tuple[float, float]) -> float:
    """Draw a sampled plane with millimetre axes, letters and a 10 mm scale bar; returns the side in mm.

    The axes run in mm from the window's top-left corner, so the scale bar and contours are drawn in mm
    and are true to size whatever the display pixel size.
    """
    side = view.size * view.pixel_mm
    cmap = matplotlib.colormaps["gray"].with_extremes(bad="black")
    ax.imshow(
        np.ma.masked_invalid(image),
        cmap=cmap,
        vmin=window[0],
        vmax=window[1],
        extent=(0, side, side, 0),
        interpolation="bilinear",
    )
    ax.set_xlim(0, side)
    ax.set_ylim(side, 0)
    ax.set_axis_off()
    left, right, top, bottom = LETTERS[view.plane]
    m = side * 0.03
    outlined_text(ax, m, side / 2, left, ha="left", va="center", fontsize=9, fontweight="bold")
    outlined_text(ax, side - m, side / 2, right, ha="right", va="center", fontsize=9, fontweight="bold")
    outlined_text(ax, side / 2, m, top, ha="center", va="top", fontsize=9, fontweight="bold")
    outlined_text(ax, side / 2, side - m, bottom, ha="center", va="bottom", fontsize=9, fontweight="bold")
    # scale bar: bottom right, exactly SCALE_BAR_MM long in the axes' mm units
    x1, y = side - 2 * m, side - 2.2 * m
    ax.plot(
        [x1 - SCALE_BAR_MM, x1], [y, y], color="white", lw=2.5, solid_capstyle="butt", path_effects=_OUTLINE
    )
    outlined_text(
        ax, x1 - SCALE_BAR_MM / 2, y - m * 0.6, f"{SCALE_BAR_MM:g} mm", ha="center", va="bottom", fontsize=7
    )
    outlined_text(
        ax, m, side - m, f"{view.plane.value} {view.position_caption()}", ha="left", va="bottom", fontsize=7
    )
    return side


def draw_contour(ax: Axes, mask: np.ndarray, view: PlaneView, colour: str, width: float = 1.2) -> None:
    """Outline of a boolean plane mask (pixel centres at +0.5 px), in the axes' mm units."""
    if not mask.any():
        return
    c = (np.arange(view.size) + 0.5) * view.pixel_mm
    ax.contour(c, c, mask.astype(np.float32), levels=[0.5], colors=[colour], linewidths=width)


def save_figure(fig: Figure, path: Path, dpi: int = 110) -> Path:
    """Write ``fig`` to ``path`` as an opaque RGB PNG, atomically.

    matplotlib writes RGBA at zlib level 6; WeasyPrint then splits every RGBA image into a colour and an
    alpha stream and encodes both again.  Figures are opaque, so dropping the alpha channel and writing
    at level 1 (PNG is lossless at every level: same pixels) took the figures' PNG encoding from 0.32 s to
    about a third of that for LIDC-IDRI-0001's report, and WeasyPrint encodes one stream per image.
    """
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi, facecolor=fig.get_facecolor(), format="png", pil_kwargs={"compress_level": 0})
    buf.seek(0)
    with Image.open(buf) as im:
        rgb = im.convert("RGB")
    return atomic_write(path, lambda tmp: rgb.save(tmp, format="PNG", compress_level=1))
