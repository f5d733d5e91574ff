"""``lungcad ingest`` and ``lungcad info``: load a CT, report series, metadata and QA, write outputs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from lungcad.cli.common import console, get_config, print_json
from lungcad.errors import InputError
from lungcad.fileio import atomic_write, check_output_dir
from lungcad.io import list_input, load_ct_with_discovery, load_listed
from lungcad.io.discover import Discovery
from lungcad.io.image import save_volume
from lungcad.preprocess.pipeline import Preprocessed, preprocess_ct
from lungcad.types import CTVolume


def _series_table(found: Discovery | None, chosen: str) -> Table:
    table = Table(title="Series found", show_lines=False)
    for col in ("", "SeriesInstanceUID", "modality", "slices", "orientation", "description"):
        table.add_column(col)
    if found is None:
        table.add_row("*", chosen, "CT", "-", "-", "(image file)")
        return table
    for s in found.series:
        mark = "*" if s.series_uid == chosen else ""
        table.add_row(mark, s.series_uid, s.modality, str(s.n_frames), s.orientation, escape(s.description))
    return table


def _metadata_table(volume: CTVolume) -> Table:
    table = Table(title="Scan", show_header=False)
    meta = volume.metadata.to_dict()
    meta.pop("slice_report", None)
    for key in ("patient_age", "patient_sex"):  # shown to the user, never logged
        meta[key] = meta.get(key) or "-"
    table.add_row("shape (z, y, x)", str(volume.shape))
    table.add_row("spacing (z, y, x) mm", ", ".join(f"{s:.4g}" for s in volume.spacing_zyx_mm))
    table.add_row("origin (x, y, z) mm", ", ".join(f"{o:.2f}" for o in volume.origin_xyz_mm))
    for key, value in meta.items():
        if value not in (None, ""):
            table.add_row(key, escape(str(value)))
    return table


def _qa_table(pre: Preprocessed) -> Table:
    colour = {"pass": "green", "warn": "yellow", "fail": "red"}
    table = Table(title=f"QA verdict: {pre.qa.verdict.value.upper()}")
    for col in ("check", "status", "value", "message"):
        table.add_column(col)
    for c in pre.qa.checks:
        status = f"[{colour[c.status.value]}]{c.status.value}[/]"
        table.add_row(c.name, status, escape(str(c.value)), escape(c.message))
    return table


def _summary(volume: CTVolume, found: Discovery | None, pre: Preprocessed | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "series_uid": volume.metadata.series_uid,
        "shape_zyx": list(volume.shape),
        "spacing_zyx_mm": list(volume.spacing_zyx_mm),
        "origin_xyz_mm": list(volume.origin_xyz_mm),
        "direction": volume.direction.tolist(),
        "metadata": volume.metadata.to_dict(),
    }
    if found is not None:
        out["series_found"] = [s.to_dict() for s in found.series]
        out["skipped_files"] = [{"path": str(p), "reason": r} for p, r in found.skipped]
    if pre is not None:
        out["qa"] = pre.qa.to_dict()
        out["preprocessed"] = {
            "shape_zyx": list(pre.volume.shape),
            "spacing_zyx_mm": list(pre.volume.spacing_zyx_mm),
            "origin_xyz_mm": list(pre.volume.origin_xyz_mm),
            "crop_start_zyx": list(pre.crop_start_zyx),
            "crop_stop_zyx": list(pre.crop_stop_zyx),
            "lung_volume_ml": round(pre.lungs.volume_ml, 1),
        }
        out["timings_s"] = {k: round(v, 3) for k, v in pre.timings_s.items()}
    return out


def _preview_png(pre: Preprocessed, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    z = int(np.argmax(pre.lung_mask.sum(axis=(1, 2))))
    y = pre.image.shape[1] // 2
    fig, axes = plt.subplots(1, 2, figsize=(10, 5))
    axes[0].imshow(pre.image[z], cmap="gray", vmin=0, vmax=1)
    axes[0].contour(pre.lung_mask[z], levels=[0.5], colors="c", linewidths=0.6)
    axes[0].set_title(f"axial z={z} (1 mm grid)")
    axes[1].imshow(pre.image[::-1, y] if pre.volume.direction[2, 2] > 0 else pre.image[:, y], cmap="gray")
    axes[1].set_title("coronal")
    for ax in axes:
        ax.axis("off")
    fig.suptitle(f"QA: {pre.qa.verdict.value}")
    fig.tight_layout()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100))
    finally:
        plt.close(fig)


def ingest(
    path: Path = typer.Argument(..., help="DICOM folder or file, .mhd/.mha or .nii/.nii.gz"),
    series: str | None = typer.Option(None, "--series", help="SeriesInstanceUID to load when several"),
    out: Path | None = typer.Option(
        None, "--out", help="folder for the preprocessed volume, sidecar, preview"
    ),
    fmt: str = typer.Option("nifti", "--format", help="nifti or mhd for --out"),
    allow_gaps: bool = typer.Option(False, "--allow-gaps", help="missing slices warn instead of failing QA"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON document instead of tables"),
) -> None:
    """Load a CT, run QA, crop to the lungs, resample to 1 mm and normalise; optionally write results."""
    if fmt not in {"nifti", "mhd"}:
        raise InputError(f"--format must be nifti or mhd, got {fmt!r}")
    if out is not None:
        out = check_output_dir(out)  # before the work: a bad --out fails at once
    cfg = get_config({"preprocess": {"allow_gaps": allow_gaps}} if allow_gaps else None)
    t0 = time.perf_counter()
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        transient=True,
        disable=as_json,
        console=console,
    ) as progress:
        task = progress.add_task("loading series", total=2)
        volume, found = load_ct_with_discovery(
            path, series, gap_factor=cfg.preprocess.gap_factor, min_slices=cfg.preprocess.min_slices
        )
        progress.update(task, advance=1, description="lung mask, QA, resampling")
        pre = preprocess_ct(volume, cfg.preprocess)
        progress.update(task, advance=1)
    summary = _summary(volume, found, pre)
    summary["timings_s"]["total"] = round(time.perf_counter() - t0, 3)
    summary["config_hash"] = cfg.config_hash()
    if out is not None:
        suffix = ".nii.gz" if fmt == "nifti" else ".mhd"
        image_path = save_volume(pre.volume, out / f"preprocessed{suffix}", array=pre.image, sidecar=summary)
        mask_path = save_volume(pre.volume, out / f"lung_mask{suffix}", array=pre.lung_mask.astype("uint8"))
        preview = out / "preview.png"
        _preview_png(pre, preview)
        summary["outputs"] = {"image": str(image_path), "lung_mask": str(mask_path), "preview": str(preview)}
    if as_json:
        print_json(summary)
        return
    console.print(_series_table(found, volume.metadata.series_uid))
    if found is not None and found.skipped:
        console.print(
            f"[dim]{len(found.skipped)} non-image file(s) skipped (e.g. {found.skipped[0][0].name})[/]"
        )
    console.print(_metadata_table(volume))
    console.print(_qa_table(pre))
    console.print(
        f"preprocessed: {pre.volume.shape} voxels at {cfg.preprocess.target_spacing_mm:g} mm in "
        f"{summary['timings_s']['total']:.2f} s"
    )
    for key, value in summary.get("outputs", {}).items():
        console.print(f"wrote {key}: {value}")


def info(
    path: Path = typer.Argument(..., help="DICOM folder or file, .mhd/.mha or .nii/.nii.gz"),
    series: str | None = typer.Option(None, "--series", help="SeriesInstanceUID to load when several"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Show the series in a folder and the geometry and metadata of the one that would be loaded.

    A folder without a CT series (e.g. MR only) is listed, with a line saying so, and exits 0: ``info``
    says what is there; ``ingest`` and ``detect`` refuse it.
    """
    listing = list_input(path, series)
    if series is None and not listing.has_loadable_ct:
        assert listing.found is not None  # no image volume: the listing is a DICOM discovery
        _print_no_ct(listing.found, as_json)
        return
    volume = load_listed(listing, series)
    summary = {**_summary(volume, listing.found, None), "loadable_ct": True}
    if as_json:
        print_json(summary)
        return
    console.print(_series_table(listing.found, volume.metadata.series_uid))
    console.print(_metadata_table(volume))


def _no_ct_line(found: Discovery) -> str:
    """E.g. "no loadable CT: the folder holds 2 series (MR) and 1 non-image file(s); ..."."""
    modalities = ", ".join(sorted({s.modality or "?" for s in found.series}))
    held = f"{len(found.series)} series ({modalities})" if found.series else "no DICOM image series"
    return (
        f"no loadable CT: the folder holds {held} and {len(found.skipped)} non-image file(s); "
        "ingest and detect need a series with Modality CT"
    )


def _print_no_ct(found: Discovery, as_json: bool) -> None:
    line = _no_ct_line(found)
    if as_json:
        print_json(
            {
                "path": str(found.root),
                "loadable_ct": False,
                "message": line,
                "series_found": [s.to_dict() for s in found.series],
                "skipped_files": [{"path": str(p), "reason": r} for p, r in found.skipped],
            }
        )
        return
    if found.series:
        console.print(_series_table(found, ""))
    if found.skipped:
        example = found.skipped[0][0].name
        console.print(f"[dim]{len(found.skipped)} non-image file(s) skipped (e.g. {escape(example)})[/]")
    console.print(f"[yellow]{escape(line)}[/]")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(ingest)
    app.command()(info)
