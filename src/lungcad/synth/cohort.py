"""``generate_cohort``: many scans in parallel, written as DICOM and/or MetaImage with their ground truth.

Layout of ``out_dir`` (paths in ``manifest.json`` are relative to it)::

    manifest.json                 parameters, per-scan entries, SHA-256 of every file (written last)
    synth-incomplete.json         only while the run is unfinished: the settings it was started with
    annotations.csv               LUNA16 nodules (>= 3 mm, contoured by >= reader_agreement_min readers)
    annotations_excluded.csv      LUNA16 irrelevant findings (other lesions; marked scars with d = -1)
    seriesuids.csv                one SeriesInstanceUID per scan
    scans/SYN-0000/
        dicom/000001.dcm ...      CT Image Storage series (format dicom|both), with <uid>.xml beside it (LIDC)
        <uid>.mhd + <uid>.raw     MetaImage, int16 HU (format mhd|both); <uid>.xml here if no DICOM
        label.nii.gz              uint8 lesion labels on the same grid (value = "label" of a nodule)
        scan.json                 this scan's entry of the manifest

Each scan is generated and written by a worker process and only its small manifest entry comes back, so
memory stays at one scan per worker.  The same
``(cfg, index)`` gives the same bytes whatever the number of workers (see ``scan.generate_scan``).

Completion: a cohort is complete exactly when ``manifest.json`` exists; it is written last, atomically
(temporary file + rename), and cohort readers refuse a folder without it.  While the run is going,
``synth-incomplete.json`` records its settings and each finished scan has its ``scan.json`` (also written
last, atomically).  Rerunning the same command after an interruption (Ctrl-C, a crash, a full disk)
resumes: a scan whose ``scan.json`` is there and whose files still match their SHA-256 is kept, the others
are generated again; since scan ``i`` depends only on ``(cfg, i)`` the result is byte-identical to an
uninterrupted run.  Different settings start the unfinished folder over.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lungcad.annotations.lidc_xml import write_lidc_xml
from lungcad.annotations.luna16 import write_luna16_annotations, write_luna16_seriesuids
from lungcad.annotations.model import LunaAnnotation
from lungcad.config import LATE_SYNTH_FIELDS, SynthConfig
from lungcad.errors import InputError
from lungcad.fileio import atomic_write_json
from lungcad.io.dicom_write import ScannerSettings, SeriesIdentity, write_ct_series
from lungcad.io.image import save_volume
from lungcad.log import get_logger, log_stage
from lungcad.synth.scan import GENERATOR_VERSION, SynthScan, generate_scan

Format = Literal["dicom", "mhd", "both"]
FORMATS: tuple[str, ...] = ("dicom", "mhd", "both")
MANIFEST = "manifest.json"
# The marker of an unfinished run (``lungcad.data.cohort`` refuses a folder holding it without a manifest).
PARTIAL = "synth-incomplete.json"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_json(path, obj, indent=1, sort_keys=True)


def write_scan(
    scan: SynthScan, out_dir: Path, fmt: Format, *, study_date: str | None = None
) -> dict[str, Any]:
    """Write one scan's files below ``out_dir`` and return its manifest entry (paths relative to it).

    ``study_date`` (YYYYMMDD, follow-up pairs): written as StudyDate, SeriesDate, ContentDate and
    AcquisitionDate; by default the series carry the writer's fixed date and no AcquisitionDate.
    """
    folder = out_dir / "scans" / scan.scan_id
    if folder.exists():  # an unfinished or overwritten earlier attempt: no stale file may enter the hashes
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    uid = scan.series_uid
    entry: dict[str, Any] = {
        "index": scan.index,
        "scan_id": scan.scan_id,
        "patient_id": scan.scan_id,
        "series_uid": uid,
        "study_uid": scan.uids.study_uid,
        "params": scan.params,
        "nodules": [n.to_dict() for n in scan.nodules],
        "annotations": [list(a.center_xyz_mm) + [a.diameter_mm] for a in scan.annotations],
        "excluded": [list(a.center_xyz_mm) + [a.diameter_mm] for a in scan.excluded],
    }
    hu_int = scan.volume.hu.astype(np.int16)  # already whole HU (generate_scan rounds)
    xml_dir = folder
    if fmt in ("dicom", "both"):
        acq = scan.acquisition
        dicom_dir = folder / "dicom"
        write_ct_series(
            scan.volume,
            dicom_dir,
            uid_seed=scan.params["uid_seed"],
            identity=SeriesIdentity(
                patient_id=scan.scan_id,
                patient_name=f"Synthetic^{scan.scan_id}",
                study_uid=scan.uids.study_uid,
                series_uid=uid,
                series_description=scan.volume.metadata.series_description,
                **({"study_date": study_date, "acquisition_date": study_date} if study_date else {}),
            ),
            scanner=ScannerSettings(
                slice_thickness_mm=acq.slice_thickness_mm,
                kvp=acq.kvp,
                exposure_mas=acq.exposure_mas,
                kernel=acq.kernel,
            ),
            skip_slices=acq.missing_slices,
        )
        entry["dicom_dir"] = str(dicom_dir.relative_to(out_dir))
        xml_dir = dicom_dir
    if fmt in ("mhd", "both"):
        mhd = folder / f"{uid}.mhd"
        save_volume(scan.volume, mhd, array=hu_int)
        entry["mhd"] = str(mhd.relative_to(out_dir))
    xml = xml_dir / f"{uid}.xml"
    write_lidc_xml(scan.read, xml)
    entry["xml"] = str(xml.relative_to(out_dir))
    mask = folder / "label.nii.gz"
    save_volume(scan.volume, mask, array=scan.label)
    entry["mask"] = str(mask.relative_to(out_dir))
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "scan.json")
    entry["files"] = {str(p.relative_to(out_dir)): sha256_file(p) for p in files}
    _write_json(folder / "scan.json", entry)
    return entry


def _worker(cfg_json: str, index: int, out_dir: str, fmt: Format) -> dict[str, Any]:
    start = time.perf_counter()
    cfg = SynthConfig.model_validate_json(cfg_json)
    entry = write_scan(generate_scan(cfg, index), Path(out_dir), fmt)
    return entry | {"_seconds": time.perf_counter() - start}


def write_luna16_lists(entries: list[dict[str, Any]], out: Path) -> tuple[str, ...]:
    """``annotations.csv``, ``annotations_excluded.csv`` and ``seriesuids.csv`` of a cohort's manifest
    entries (each with ``series_uid``, ``annotations`` and ``excluded`` rows of x, y, z, diameter mm) in
    ``out``; returns their names (the manifest checksums them)."""
    rows, excluded = [], []
    for e in entries:
        uid = e["series_uid"]
        rows += [LunaAnnotation(uid, *r) for r in e["annotations"]]
        excluded += [LunaAnnotation(uid, *r) for r in e["excluded"]]
    write_luna16_annotations(rows, out / "annotations.csv")
    write_luna16_annotations(excluded, out / "annotations_excluded.csv")
    write_luna16_seriesuids([e["series_uid"] for e in entries], out / "seriesuids.csv")
    return ("annotations.csv", "annotations_excluded.csv", "seriesuids.csv")


def generate_cohort(
    cfg: SynthConfig,
    out_dir: str | Path,
    fmt: Format | None = None,
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate ``cfg.n_scans`` scans into ``out_dir`` with ``cfg.workers`` processes.

    Args:
        cfg: synthesis settings.
        out_dir: output folder (created).
        fmt: ``dicom``, ``mhd`` or ``both`` (default ``cfg.output_format``).
        overwrite: allow writing into a folder that already holds a complete cohort (its manifest is
            removed first, so an interrupted overwrite is never mistaken for the old cohort).
        progress: show a progress bar (rich) on stderr.

    Returns:
        The manifest (also written to ``out_dir/manifest.json``, last).  An unfinished earlier run into
        ``out_dir`` with the same settings is resumed (module docstring).

    Raises:
        InputError: unknown format, or ``out_dir`` already holds a cohort and ``overwrite`` is false.
    """
    fmt = fmt or cfg.output_format
    if fmt not in FORMATS:
        raise InputError(f"format must be one of {FORMATS}, got {fmt!r}", fix="use dicom, mhd or both")
    out = Path(out_dir)
    if (out / MANIFEST).exists() and not overwrite:
        raise InputError(
            "output folder already holds a cohort (manifest.json)",
            path=out,
            fix="choose an empty folder or pass --overwrite",
        )
    out.mkdir(parents=True, exist_ok=True)
    settings = {"format": fmt, "generator_version": GENERATOR_VERSION, "generation": cfg.generation_dict()}
    done = _resumable_entries(out, settings) if not overwrite else {}
    _write_json(out / PARTIAL, settings)  # first: from here on the folder reads as unfinished
    (out / MANIFEST).unlink(missing_ok=True)
    entries: list[dict[str, Any]] = [done[i] for i in sorted(done) if i < cfg.n_scans]
    indices = [i for i in range(cfg.n_scans) if i not in done]
    start = time.perf_counter()
    log = get_logger("lungcad.synth")
    log.info("synth.start", scans=cfg.n_scans, resumed=len(entries), format=fmt, workers=cfg.workers)
    with _generate(cfg, out, fmt, indices) as results, _progress(progress) as bar:
        task = bar.add_task("synthesising scans", total=cfg.n_scans, completed=len(entries))
        for entry in results:
            entries.append(entry)
            log_stage("synth_scan", entry.pop("_seconds"), "lungcad.synth", index=entry["index"])
            bar.advance(task)
    entries.sort(key=lambda e: e["index"])
    manifest = _write_cohort_files(cfg, out, fmt, entries)
    (out / PARTIAL).unlink(missing_ok=True)
    log_stage("synth", time.perf_counter() - start, "lungcad.synth", scans=len(entries))
    return manifest


@contextmanager
def _generate(
    cfg: SynthConfig,
    out: Path,
    fmt: Format,
    indices: list[int],
    worker: Callable[..., dict[str, Any]] | None = None,
) -> Iterator[Iterator[dict[str, Any]]]:
    """Results of ``worker(cfg_json, index, out, fmt)`` (default: a scan's manifest entry) for the scans
    ``indices`` as they finish (in order with one worker); the follow-up cohorts pass their pair worker.

    A context manager, entered *before* the progress bar: the worker processes are forked (POSIX) when the
    scans are submitted, here, before the bar starts its refresh thread, so no lock of a live thread is
    copied into them; elsewhere they are spawned (the caller then needs the usual
    ``if __name__ == "__main__"`` guard).
    """
    work = worker or _worker
    cfg_json = cfg.model_dump_json()
    if cfg.workers == 1 or len(indices) <= 1:
        yield (work(cfg_json, i, str(out), fmt) for i in indices)
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    with ProcessPoolExecutor(max_workers=min(cfg.workers, len(indices)), mp_context=ctx) as pool:
        futures = [pool.submit(work, cfg_json, i, str(out), fmt) for i in indices]
        try:
            yield (fut.result() for fut in as_completed(futures))
        except BaseException:  # a failed scan or Ctrl-C: start nothing more, keep what is finished
            for fut in futures:
                fut.cancel()
            raise


def _resumable_entries(out: Path, settings: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """Finished scans of an unfinished run with the same settings, by index (empty if none or different).

    A scan counts as finished when its ``scan.json`` (written after all its files) exists and every file
    it lists still has its SHA-256.
    """
    marker = out / PARTIAL
    if not marker.exists():
        return {}
    try:
        if json.loads(marker.read_text()) != settings:
            return {}
    except (OSError, ValueError):
        return {}
    done: dict[int, dict[str, Any]] = {}
    for path in sorted((out / "scans").glob("*/scan.json")):
        try:
            entry = json.loads(path.read_text())
            files = entry["files"]
            intact = all((out / n).is_file() and sha256_file(out / n) == h for n, h in files.items())
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if intact:
            done[int(entry["index"])] = entry
    return done


def _progress(enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )


def _write_cohort_files(
    cfg: SynthConfig, out: Path, fmt: Format, entries: list[dict[str, Any]]
) -> dict[str, Any]:
    top = write_luna16_lists(entries, out)
    manifest = {
        "generator": "lungcad synth",
        "generator_version": GENERATOR_VERSION,
        "format": fmt,
        # Late fields at their defaults are left out (as ``generation_dict`` does), so the manifests of
        # existing cohorts stay byte-identical when fields are added.
        "config": {
            k: v
            for k, v in cfg.model_dump(mode="json").items()
            if k not in LATE_SYNTH_FIELDS or k in cfg.generation_dict()
        },
        "n_scans": len(entries),
        "files": {name: sha256_file(out / name) for name in top},
        "scans": entries,
    }
    _write_json(out / MANIFEST, manifest)
    return manifest


def verify_cohort(out_dir: str | Path) -> list[str]:
    """Files whose SHA-256 no longer matches the manifest (empty when the cohort is intact)."""
    out = Path(out_dir)
    manifest = json.loads((out / MANIFEST).read_text())
    bad = [n for n, h in manifest["files"].items() if not (out / n).exists() or sha256_file(out / n) != h]
    for scan in manifest["scans"]:
        for name, digest in scan["files"].items():
            path = out / name
            if not path.exists() or sha256_file(path) != digest:
                bad.append(name)
    return bad
