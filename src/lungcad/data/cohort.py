"""Read a cohort folder of any supported kind into ``ScanRecord``s, and split it by patient.

Supported layouts (detected in this order):

* **lungcad synthetic** (``lungcad synth``): ``manifest.json`` naming every scan's image, label mask,
  patient and nodules (texture, malignancy), plus LUNA16 CSVs.
* **LUNA16**: ``annotations.csv`` (+ optional ``annotations_excluded.csv``) and ``<seriesuid>.mhd`` files
  anywhere below (``subset0/`` ... ``subset9/``), or DICOM series folders.
* **LIDC-IDRI**: DICOM series folders each holding its LIDC XML; the ground truth is the readers'
  consensus (nodules marked by >= 3 of 4 readers, as LUNA16 chose them).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lungcad.annotations.luna16 import read_luna16_annotations, read_luna16_excluded
from lungcad.annotations.lungrads import is_actionable, lung_rads_category
from lungcad.data.records import ExcludedFinding, NoduleGT, ScanRecord
from lungcad.errors import InputError
from lungcad.fileio import atomic_write_json
from lungcad.io.discover import discover
from lungcad.io.image import image_format
from lungcad.types import Texture

MANIFEST = "manifest.json"


def _actionable_from_size(diameter_mm: float, texture: Texture | str | None = None) -> bool:
    tex = Texture(texture) if texture else Texture.SOLID
    return is_actionable(lung_rads_category(diameter_mm, tex))


def _excluded_by_scan(root: Path) -> dict[str, list[ExcludedFinding]]:
    """``annotations_excluded.csv`` of ``root`` (when there is one) as excluded findings per series UID."""
    out: dict[str, list[ExcludedFinding]] = {}
    if (root / "annotations_excluded.csv").exists():
        for row in read_luna16_excluded(root / "annotations_excluded.csv"):
            out.setdefault(row.seriesuid, []).append(row.to_excluded())
    return out


def read_synthetic_cohort(root: Path, accepted_only: bool = False) -> list[ScanRecord]:
    """Records of a ``lungcad synth`` cohort.

    Args:
        accepted_only: ground truth = the nodules of ``annotations.csv`` (accepted by >= 3 of the simulated
            readers, as LUNA16 chose); the other real nodules are in ``annotations_excluded.csv``.  This is
            the evaluation view.  ``False`` (training) takes every real nodule >= 3 mm: the generator knows
            them exactly, whatever its simulated readers agreed on.
    """
    manifest = json.loads((root / MANIFEST).read_text())
    excluded = _excluded_by_scan(root)
    records = []
    for scan in manifest["scans"]:
        uid = scan["series_uid"]
        nodules = tuple(
            NoduleGT(
                tuple(n["center_xyz_mm"]),
                float(n["diameter_mm"]),
                bool(n.get("actionable", _actionable_from_size(n["diameter_mm"], n.get("texture")))),
                n.get("texture"),
                int(n.get("label", 0)),
            )
            for n in scan["nodules"]
            if float(n["diameter_mm"]) >= 3.0
            and not n.get("micronodule", False)
            and (n.get("accepted", True) or not accepted_only)
        )
        image = root / (scan.get("mhd") or scan.get("dicom_dir") or scan["image"])
        mask = root / scan["mask"] if scan.get("mask") else None
        # synthetic patients are numbered per cohort (SYN-0000, ...): the seed makes them distinct when
        # several cohorts train together
        patient = f"{scan.get('patient_id', uid)}@seed{manifest.get('config', {}).get('seed', 'unknown')}"
        records.append(ScanRecord(uid, patient, image, nodules, tuple(excluded.get(uid, [])), mask))
    return records


def _find_images(root: Path) -> dict[str, Path]:
    """Series UID -> image path for MetaImage/NIfTI files and DICOM series folders below ``root``."""
    out: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and image_format(path) == "metaimage" and path.suffix == ".mhd":
            out[path.stem] = path
    if not out:
        found = discover(root)
        for s in found.ct_series():
            out[s.series_uid] = s.files[0].parent
    return out


def read_luna16_cohort(root: Path) -> list[ScanRecord]:
    rows = read_luna16_annotations(root / "annotations.csv")
    excl = _excluded_by_scan(root)
    images = _find_images(root)
    if not images:
        raise InputError("no scans (.mhd or DICOM series) found", path=root, fix="check the cohort folder")
    by_uid: dict[str, list[NoduleGT]] = {}
    for r in rows:
        by_uid.setdefault(r.seriesuid, []).append(
            r.to_nodule(actionable=_actionable_from_size(r.diameter_mm))
        )
    return [
        ScanRecord(uid, uid, path, tuple(by_uid.get(uid, [])), tuple(excl.get(uid, [])))
        for uid, path in sorted(images.items())
    ]


def read_lidc_cohort(root: Path, min_readers: int = 3) -> list[ScanRecord]:
    from lungcad.annotations.consensus import consensus_nodules
    from lungcad.annotations.lidc_xml import find_lidc_xml, read_lidc_xml
    from lungcad.io import load_ct

    records = []
    for series in discover(root).ct_series():
        folder = series.files[0].parent
        try:
            xml = find_lidc_xml(folder, series.series_uid)
        except Exception:  # noqa: BLE001 - a series without its XML is simply not part of the cohort
            continue
        volume = load_ct(folder, series.series_uid)
        nodules = [
            n
            for n in consensus_nodules(read_lidc_xml(xml), volume)
            if n.diameter_mm and n.n_readers >= min_readers
        ]
        gts = tuple(n.to_gt() for n in nodules)
        patient = folder.parts[-3] if len(folder.parts) >= 3 else series.series_uid
        records.append(ScanRecord(series.series_uid, patient, folder, gts))
    return records


def _refuse_unfinished_synth(root: Path) -> None:
    """A ``lungcad synth`` folder without its manifest (written last) is an interrupted run, not a cohort.

    Without this check its DICOM series with their LIDC XML would be read as an LIDC cohort of whatever
    scans happened to be finished.  Signs of a synth run: its marker ``synth-incomplete.json`` (the name
    ``lungcad.synth.cohort.PARTIAL``) or per-scan ``scans/*/scan.json`` entries.
    """
    if (root / "synth-incomplete.json").exists() or any(root.glob("scans/*/scan.json")):
        raise InputError(
            "incomplete synthetic cohort: `lungcad synth` did not finish writing it (no manifest.json)",
            path=root,
            fix="rerun the same `lungcad synth --out` command: it resumes from the finished scans "
            "(or pass --overwrite to start over)",
        )


def read_cohort(path: str | Path, *, evaluation: bool = False) -> list[ScanRecord]:
    """Detect the cohort layout of ``path`` and read it.

    ``evaluation=True`` gives the LUNA16 view of a synthetic cohort (``read_synthetic_cohort``).

    Raises:
        InputError: the folder does not exist, holds no recognisable cohort, or is an unfinished synth run.
    """
    root = Path(path)
    if not root.is_dir():
        raise InputError(
            "cohort folder does not exist", path=root, fix="pass a folder made by `lungcad synth`"
        )
    if not (root / MANIFEST).exists():
        _refuse_unfinished_synth(root)
    if (root / MANIFEST).exists():
        records = read_synthetic_cohort(root, accepted_only=evaluation)
    elif (root / "annotations.csv").exists():
        records = read_luna16_cohort(root)
    else:
        records = read_lidc_cohort(root)
    if not records:
        raise InputError(
            "no scans with ground truth found",
            path=root,
            fix="use a lungcad synthetic cohort, a LUNA16 folder (annotations.csv + .mhd) or LIDC DICOM+XML",
        )
    return records


def read_cohorts(paths: Sequence[str | Path], *, evaluation: bool = False) -> list[ScanRecord]:
    """Several cohort folders (any mix of layouts) as one list of records.

    Raises:
        InputError: no folder given, or a scan id that appears in two folders (the same scan twice would
            leak between the training and validation splits).
    """
    if not paths:
        raise InputError("no cohort folder given", fix="pass --data DIR (repeat it for several cohorts)")
    records: list[ScanRecord] = []
    seen: dict[str, Path] = {}
    for path in paths:
        for r in read_cohort(path, evaluation=evaluation):
            if r.scan_id in seen:
                raise InputError(
                    f"scan {r.scan_id} is in two cohorts ({seen[r.scan_id]} and {path})",
                    path=path,
                    fix="pass each cohort once, or remove the duplicate scan",
                )
            seen[r.scan_id] = Path(path)
            records.append(r)
    return records


def split_by_patient(
    records: Sequence[ScanRecord], val_fraction: float, seed: int
) -> tuple[list[ScanRecord], list[ScanRecord]]:
    """Seeded patient-level split: no patient has scans on both sides; at least one patient each side."""
    patients = sorted({r.patient_id for r in records})
    if len(patients) < 2:
        raise InputError(
            f"a train/validation split needs at least 2 patients, got {len(patients)}",
            fix="add scans of more patients",
        )
    rng = np.random.default_rng(seed)
    order = list(rng.permutation(patients))
    n_val = min(len(patients) - 1, max(1, int(round(val_fraction * len(patients)))))
    val = set(order[:n_val])
    return [r for r in records if r.patient_id not in val], [r for r in records if r.patient_id in val]


def write_split(path: str | Path, train: Sequence[ScanRecord], val: Sequence[ScanRecord]) -> None:
    atomic_write_json(path, {"train": [r.scan_id for r in train], "val": [r.scan_id for r in val]})


def run_data_dirs(run_dir: str | Path) -> list[str]:
    """The cohort folders a training run was started on (its ``run.json``)."""
    info = json.loads((Path(run_dir) / "run.json").read_text())
    return list(info.get("data_dirs") or [info["data_dir"]])


def load_split(path: str | Path, records: Sequence[ScanRecord]) -> tuple[list[ScanRecord], list[ScanRecord]]:
    data = json.loads(Path(path).read_text())
    by_id = {r.scan_id: r for r in records}
    missing = [s for s in data["train"] + data["val"] if s not in by_id]
    if missing:
        raise InputError(
            f"split file names {len(missing)} scan(s) not in the cohort (e.g. {missing[0]})",
            path=path,
            fix="use the cohort the run was started on, or start a new run",
        )
    return [by_id[s] for s in data["train"]], [by_id[s] for s in data["val"]]
