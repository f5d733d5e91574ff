"""The LUNA16 folder layout as the 10-fold protocol needs it: which scans lie in which ``subsetK``.

LUNA16 ships its 888 scans in ten folders ``subset0`` ... ``subset9`` (about 89 scans each) beside
``annotations.csv`` and ``annotations_excluded.csv``; the official protocol trains on nine subsets and
detects on the tenth.  :func:`read_luna16_layout` checks the layout once (missing subsets, an empty subset,
no ``annotations.csv``) and :func:`training_view` builds, for fold k, a folder that ``lungcad train`` reads
as an ordinary LUNA16 cohort holding only the other nine subsets.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from lungcad.annotations.luna16 import read_luna16_annotations, read_luna16_excluded
from lungcad.annotations.model import LunaAnnotation
from lungcad.data.cohort import read_luna16_cohort
from lungcad.data.records import ScanRecord
from lungcad.errors import InputError

N_FOLDS = 10
ANNOTATIONS = "annotations.csv"
EXCLUDED = "annotations_excluded.csv"


def subset_name(k: int) -> str:
    return f"subset{k}"


@dataclass(frozen=True)
class Luna16Layout:
    """A checked LUNA16 folder.

    Attributes:
        root: the folder holding ``subset0`` ... ``subset9`` and the CSVs.
        subsets: fold k -> the scans of ``subset<k>`` (sorted by series UID).
        annotations: ``annotations.csv`` rows (world mm, diameter mm).
        excluded: ``annotations_excluded.csv`` rows (empty when the file is absent).
        has_excluded: whether ``annotations_excluded.csv`` exists.
        n_outside: scans found below ``root`` but outside every subset folder (not used).
    """

    root: Path
    subsets: dict[int, list[ScanRecord]]
    annotations: list[LunaAnnotation]
    excluded: list[LunaAnnotation]
    has_excluded: bool
    n_outside: int


def _subset_of(root: Path, record: ScanRecord) -> int | None:
    first = Path(record.image_path).relative_to(root).parts[0]
    for k in range(N_FOLDS):
        if first == subset_name(k):
            return k
    return None


def read_luna16_layout(data_dir: str | Path) -> Luna16Layout:
    """Read and check a LUNA16 folder for the 10-fold protocol.

    Raises:
        InputError: the folder does not exist; subset folders are missing (all of them are named); a subset
            holds no scan; ``annotations.csv`` is missing.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise InputError("LUNA16 folder does not exist", path=root, fix="pass the folder holding subset0..9")
    missing = [subset_name(k) for k in range(N_FOLDS) if not (root / subset_name(k)).is_dir()]
    if missing:
        raise InputError(
            f"not a LUNA16 folder for the 10-fold protocol: missing {', '.join(missing)}",
            path=root,
            fix="pass the folder that holds all ten LUNA16 subsets (subset0 ... subset9, as unpacked from "
            "the challenge's subsetN.zip files)",
        )
    if not (root / ANNOTATIONS).is_file():
        raise InputError(
            f"{ANNOTATIONS} missing",
            path=root,
            fix=f"put the LUNA16 {ANNOTATIONS} (seriesuid,coordX,coordY,coordZ,diameter_mm) into the folder",
        )
    records = read_luna16_cohort(root)
    subsets: dict[int, list[ScanRecord]] = {k: [] for k in range(N_FOLDS)}
    n_outside = 0
    for rec in records:
        k = _subset_of(root, rec)
        if k is None:
            n_outside += 1
        else:
            subsets[k].append(rec)
    empty = [subset_name(k) for k, recs in subsets.items() if not recs]
    if empty:
        raise InputError(
            f"no scans (<seriesuid>.mhd with its .raw) in {', '.join(empty)}",
            path=root,
            fix="unpack the missing subsetN.zip files into their folders",
        )
    has_excluded = (root / EXCLUDED).is_file()
    return Luna16Layout(
        root=root,
        subsets={k: sorted(v, key=lambda r: r.scan_id) for k, v in subsets.items()},
        annotations=read_luna16_annotations(root / ANNOTATIONS),
        excluded=read_luna16_excluded(root / EXCLUDED) if has_excluded else [],
        has_excluded=has_excluded,
        n_outside=n_outside,
    )


def _link(target: Path, link: Path) -> None:
    """A symbolic link (a hard link, else a copy, where the file system has none)."""
    if link.exists() or link.is_symlink():
        return
    try:
        link.symlink_to(target.resolve())
    except OSError:
        try:
            os.link(target, link)
        except OSError:
            shutil.copy2(target, link)


def training_view(layout: Luna16Layout, fold: int, view: Path) -> Path:
    """A LUNA16-layout folder of every subset but ``fold``: links to the scan files and the CSVs.

    Links to files, not folders: ``Path.rglob`` (Python 3.11), which reads a LUNA16 cohort, does not descend
    into linked folders.  Each scan's ``.mhd`` and every file of the same stem (its ``.raw``) are linked side
    by side, so the header's relative ``ElementDataFile`` still resolves.  The series UID (the scan id) is
    unchanged, so the preprocessed-scan cache is shared between the folds.
    """
    for k, records in layout.subsets.items():
        if k == fold:
            continue
        folder = view / subset_name(k)
        folder.mkdir(parents=True, exist_ok=True)
        for rec in records:
            mhd = Path(rec.image_path)
            for part in mhd.parent.glob(f"{mhd.stem}.*"):
                _link(part, folder / part.name)
    for name in (ANNOTATIONS, EXCLUDED):
        if (layout.root / name).is_file():
            _link(layout.root / name, view / name)
    return view
