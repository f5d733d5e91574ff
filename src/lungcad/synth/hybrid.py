"""Hybrid training scans: synthetic nodules inserted into real CT backgrounds (``synth --background``).

For each background (a real chest CT a user points at, ideally nodule-free) ``n_per_background`` hybrid
scans are written, each a copy of the background with 0 to ``cfg.nodules_per_scan_max`` synthetic
nodules (textures, shapes and diameters drawn as ``lungcad synth`` draws them, from ``cfg``) at real sites
(``hybrid_sites``), imaged with the host's blur, slice profile and noise and composited in
(``hybrid_render``).  The host's own findings stay in the ground truth: its real nodules (from
``annotations.csv``) are positives (a label-mask ball of their diameter, clipped to tissue above
-600 HU) and its LUNA16 excluded findings go to ``annotations_excluded.csv``.

The folder has the layout of ``lungcad synth --format mhd`` (``lungcad.synth.cohort``), so ``lungcad
train --data`` and ``lungcad evaluate --data`` read it unchanged (``data.cohort.read_synthetic_cohort``)::

    manifest.json  annotations.csv  annotations_excluded.csv  seriesuids.csv
    scans/HYB-0000/<new series uid>.mhd + .raw   label.nii.gz   scan.json

Each scan has a new series UID; its manifest entry records the background (path, original series UID),
the host's measured noise and blur, and each nodule's ``site`` (isolated, juxtavascular, juxtapleural,
perihilar) and ``source`` (``inserted`` or ``host``).  No LIDC XML is written (no simulated readers: every
inserted nodule >= 3 mm is accepted).  Deterministic: scan ``j`` of background ``b`` depends only on
``(seed, b, j)`` and the background.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from lungcad.annotations.lungrads import is_actionable, lung_rads_category
from lungcad.config import SynthConfig
from lungcad.errors import InputError
from lungcad.fileio import atomic_write_json
from lungcad.io.dicom_write import derive_series_uids
from lungcad.io.image import save_volume
from lungcad.log import get_logger, log_stage
from lungcad.synth.cohort import MANIFEST, PARTIAL, sha256_file, write_luna16_lists
from lungcad.synth.hybrid_host import Host, analyse_host
from lungcad.synth.hybrid_render import insert_lesion
from lungcad.synth.hybrid_sites import DEFAULT_SITE_MIX, SITE_KINDS, SiteChooser, SiteKind
from lungcad.synth.nodules import (
    NoduleLocation,
    NoduleShape,
    NoduleSpec,
    _finish,
    _pick,
    _shape_parts,
    _texture_hu,
    sample_diameter,
)
from lungcad.types import CTVolume, Texture, stable_hash

HYBRID_VERSION = "1.0"
HOST_NODULE_HU = -600.0  # a host nodule's label: its ball, where the tissue is denser than this
_LOCATION = {
    SiteKind.ISOLATED: NoduleLocation.ISOLATED,
    SiteKind.JUXTAVASCULAR: NoduleLocation.JUXTAVASCULAR,
    SiteKind.PERIHILAR: NoduleLocation.JUXTAVASCULAR,  # a juxtavascular nodule at the hilum
    SiteKind.JUXTAPLEURAL: NoduleLocation.JUXTAPLEURAL,
}


def _n_nodules(cfg: SynthConfig, rng: np.random.Generator) -> int:
    """As ``nodules.sample_lesions``: none with ``p_no_nodule``, else 1..max with p ~ 0.6^k."""
    if cfg.nodules_per_scan_max == 0 or rng.random() < cfg.p_no_nodule:
        return 0
    k = np.arange(1, cfg.nodules_per_scan_max + 1)
    p = 0.6**k
    return int(rng.choice(k, p=p / p.sum()))


def sample_spec(
    cfg: SynthConfig, chooser: SiteChooser, site: SiteKind, rng: np.random.Generator, contrast: bool
) -> NoduleSpec | None:
    """One nodule (texture, shape, diameter from ``cfg``) at a site of kind ``site``, or None (no room)."""
    texture = Texture(_pick(rng, cfg.texture_mix))
    shape = NoduleShape(_pick(rng, cfg.shape_mix))
    lo, hi = cfg.diameter_range_mm
    d = sample_diameter(rng, lo, hi, cfg.diameter_power)
    if texture == Texture.CALCIFIED and d > 12.0:
        d = float(rng.uniform(lo, max(lo, min(hi, 12.0))))
    centre = chooser.choose(site, d / 2)
    if centre is None:
        return None
    spec = NoduleSpec(
        centre=centre,
        diameter_mm=d,
        texture=texture,
        shape=shape,
        location=_LOCATION[site],
        **_shape_parts(rng, d / 2, shape),
        **_texture_hu(rng, texture, d, contrast),
    )
    return _finish(spec, rng)


def _nodule_entry(spec: NoduleSpec, label: int, voxels: int, voxel_mm3: float, site: str, vol) -> dict:
    solid = spec.core_fraction * spec.diameter_mm if spec.texture == Texture.PART_SOLID else None
    category = lung_rads_category(spec.diameter_mm, spec.texture, solid)
    centre = [float(v) for v in spec.centre]
    return {
        "label": label,
        "center_xyz_mm": centre,
        "center_zyx_vox": [float(v) for v in vol.world_to_voxel(np.asarray(centre))],
        "diameter_mm": float(spec.diameter_mm),
        "volume_mm3": voxels * voxel_mm3,
        "texture": spec.texture.value,
        "shape": spec.shape.value,
        "location": spec.location.value,
        "fissure": False,
        "malignancy": spec.malignancy,
        "lung_rads": category.value,
        "actionable": is_actionable(category, spec.malignancy),
        "characteristics": dict(spec.characteristics),
        "micronodule": False,
        "readers_contoured": 0,
        "readers_pointed": 0,
        "accepted": spec.diameter_mm >= 3.0,
        "site": site,
        "source": "inserted",
    }


def _host_nodules(host: Host, label: np.ndarray, first_label: int) -> list[dict]:
    """The host's real nodules as manifest entries, each labelled as its ball where tissue > -600 HU."""
    vol = host.volume
    sp = np.asarray(vol.spacing_zyx_mm)
    out = []
    for i, f in enumerate(x for x in host.findings if x.nodule):
        value = first_label + i
        c = vol.world_to_voxel(np.asarray(f.center_xyz_mm))
        half = np.ceil(f.radius_mm / sp).astype(int) + 1
        lo = np.clip(np.floor(c).astype(int) - half, 0, vol.shape)
        hi = np.clip(np.ceil(c).astype(int) + half + 1, 0, vol.shape)
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
        g = np.meshgrid(
            *[(np.arange(a, b) - cv) * s for a, b, cv, s in zip(lo, hi, c, sp, strict=True)], indexing="ij"
        )
        ball = g[0] ** 2 + g[1] ** 2 + g[2] ** 2 <= f.radius_mm**2
        dense = ball & (vol.hu[box] > HOST_NODULE_HU)
        mask = (dense if dense.any() else ball) & (label[box] == 0)
        label[box][mask] = value
        cat = lung_rads_category(f.diameter_mm, Texture.SOLID)
        out.append(
            {
                "label": value,
                "center_xyz_mm": list(f.center_xyz_mm),
                "center_zyx_vox": [float(v) for v in c],
                "diameter_mm": f.diameter_mm,
                "volume_mm3": float(mask.sum() * np.prod(sp)),
                "texture": None,
                "actionable": is_actionable(cat),
                "micronodule": False,
                "accepted": True,
                "site": "host",
                "source": "host",
            }
        )
    return out


def generate_hybrid_scan(
    host: Host,
    cfg: SynthConfig,
    seed: int,
    background_index: int,
    index: int,
    scan_index: int,
    site_mix: dict[str, float],
) -> tuple[CTVolume, np.ndarray, dict[str, Any]]:
    """One hybrid scan in memory: ``(volume int16-valued float32, label uint8, manifest entry)``."""
    rng = np.random.default_rng([seed, background_index, index])
    vol = host.volume
    hu = vol.hu.copy()
    label = np.zeros(vol.shape, dtype=np.uint8)
    chooser = SiteChooser(host, rng)
    contrast = bool(vol.metadata.contrast_agent)
    nodules = []
    voxel_mm3 = float(np.prod(vol.spacing_zyx_mm))
    for _ in range(_n_nodules(cfg, rng)):
        site = SiteKind(_pick(rng, site_mix))
        spec = sample_spec(cfg, chooser, site, rng, contrast)
        if spec is None:
            continue
        done = insert_lesion(host, hu, label, spec, len(nodules) + 1, rng)
        if done is not None and done.voxels > 0:
            nodules.append(_nodule_entry(spec, len(nodules) + 1, done.voxels, voxel_mm3, site.value, vol))
    nodules += _host_nodules(host, label, len(nodules) + 1)
    settings = stable_hash(cfg.generation_dict())
    uid_seed = f"lungcad-hybrid/{HYBRID_VERSION}/{settings}/{seed}/{host.series_uid}/{index}"
    uids = derive_series_uids(uid_seed, vol.shape[0])
    scan_id = f"HYB-{scan_index:04d}"
    meta = replace(
        vol.metadata,
        series_uid=uids.series_uid,
        study_uid=uids.study_uid,
        sop_uids=(),
        series_description=f"lungcad hybrid {scan_id}",
        source_format="array",
        slice_report=None,
    )
    out_vol = CTVolume(hu, vol.spacing_zyx_mm, vol.origin_xyz_mm, vol.direction, meta)
    uid = uids.series_uid
    excluded = [list(f.center_xyz_mm) + [f.diameter_mm] for f in host.findings if not f.nodule]
    entry = {
        "index": scan_index,
        "scan_id": scan_id,
        # Hybrids of one background are one patient: a patient split keeps them on one side.
        "patient_id": f"HOST-{host.series_uid[-12:]}",
        "series_uid": uid,
        "study_uid": uids.study_uid,
        "params": {
            "scan_id": scan_id,
            "uid_seed": uid_seed,
            "background": str(host.path),
            "background_series_uid": host.series_uid,
            "background_index": background_index,
            "hybrid_index": index,
            "shape_zyx": list(vol.shape),
            "spacing_zyx_mm": list(vol.spacing_zyx_mm),
            "origin_xyz_mm": list(vol.origin_xyz_mm),
            "direction": np.asarray(vol.direction).ravel().tolist(),
            "host_noise_std_hu": host.noise_std_hu,
            "host_noise_sigma_px": host.noise_sigma_px,
            "host_psf_fwhm_mm": host.psf_fwhm_mm,
            "host_slice_thickness_mm": host.slice_thickness_mm,
            "kernel": vol.metadata.kernel,
        },
        "nodules": nodules,
        "annotations": [n["center_xyz_mm"] + [n["diameter_mm"]] for n in nodules if n["accepted"]],
        "excluded": excluded,
    }
    return out_vol, label, entry


def _write_scan(volume: CTVolume, label: np.ndarray, entry: dict[str, Any], out: Path) -> dict[str, Any]:
    folder = out / "scans" / entry["scan_id"]
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    mhd = folder / f"{entry['series_uid']}.mhd"
    save_volume(volume, mhd, array=volume.hu.astype(np.int16))
    mask = folder / "label.nii.gz"
    save_volume(volume, mask, array=label)
    entry = entry | {"mhd": str(mhd.relative_to(out)), "mask": str(mask.relative_to(out))}
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "scan.json")
    entry["files"] = {str(p.relative_to(out)): sha256_file(p) for p in files}
    atomic_write_json(folder / "scan.json", entry, indent=1, sort_keys=True)
    return entry


def generate_hybrid_cohort(
    backgrounds: Sequence[str | Path],
    out: str | Path,
    cfg: SynthConfig,
    n_per_background: int,
    seed: int,
    host_annotations: str | Path | None = None,
    *,
    site_mix: dict[str, float] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write ``n_per_background`` hybrid scans per background into ``out`` (module docstring).

    Args:
        backgrounds: real CT scans (DICOM folders or files, .mhd, .nii.gz).
        out: output folder (created).
        cfg: nodule settings (``texture_mix``, ``shape_mix``, ``diameter_range_mm``, ``diameter_power``,
            ``nodules_per_scan_max``, ``p_no_nodule``); the phantom's geometry settings are not used.
        n_per_background: hybrid scans per background, >= 1.
        seed: the cohort seed.
        host_annotations: folder with LUNA16 ``annotations.csv`` / ``annotations_excluded.csv``: the
            rows of each background's series UID become its real nodules and excluded findings.
        site_mix: relative weights of the site kinds (default ``DEFAULT_SITE_MIX``).
        overwrite: allow writing into a folder that holds a cohort.

    Returns:
        The manifest (also ``out/manifest.json``, written last).

    Raises:
        InputError: no background, bad count, a background that is missing / not a CT / has no lung, a
            bad site mix, or ``out`` already holds a cohort.
    """
    if not backgrounds:
        raise InputError("no background scan given", fix="pass --background SCAN (a DICOM folder or .mhd)")
    if n_per_background < 1:
        raise InputError(
            f"--n must be >= 1 with --background, got {n_per_background}", fix="use --n 1 or more"
        )
    mix = dict(site_mix or DEFAULT_SITE_MIX)
    bad = sorted(set(mix) - set(SITE_KINDS))
    if bad or not mix or sum(mix.values()) <= 0 or min(mix.values()) < 0:
        raise InputError(
            f"site mix must weight {SITE_KINDS} (>= 0, not all 0), got {mix}", fix="fix site_mix"
        )
    root = Path(out)
    if (root / MANIFEST).exists() and not overwrite:
        raise InputError(
            "output folder already holds a cohort (manifest.json)",
            path=root,
            fix="choose an empty folder or pass --overwrite",
        )
    hosts_seen = [Path(b) for b in backgrounds]
    for b in hosts_seen:
        if not b.exists():
            raise InputError(
                "background scan not found", path=b, fix="give an existing DICOM folder or .mhd file"
            )
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_json(root / PARTIAL, {"generator": "lungcad synth --background"}, indent=1)
    (root / MANIFEST).unlink(missing_ok=True)
    log = get_logger("lungcad.synth")
    entries: list[dict[str, Any]] = []
    start = time.perf_counter()
    for bi, path in enumerate(hosts_seen):
        t0 = time.perf_counter()
        host = analyse_host(path, host_annotations, seed)
        log_stage("hybrid_host", time.perf_counter() - t0, "lungcad.synth", background=bi)
        for j in range(n_per_background):
            t1 = time.perf_counter()
            vol, label, entry = generate_hybrid_scan(host, cfg, seed, bi, j, len(entries), mix)
            entries.append(_write_scan(vol, label, entry, root))
            log_stage("hybrid_scan", time.perf_counter() - t1, "lungcad.synth", index=entry["index"])
    top = write_luna16_lists(entries, root)
    manifest = {
        "generator": "lungcad synth --background",
        "generator_version": HYBRID_VERSION,
        "format": "mhd",
        "config": cfg.model_dump(mode="json") | {"seed": seed},
        "backgrounds": [str(p) for p in hosts_seen],
        "site_mix": mix,
        "n_scans": len(entries),
        "files": {name: sha256_file(root / name) for name in top},
        "scans": entries,
    }
    atomic_write_json(root / MANIFEST, manifest, indent=1, sort_keys=True)
    (root / PARTIAL).unlink(missing_ok=True)
    log.info("synth.hybrid.done", scans=len(entries), seconds=round(time.perf_counter() - start, 1))
    return manifest
