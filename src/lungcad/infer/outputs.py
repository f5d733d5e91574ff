"""Write a detection result: ``result.json``, LUNA16 submission rows and one key-image PNG per nodule."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from lungcad.annotations.luna16 import write_luna16_submission
from lungcad.fileio import atomic_write, atomic_write_text
from lungcad.infer.candidates import to_luna_candidates
from lungcad.types import CTVolume, ScanResult


def write_result_json(result: ScanResult, path: str | Path) -> Path:
    return atomic_write_text(path, json.dumps(result.to_dict(), indent=2, default=float))


def key_images(result: ScanResult, volume: CTVolume, out_dir: str | Path) -> list[Path]:
    """An axial crop (lung window, 60 mm) through each nodule's centre with its diameter drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    sz, sy, sx = volume.spacing_zyx_mm
    for k, f in enumerate(result.findings, start=1):
        z, y, x = volume.world_to_voxel(f.center_xyz_mm)
        zi = int(np.clip(round(z), 0, volume.shape[0] - 1))
        half_y, half_x = int(30 / sy), int(30 / sx)
        y0, x0 = max(0, int(y) - half_y), max(0, int(x) - half_x)
        crop = volume.hu[zi, y0 : int(y) + half_y, x0 : int(x) + half_x]
        fig, ax = plt.subplots(figsize=(3.2, 3.4))
        ax.imshow(
            crop, cmap="gray", vmin=-1350, vmax=150, extent=(0, crop.shape[1] * sx, crop.shape[0] * sy, 0)
        )
        ax.add_patch(
            Circle(((x - x0) * sx, (y - y0) * sy), f.diameter_mm / 2, fill=False, color="yellow", lw=1)
        )
        ax.set_title(
            f"#{k} {f.diameter_mm:.1f} mm {f.texture.value if f.texture else ''}\n"
            f"Lung-RADS {f.lung_rads}  p={f.probability:.2f}  triage={f.triage_probability or 0:.2f}",
            fontsize=8,
        )
        ax.axis("off")
        fig.tight_layout()
        path = out / f"nodule_{k:02d}.png"
        atomic_write(path, lambda tmp, fig=fig: fig.savefig(tmp, dpi=100))
        plt.close(fig)
        paths.append(path)
    return paths


def write_outputs(
    result: ScanResult, volume: CTVolume | None, out_dir: str | Path, report_threshold: float = 0.0
) -> dict[str, str]:
    """``result.json`` and ``candidates.csv`` (LUNA16 submission format) with every candidate, and key
    images of the findings whose probability reaches ``report_threshold``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"result": str(write_result_json(result, out / "result.json"))}
    write_luna16_submission(to_luna_candidates(result.series_uid, result.findings), out / "candidates.csv")
    files["candidates"] = str(out / "candidates.csv")
    shown = [f for f in result.findings if f.probability >= report_threshold]
    if volume is not None and shown:
        files["key_images"] = str(out / "key_images")
        key_images(dataclasses.replace(result, findings=shown), volume, out / "key_images")
    return files
