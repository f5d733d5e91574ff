"""Write ``docs/real_hybrid_synth.png``: real vs hybrid vs synthetic nodules at one lung window and scale.

Crops (axial, 48 mm square, W 1500 / L -600): the real 23 mm nodule of LIDC-IDRI-0001 (slice through
LUNA16's (56.21, 86.34, -115.87) mm); hybrid nodules inserted into LIDC-IDRI-0002 (solid, ground glass,
juxtavascular, perihilar); and phantom nodules of a ``lungcad synth`` scan (solid, ground glass,
juxtavascular).  Under each source: the interquartile range of its parenchyma HU (lung-mask voxels below
-500 HU).  Needs ``../shared/data`` (or ``$LUNGCAD_REAL_DATA``).

    .venv/bin/python scripts/make_hybrid_figure.py [--out docs/real_hybrid_synth.png]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

from lungcad.config import SynthConfig  # noqa: E402
from lungcad.io import load_ct  # noqa: E402
from lungcad.preprocess.lung_mask import segment_lungs  # noqa: E402
from lungcad.synth import generate_scan  # noqa: E402
from lungcad.synth.hybrid_host import analyse_host  # noqa: E402
from lungcad.synth.hybrid_render import insert_lesion  # noqa: E402
from lungcad.synth.hybrid_sites import SiteChooser, SiteKind  # noqa: E402
from lungcad.synth.nodules import NoduleLocation, NoduleShape, NoduleSpec, _shape_parts, _texture_hu  # noqa: E402
from lungcad.types import CTVolume, Texture  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
HALF_MM = 24.0
PIX_MM = 0.25  # display grid
NODULE_0001 = (56.21, 86.34, -115.87)


def crop(vol: CTVolume, hu: np.ndarray, centre_xyz: np.ndarray) -> np.ndarray:
    """The axial slice through ``centre_xyz`` resampled to a 48 mm square at 0.25 mm (linear)."""
    c = vol.world_to_voxel(np.asarray(centre_xyz, dtype=np.float64))
    k = int(round(c[0]))
    sy, sx = vol.spacing_zyx_mm[1:]
    t = np.arange(-HALF_MM, HALF_MM, PIX_MM)
    yy, xx = np.meshgrid(c[1] + t / sy, c[2] + t / sx, indexing="ij")
    return ndimage.map_coordinates(hu[k], [yy, xx], order=1, mode="nearest")


def parenchyma_iqr(vol: CTVolume, hu: np.ndarray) -> float:
    lung = segment_lungs(vol.with_array(hu)).full_mask()
    vals = hu[lung & (hu < -500)]
    q1, q3 = np.percentile(vals, [25, 75])
    return float(q3 - q1)


def hybrid_crops(series: Path) -> tuple[list[tuple[str, np.ndarray]], float]:
    host = analyse_host(series, seed=0)
    rng = np.random.default_rng(2026)
    chooser = SiteChooser(host, rng)
    hu = host.volume.hu.copy()
    label = np.zeros(hu.shape, dtype=np.uint8)
    wanted = [
        ("solid 10 mm", Texture.SOLID, NoduleShape.LOBULATED, SiteKind.ISOLATED, 10.0),
        ("ground glass 12 mm", Texture.GROUND_GLASS, NoduleShape.ELLIPSOIDAL, SiteKind.ISOLATED, 12.0),
        ("juxtavascular 8 mm", Texture.SOLID, NoduleShape.SPHERICAL, SiteKind.JUXTAVASCULAR, 8.0),
        ("perihilar 12 mm", Texture.SOLID, NoduleShape.LOBULATED, SiteKind.PERIHILAR, 12.0),
    ]
    out = []
    for i, (name, tex, shape, site, d) in enumerate(wanted):
        centre = chooser.choose(site, d / 2)
        if centre is None:
            continue
        loc = NoduleLocation.JUXTAVASCULAR if site != SiteKind.ISOLATED else NoduleLocation.ISOLATED
        spec = NoduleSpec(
            centre=centre,
            diameter_mm=d,
            texture=tex,
            shape=shape,
            location=loc,
            **_shape_parts(rng, d / 2, shape),
            **_texture_hu(rng, tex, d, False),
        )
        insert_lesion(host, hu, label, spec, i + 1, rng)
        out.append((f"hybrid: {name}", centre))
    crops = [(name, crop(host.volume, hu, c)) for name, c in out]
    return crops, parenchyma_iqr(host.volume, hu)


def synth_crops() -> tuple[list[tuple[str, np.ndarray]], float]:
    crops: list[tuple[str, np.ndarray]] = []
    iqr = []
    wanted = [("solid", "isolated"), ("ground-glass", "isolated"), ("solid", "juxtavascular")]
    for tex, loc in wanted:
        cfg = SynthConfig(
            seed=5,
            p_no_nodule=0.0,
            nodules_per_scan_max=4,
            diameter_range_mm=(7.0, 14.0),
            texture_mix={tex: 1.0},
            location_mix={loc: 1.0},
            slice_spacing_range_mm=(1.25, 1.25),
            p_streak=0.0,
        )
        for index in range(4):
            scan = generate_scan(cfg, index)
            nod = [n for n in scan.nodules if n.diameter_mm >= 7.0 and n.accepted]
            if nod:
                n = nod[0]
                crops.append(
                    (
                        f"synth: {tex} {loc} {n.diameter_mm:.0f} mm",
                        crop(scan.volume, scan.volume.hu, np.asarray(n.center_xyz_mm)),
                    )
                )
                iqr.append(parenchyma_iqr(scan.volume, scan.volume.hu))
                break
    return crops, float(np.median(iqr))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "real_hybrid_synth.png")
    args = parser.parse_args()
    data = Path(os.environ.get("LUNGCAD_REAL_DATA", REPO.parent / "shared" / "data"))
    real_dir = data / "lidc" / "LIDC-IDRI-0001" / "01-01-2000-30178" / "3000566-03192"
    host_dir = next((data / "lidc" / "LIDC-IDRI-0002").glob("*/*"))
    real = load_ct(real_dir)
    groups = [
        (
            [("real: LIDC-IDRI-0001 23 mm", crop(real, real.hu, np.asarray(NODULE_0001)))],
            parenchyma_iqr(real, real.hu),
            "real LIDC-IDRI-0001",
        ),
        (*hybrid_crops(host_dir), "hybrid in LIDC-IDRI-0002"),
        (*synth_crops(), "lungcad synth"),
    ]
    panels = [(name, img, i) for i, (items, _, _) in enumerate(groups) for name, img in items]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.0 * len(panels), 2.75), dpi=100)
    colours = ["#1b9e77", "#d95f02", "#7570b3"]
    for ax, (name, img, g) in zip(axes, panels, strict=True):
        ax.imshow(img, cmap="gray", vmin=-1350, vmax=150, extent=(-HALF_MM, HALF_MM, HALF_MM, -HALF_MM))
        ax.set_title(name.replace(": ", ":\n"), fontsize=7.5, color=colours[g])
        ax.set_xticks([])
        ax.set_yticks([])
        for s in ax.spines.values():
            s.set_edgecolor(colours[g])
            s.set_linewidth(2)
        iqr = groups[g][1]
        ax.set_xlabel(f"parenchyma IQR {iqr:.0f} HU", fontsize=7, color=colours[g], labelpad=2)
    axes[0].plot([-HALF_MM + 3, -HALF_MM + 13], [HALF_MM - 8, HALF_MM - 8], color="white", lw=2)
    axes[0].text(-HALF_MM + 3, HALF_MM - 10, "10 mm", color="white", fontsize=6.5)
    fig.suptitle(
        "Real vs hybrid vs synthetic nodules: axial crops, 48 mm, lung window W 1500 / L -600", fontsize=9
    )
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(args.out, args.out.stat().st_size // 1024, "KB")


if __name__ == "__main__":
    main()
