"""``lungcad synth``: generate a synthetic chest-CT cohort with ground truth (see ``lungcad.synth``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from lungcad.cli.common import console, get_config, print_json
from lungcad.errors import InputError
from lungcad.fileio import check_output_dir


def synth(
    out: Path = typer.Option(..., "--out", help="output folder (created; must not hold a cohort already)"),
    n: int | None = typer.Option(None, "--n", help="number of scans [synth.n_scans]"),
    seed: int | None = typer.Option(None, "--seed", help="cohort seed [synth.seed]"),
    fmt: str | None = typer.Option(None, "--format", help="dicom, mhd or both [synth.output_format]"),
    workers: int | None = typer.Option(None, "--workers", help="parallel processes [synth.workers]"),
    shape_xy: int | None = typer.Option(
        None, "--shape-xy", help="in-plane matrix, e.g. 256 [synth.shape_xy]"
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="write into a folder that holds a cohort"),
    background: list[Path] = typer.Option(
        [], "--background", help="real CT (DICOM folder or .mhd) to insert nodules into; repeatable"
    ),
    background_annotations: Path | None = typer.Option(
        None,
        "--background-annotations",
        help="folder with LUNA16 annotations(_excluded).csv of the backgrounds",
    ),
    follow_up: bool = typer.Option(
        False,
        "--follow-up",
        help="per patient a prior and a current scan months apart, with followup.json ground truth "
        "(nodule matches, growth, doubling times; configs/synth_followup.yaml)",
    ),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Generate N synthetic chest CTs: DICOM and/or MetaImage, LUNA16 CSVs, LIDC XML, masks, manifest.

    With --background SCAN (repeatable): N hybrid scans per background instead, synthetic nodules inserted
    into the real CT (MetaImage, same cohort layout; see lungcad.synth.hybrid).

    With --follow-up: N patients scanned twice (OUT/prior and OUT/current, each a cohort) and
    OUT/followup.json with the exact prior -> current transform, study dates and per-nodule status, sizes
    and doubling times (see lungcad.synth.followup_manifest).
    """
    from lungcad.synth import generate_cohort

    out = check_output_dir(out)  # before the work: a bad --out fails at once
    given = {"n_scans": n, "seed": seed, "output_format": fmt, "workers": workers, "shape_xy": shape_xy}
    overrides = {k: v for k, v in given.items() if v is not None}
    start = time.perf_counter()
    if background and fmt not in (None, "mhd"):
        raise InputError(
            f"--background writes MetaImage only, got --format {fmt}", fix="drop --format or use --format mhd"
        )
    if follow_up and background:
        raise InputError(
            "--follow-up and --background cannot be combined: follow-up pairs are fully synthetic",
            fix="drop one of the two options",
        )
    if follow_up:
        from lungcad.synth.followup_cohort import followup_summary, generate_followup_cohort

        cfg = get_config({"synth": overrides}).synth
        fmanifest = generate_followup_cohort(cfg, out, overwrite=overwrite, progress=not as_json)
        _print(followup_summary(fmanifest, out, time.perf_counter() - start), out, as_json)
        return
    if background:  # hybrid scans: --n is per background
        from lungcad.synth.hybrid import generate_hybrid_cohort

        cfg = get_config({"synth": {k: v for k, v in overrides.items() if k != "n_scans"}}).synth
        manifest = generate_hybrid_cohort(
            background, out, cfg, n or 1, cfg.seed, background_annotations, overwrite=overwrite
        )
    else:
        cfg = get_config({"synth": overrides}).synth
        manifest = generate_cohort(cfg, out, overwrite=overwrite, progress=not as_json)
    _print(_summary(manifest, out, time.perf_counter() - start), out, as_json)


def _print(summary: dict[str, Any], out: Path, as_json: bool) -> None:
    if as_json:
        print_json(summary)
        return
    table = Table(title=f"Synthetic cohort in {out}", show_header=False)
    for key, value in summary.items():
        table.add_row(key, str(value))
    console.print(table)


def _summary(manifest: dict[str, Any], out: Path, seconds: float) -> dict[str, Any]:
    nodules = [nod for scan in manifest["scans"] for nod in scan["nodules"]]
    hybrid = {}
    if "backgrounds" in manifest:
        sites = [nod["site"] for nod in nodules]
        hybrid = {
            "backgrounds": len(manifest["backgrounds"]),
            "sites": {k: sites.count(k) for k in sorted(set(sites))},
        }
    return hybrid | {
        "out": str(out),
        "scans": manifest["n_scans"],
        "format": manifest["format"],
        "lesions": len(nodules),
        "annotations.csv rows": sum(len(s["annotations"]) for s in manifest["scans"]),
        "annotations_excluded.csv rows": sum(len(s["excluded"]) for s in manifest["scans"]),
        "scans without nodules": sum(1 for s in manifest["scans"] if not s["annotations"]),
        "seconds": round(seconds, 1),
    }


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(synth)
