"""Preprocess each scan once and keep it on disk as memory-mapped arrays.

Layout of one entry, ``<cache_dir>/<scan_id>-<preprocess hash>/``::

    image.npy       float16 (z, y, x)  windowed [0, 1] volume on the 1 mm grid (half the disk of float32;
                                       float16 has 11 bits of mantissa: 0.0005 steps = 0.7 HU, below noise)
    lung.npy        uint8              lung mask
    seg.npy         uint8              nodule label mask (exact mask when the cohort has one, else balls)
    meta.json       geometry of the grid (origin, spacing, direction), nodules in grid voxels, QA verdict

The key holds the preprocessing config hash, so changing the window or spacing makes a new entry and
the second epoch of a run does no resampling at all.  Entries are written to a temporary folder and
renamed, so a crash never leaves a half-written entry that looks valid.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lungcad.annotations.masks import label_mask_on_grid
from lungcad.config import PreprocessConfig
from lungcad.data.records import NoduleGT, ScanRecord
from lungcad.fileio import temp_dir_for
from lungcad.io import load_ct
from lungcad.preprocess.pipeline import preprocess_ct
from lungcad.types import Grid, stable_hash

CACHE_VERSION = 3  # 2: lung mask no longer fills the mediastinum; 3: robust body, trachea out, masses in


@dataclass
class CachedScan:
    """A preprocessed scan opened from the cache (arrays are read-only memory maps)."""

    record: ScanRecord
    image: np.ndarray  # float16 (z, y, x)
    lung: np.ndarray  # uint8
    seg: np.ndarray  # uint8
    grid: Grid  # geometry of the arrays (their shape, spacing, origin, direction)
    nodules_zyx: np.ndarray  # (N, 3) float voxel centres in the grid
    diameters_mm: np.ndarray  # (N,)
    actionable: np.ndarray  # (N,) bool
    qa_verdict: str

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.image.shape)  # type: ignore[return-value]


def cache_key(record: ScanRecord, cfg: PreprocessConfig) -> str:
    payload = {
        "v": CACHE_VERSION,
        "pre": cfg.model_dump(mode="json"),
        "gt": [n.__dict__ for n in record.nodules],
    }
    safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in record.scan_id)[-80:]
    return f"{safe}-{stable_hash(payload)}"


def _write_entry(record: ScanRecord, cfg: PreprocessConfig, final: Path) -> None:
    volume = load_ct(record.image_path, gap_factor=cfg.gap_factor, min_slices=cfg.min_slices)
    pre = preprocess_ct(volume, cfg)
    grid = pre.volume.grid
    seg = label_mask_on_grid(grid, record.nodules, record.mask_path)
    tmp = temp_dir_for(final)  # built complete in here, then renamed: never a half-written entry
    try:
        np.save(tmp / "image.npy", pre.image.astype(np.float16))
        np.save(tmp / "lung.npy", pre.lung_mask.astype(np.uint8))
        np.save(tmp / "seg.npy", (seg > 0).astype(np.uint8))
        meta: dict[str, Any] = {
            "scan_id": record.scan_id,
            "spacing_zyx_mm": list(grid.spacing_zyx_mm),
            "origin_xyz_mm": list(grid.origin_xyz_mm),
            "direction": grid.direction.tolist(),
            "nodules_zyx": [list(grid.world_to_voxel(n.center_xyz_mm)) for n in record.nodules],
            "diameters_mm": [n.diameter_mm for n in record.nodules],
            "actionable": [bool(n.actionable) for n in record.nodules],
            "qa_verdict": pre.qa.verdict.value,
        }
        (tmp / "meta.json").write_text(json.dumps(meta))
        try:
            tmp.rename(final)
        except OSError:
            if not (final / "meta.json").exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process cached the same scan first: keep theirs
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class ScanCache:
    """Disk cache of preprocessed scans keyed by scan and preprocessing configuration."""

    def __init__(self, cache_dir: str | Path, cfg: PreprocessConfig | None = None) -> None:
        self.root = Path(cache_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self.cfg = cfg or PreprocessConfig()

    def path(self, record: ScanRecord) -> Path:
        return self.root / cache_key(record, self.cfg)

    def ensure(self, record: ScanRecord) -> Path:
        """Preprocess ``record`` unless its entry exists; return the entry folder."""
        final = self.path(record)
        if not (final / "meta.json").exists():
            _write_entry(record, self.cfg, final)
        return final

    def open(self, record: ScanRecord) -> CachedScan:
        entry = self.ensure(record)
        meta = json.loads((entry / "meta.json").read_text())
        image = np.load(entry / "image.npy", mmap_mode="r")
        grid = Grid(
            shape=image.shape,
            spacing_zyx_mm=tuple(meta["spacing_zyx_mm"]),
            origin_xyz_mm=tuple(meta["origin_xyz_mm"]),
            direction=np.asarray(meta["direction"]),
        )
        return CachedScan(
            record=record,
            image=image,
            lung=np.load(entry / "lung.npy", mmap_mode="r"),
            seg=np.load(entry / "seg.npy", mmap_mode="r"),
            grid=grid,
            nodules_zyx=np.asarray(meta["nodules_zyx"], dtype=np.float64).reshape(-1, 3),
            diameters_mm=np.asarray(meta["diameters_mm"], dtype=np.float64),
            actionable=np.asarray(meta["actionable"], dtype=bool),
            qa_verdict=meta["qa_verdict"],
        )


def nodules_of(scan: CachedScan) -> list[NoduleGT]:
    """The cached nodules back in world coordinates (for evaluation)."""
    world = scan.grid.voxel_to_world(scan.nodules_zyx) if len(scan.nodules_zyx) else np.zeros((0, 3))
    return [
        NoduleGT(tuple(float(v) for v in w), float(d), bool(a))
        for w, d, a in zip(world, scan.diameters_mm, scan.actionable, strict=True)
    ]
