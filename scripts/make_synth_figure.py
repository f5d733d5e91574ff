"""Real vs synthetic chest CT: a slice of each in the same window, and HU histograms per tissue class.

Writes ``docs/synth_vs_real.png`` and ``docs/synth_vs_real.json`` (median and IQR per class).

* Real: LIDC-IDRI-0001 (read with pydicom, HU = stored x RescaleSlope + RescaleIntercept, padding -> -1024),
  the slice through its LUNA16 nodule at world (56.21, 86.34, -115.87) mm, 23.35 mm across.
* Synthetic: ``generate_scan`` with the real scan's acquisition (512 matrix, 360 mm field of view, 2.5 mm
  slices, intravenous contrast, as LIDC-IDRI-0001 was acquired); nodules 15-28 mm and not spiculated, so
  the shown slice holds a solid nodule comparable to the real 23 mm lobulated one.

The classes are measured the same way in both scans:

* lung: the voxels below -500 HU inside ``lungcad.preprocess.lung_mask.segment_lungs``' mask, closed by
  4 mm (takes in the vessels they surround, not the mediastinum), eroded by 3 mm (drops pleura and chest
  wall), without a 5 mm margin around each nodule;
* parenchyma: lung voxels below -600 HU; vessels: lung voxels above -500 HU (simple thresholds);
* nodule: voxels inside the LUNA16 sphere (centre, diameter / 2) of each solid >= 8 mm nodule.  For the
  synthetic scan the exact label mask of each texture is reported too.

Usage: ``.venv/bin/python scripts/make_synth_figure.py [--data ../shared/data] [--index 0]``
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pydicom  # noqa: E402
from scipy import ndimage  # noqa: E402

from lungcad.config import SynthConfig  # noqa: E402
from lungcad.fileio import atomic_write, atomic_write_json  # noqa: E402
from lungcad.preprocess.lung_mask import segment_lungs  # noqa: E402
from lungcad.synth import SynthScan, generate_scan  # noqa: E402
from lungcad.types import CTVolume, Texture  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LIDC_0001 = Path("lidc/LIDC-IDRI-0001/01-01-2000-30178/3000566-03192")
REAL_NODULE = ((56.21, 86.34, -115.87), 23.35)
WINDOW = (-1350.0, 150.0)  # lung window: level -600, width 1500


def read_lidc_0001(root: Path) -> CTVolume:
    """The real series via pydicom: slices sorted by ImagePositionPatient z, rescaled to HU."""
    slices = [pydicom.dcmread(p) for p in sorted((root / LIDC_0001).glob("*.dcm"))]
    slices.sort(key=lambda ds: float(ds.ImagePositionPatient[2]))
    hu = np.stack(
        [
            ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
            for ds in slices
        ]
    )
    np.maximum(hu, -1024.0, out=hu)  # padding (-3024 after rescale) outside the reconstruction circle
    first = slices[0]
    dz = float(slices[1].ImagePositionPatient[2]) - float(first.ImagePositionPatient[2])
    dy, dx = (float(v) for v in first.PixelSpacing)
    return CTVolume(hu, (dz, dy, dx), tuple(float(v) for v in first.ImagePositionPatient))


def _sphere(volume: CTVolume, centre: tuple[float, float, float], radius: float) -> np.ndarray:
    c = volume.world_to_voxel(np.asarray(centre))
    zz, yy, xx = np.ogrid[: volume.shape[0], : volume.shape[1], : volume.shape[2]]
    sz, sy, sx = volume.spacing_zyx_mm
    return ((zz - c[0]) * sz) ** 2 + ((yy - c[1]) * sy) ** 2 + ((xx - c[2]) * sx) ** 2 <= radius**2


def class_masks(
    volume: CTVolume, nodules: list[tuple[tuple[float, float, float], float]]
) -> dict[str, np.ndarray]:
    """Parenchyma / vessel / nodule masks by the rules in the module docstring."""
    # Lung = the air-like voxels of segment_lungs' mask, closed by 4 mm to take in the vessels they surround.
    # segment_lungs' own mask fills in-plane holes, which takes in the whole mediastinum wherever the two
    # lungs touch in front and behind it (they do on LIDC-IDRI-0001): its heart and aorta are not lung.
    lungs = segment_lungs(volume).full_mask() & (volume.hu < -500)
    sz, sy, _ = volume.spacing_zyx_mm
    lungs = ndimage.binary_closing(lungs, structure=_ellipsoid(volume, 4.0))
    lungs = ndimage.binary_erosion(lungs, structure=_ellipsoid(volume, 3.0))
    near_nodule = np.zeros(volume.shape, dtype=bool)
    nodule = np.zeros(volume.shape, dtype=bool)
    for centre, diameter in nodules:
        nodule |= _sphere(volume, centre, diameter / 2)
        near_nodule |= _sphere(volume, centre, diameter / 2 + 5.0)
    lungs &= ~near_nodule
    return {"parenchyma": lungs & (volume.hu < -600), "vessels": lungs & (volume.hu > -500), "nodule": nodule}


def _ellipsoid(volume: CTVolume, radius_mm: float) -> np.ndarray:
    r = [max(1, int(round(radius_mm / s))) for s in volume.spacing_zyx_mm]
    zz, yy, xx = np.ogrid[-r[0] : r[0] + 1, -r[1] : r[1] + 1, -r[2] : r[2] + 1]
    return (zz / r[0]) ** 2 + (yy / r[1]) ** 2 + (xx / r[2]) ** 2 <= 1.0


def stats(values: np.ndarray) -> dict[str, float]:
    q1, med, q3 = np.percentile(values, [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "n": int(values.size)}


def synthetic_scan(index: int) -> SynthScan:
    cfg = SynthConfig(
        shape_xy=512,
        fov_range_mm=(360.0, 360.0),
        slice_spacing_range_mm=(2.5, 2.5),
        slice_thickness_factor_range=(1.0, 1.0),
        p_contrast=1.0,
        p_oblique=0.0,
        p_streak=0.0,
        p_no_nodule=0.0,
        nodules_per_scan_max=4,
        diameter_range_mm=(15.0, 28.0),
        shape_mix={"spherical": 1.0, "ellipsoidal": 1.0, "lobulated": 1.0},
        texture_mix={"solid": 0.7, "part-solid": 0.1, "ground-glass": 0.1, "calcified": 0.1},
        noise_std_range_hu=(15.0, 25.0),
        seed=2026,
    )
    return generate_scan(cfg, index)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    default_data = os.environ.get("LUNGCAD_REAL_DATA", str(REPO.parent / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=Path(default_data))
    parser.add_argument("--index", type=int, default=0, help="synthetic scan index")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "synth_vs_real.png")
    args = parser.parse_args()

    real = read_lidc_0001(args.data)
    synth = synthetic_scan(args.index)
    solid = [n for n in synth.nodules if n.texture == Texture.SOLID and n.diameter_mm >= 8.0]
    if not solid:
        raise SystemExit(f"synthetic scan {args.index} has no solid nodule >= 8 mm; try another --index")
    shown = max(solid, key=lambda n: n.diameter_mm)
    real_masks = class_masks(real, [REAL_NODULE])
    synth_masks = class_masks(synth.volume, [(n.center_xyz_mm, n.diameter_mm) for n in solid])

    result: dict[str, dict] = {"real LIDC-IDRI-0001": {}, "synthetic": {}}
    for name, vol, masks in (
        ("real LIDC-IDRI-0001", real, real_masks),
        ("synthetic", synth.volume, synth_masks),
    ):
        for cls, mask in masks.items():
            result[name][cls] = stats(vol.hu[mask])
        lung_voxels = masks["parenchyma"].sum() + masks["vessels"].sum()
        result[name]["vessel fraction of lung"] = float(masks["vessels"].sum() / max(lung_voxels, 1))
    for tex in Texture:
        labels = [n.label for n in synth.nodules if n.texture == tex and not n.micronodule]
        if labels:
            result["synthetic"][f"nodule label mask: {tex.value}"] = stats(
                synth.volume.hu[np.isin(synth.label, labels)]
            )
    result["synthetic"]["scan"] = {
        "index": args.index,
        "shown nodule": {
            "diameter_mm": shown.diameter_mm,
            "shape": shown.shape.value,
            "location": shown.location.value,
        },
        "noise_std_hu": synth.acquisition.noise_std_hu,
        "kernel": synth.acquisition.kernel,
    }

    fig = plt.figure(figsize=(15, 10.5))
    grid = fig.add_gridspec(2, 3, height_ratios=[1.45, 1.0])
    k_real = int(round(real.world_to_voxel(np.asarray(REAL_NODULE[0]))[0]))
    k_syn = int(round(shown.center_zyx_vox[0]))
    for col, (title, vol, k) in enumerate(
        (
            ("real: LIDC-IDRI-0001", real, k_real),
            (f"synthetic: lungcad synth scan {args.index}", synth.volume, k_syn),
        )
    ):
        ax = fig.add_subplot(grid[0, col])
        ax.imshow(vol.hu[k], cmap="gray", vmin=WINDOW[0], vmax=WINDOW[1])
        sz, sy = vol.spacing_zyx_mm[:2]
        ax.set_title(f"{title}\nslice {k}, {sy:.2f} mm pixels, {sz:.1f} mm slices")
        ax.axis("off")
    ax = fig.add_subplot(grid[0, 2])
    ax.axis("off")
    lines = ["HU median [IQR]            real            synthetic"]
    for cls in ("parenchyma", "vessels", "nodule"):
        r, s = result["real LIDC-IDRI-0001"][cls], result["synthetic"][cls]
        real_txt = f"{r['median']:>6.0f} [{r['q1']:.0f}, {r['q3']:.0f}]"
        lines.append(f"{cls:<12} {real_txt:<19} {s['median']:>6.0f} [{s['q1']:.0f}, {s['q3']:.0f}]")
    vf_r = result["real LIDC-IDRI-0001"]["vessel fraction of lung"]
    vf_s = result["synthetic"]["vessel fraction of lung"]
    lines.append(f"vessel fraction of lung  {100 * vf_r:.1f}%            {100 * vf_s:.1f}%")
    lines.append("")
    lines.append("synthetic nodules by texture (exact masks):")
    for key, val in result["synthetic"].items():
        if key.startswith("nodule label mask"):
            lines.append(
                f"  {key.split(': ')[1]:<13} {val['median']:>6.0f} [{val['q1']:.0f}, {val['q3']:.0f}]"
            )
    lines.append("")
    lines.append("window: level -600, width 1500 HU")
    ax.text(0.0, 0.95, "\n".join(lines), family="monospace", fontsize=9, va="top")
    bins = {
        "parenchyma": np.arange(-1024, -590, 8),
        "vessels": np.arange(-500, 300, 10),
        "nodule": np.arange(-1000, 400, 20),
    }
    for col, cls in enumerate(("parenchyma", "vessels", "nodule")):
        ax = fig.add_subplot(grid[1, col])
        for name, vol, masks, colour in (
            ("real", real, real_masks, "tab:blue"),
            ("synthetic", synth.volume, synth_masks, "tab:orange"),
        ):
            ax.hist(
                vol.hu[masks[cls]],
                bins=bins[cls],
                density=True,
                histtype="step",
                lw=1.8,
                color=colour,
                label=name,
            )
        ax.set_title(cls)
        ax.set_xlabel("HU")
        ax.legend()
    fig.tight_layout()
    atomic_write(args.out, lambda tmp: fig.savefig(tmp, dpi=80))
    atomic_write_json(args.out.with_suffix(".json"), result, indent=1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
