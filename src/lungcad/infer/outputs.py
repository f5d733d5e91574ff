"""Write a detection result (``result.json``, LUNA16 submission rows, one key-image PNG per nodule) and read
``result.json`` back."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from lungcad.annotations.luna16 import write_luna16_submission
from lungcad.errors import InputError
from lungcad.fileio import atomic_write, atomic_write_text
from lungcad.infer.candidates import to_luna_candidates
from lungcad.types import CTVolume, ScanResult


def write_result_json(result: ScanResult, path: str | Path) -> Path:
    return atomic_write_text(path, json.dumps(result.to_dict(), indent=2, default=float))


KEY_IMAGE_MM = 60.0  # side of the axial crop around the nodule
KEY_IMAGE_PX = 300  # side of the drawn crop in pixels (60 mm -> 5 px / mm)
KEY_IMAGE_WINDOW = (-1350.0, 150.0)  # lung window W1500 / L-600, HU


def _key_font(size: int):  # type: ignore[no-untyped-def]
    from PIL import ImageFont

    try:  # fonts-dejavu-core (Debian), the report's font
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default(size=size)  # Pillow's embedded scalable font


def key_images(result: ScanResult, volume: CTVolume, out_dir: str | Path) -> list[Path]:
    """One PNG per finding: the axial slice through its centre, a 60 mm crop in the lung window, scaled
    to 300 x 300 px (5 px / mm), with a yellow circle of the finding's diameter and a two-line title
    (number, diameter, texture; Lung-RADS, probability, triage).

    Drawn with Pillow: ``lungcad detect`` writes these on every run, and importing matplotlib for them
    cost ~0.5 s of a cold CLI run (issue 18).  Near the scan's edge the crop is padded with air (-1000 HU)
    so the circle stays centred and the scale stays 5 px / mm.
    """
    from PIL import Image, ImageDraw

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    _, sy, sx = volume.spacing_zyx_mm
    lo, hi = KEY_IMAGE_WINDOW
    title_h, margin = 44, 10
    font = _key_font(13)
    for k, f in enumerate(result.findings, start=1):
        z, y, x = volume.world_to_voxel(f.center_xyz_mm)
        zi = int(np.clip(round(z), 0, volume.shape[0] - 1))
        # the crop in voxels: KEY_IMAGE_MM / spacing on each axis, centred on the finding
        hy, hx = KEY_IMAGE_MM / 2 / sy, KEY_IMAGE_MM / 2 / sx
        y0, x0 = int(np.floor(y - hy)), int(np.floor(x - hx))
        ny, nx = int(np.ceil(2 * hy)), int(np.ceil(2 * hx))
        crop = np.full((ny, nx), -1000.0, np.float32)
        ys = slice(max(0, y0), min(volume.shape[1], y0 + ny))
        xs = slice(max(0, x0), min(volume.shape[2], x0 + nx))
        if ys.start < ys.stop and xs.start < xs.stop:
            crop[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0] = volume.hu[zi, ys, xs]
        grey = np.clip((crop - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
        px_y, px_x = KEY_IMAGE_PX / (ny * sy), KEY_IMAGE_PX / (nx * sx)  # pixels per mm on each axis
        tile = Image.fromarray(grey).resize(
            (round(nx * sx * px_x), round(ny * sy * px_y)), Image.Resampling.BILINEAR
        )
        canvas = Image.new("RGB", (KEY_IMAGE_PX + 2 * margin, KEY_IMAGE_PX + title_h + margin), "white")
        canvas.paste(tile.convert("RGB"), (margin, title_h))
        draw = ImageDraw.Draw(canvas)
        cx = margin + (x - x0) * sx * px_x
        cy = title_h + (y - y0) * sy * px_y
        r = f.diameter_mm / 2 * px_x
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=(255, 220, 0), width=2)
        title = (
            f"#{k} {f.diameter_mm:.1f} mm {f.texture.value if f.texture else ''}".rstrip(),
            f"Lung-RADS {f.lung_rads}  p={f.probability:.2f}  triage={f.triage_probability or 0:.2f}",
        )
        for line, text in enumerate(title):
            draw.text((canvas.width / 2, 6 + 18 * line), text, fill="black", font=font, anchor="ma")
        path = out / f"nodule_{k:02d}.png"
        atomic_write(path, lambda tmp, im=canvas: im.save(tmp, format="PNG", optimize=False))
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


def read_result_json(path: str | Path) -> ScanResult:
    """A ``result.json`` (``write_result_json``) back into a ``ScanResult``, with errors a user can act on.

    The one reader of ``lungcad detect --out`` folders: ``lungcad report DIR`` (``report.rerender``) and
    ``lungcad compare`` (``longitudinal.sides``) both read through it.

    Raises:
        InputError: missing, not JSON, or not a lungcad result (the message names the first problem).
    """
    from pydantic import ValidationError

    p = Path(path)
    if not p.is_file():
        raise InputError(
            "no result.json in the result folder",
            path=p.parent,
            fix="pass the --out folder of `lungcad detect`",
        )
    try:
        doc = json.loads(p.read_text())
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise InputError(
            f"result.json is not valid JSON: {exc}", path=p, fix="re-run `lungcad detect` to write it again"
        ) from None
    try:
        return ScanResult.from_dict(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "the document"
        raise InputError(
            f"result.json is not a lungcad result: {where}: {first['msg']}",
            path=p,
            fix="re-run `lungcad detect` to write it again",
        ) from None
