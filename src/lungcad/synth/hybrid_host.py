"""A real CT as the background of hybrid scans: its lung at native resolution, its noise, blur and findings.

``analyse_host`` runs once per background and returns a ``Host`` that the site chooser
(``hybrid_sites``) and the renderer (``hybrid_render``) share:

* **Lung at native resolution.**  The project's own segmentation (``preprocess.lung_mask``) works on a
  ~2.5 mm grid.  Upsampled it is blocky (a 4-pixel staircase on 0.68 mm pixels), which is too coarse to put
  a 4 mm nodule "on the pleura".  So its interior (the coarse mask eroded by one coarse voxel) is kept
  whole, vessels included, and in the one-coarse-voxel band around its edge a native voxel is lung when it
  is aerated (< -400 HU): the boundary then follows the real pleura pixel by pixel.
* **Noise.**  Air outside the patient is useless on GE scans (clipped at -1024), so the noise is measured
  in uniform soft tissue (muscle, blood: 7 x 7-pixel patches entirely in [-150, 150] HU): the 25th
  percentile of the patch standard deviations (anatomy only adds variance, so low percentiles are the
  flat patches).  The grain is the median lag-1 correlation rho of those patches; Gaussian-filtered white
  noise of sigma s pixels has rho = exp(-1 / (4 s^2)), so s = sqrt(-1 / (4 ln rho)).  On LIDC-IDRI-0002:
  15.6 HU, rho 0.72 (s = 0.87 pixel).
* **Blur.**  The in-plane point-spread FWHM follows the reconstruction kernel named in the header
  (ConvolutionKernel (0018,1210)) with the phantom's own table (``acquisition.KERNELS``); along z the slice
  sensitivity profile is a box of the slice thickness (0018,0050), spacing as the fallback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from lungcad.annotations.luna16 import read_luna16_annotations, read_luna16_excluded
from lungcad.annotations.model import LunaAnnotation
from lungcad.errors import InputError, LungcadError
from lungcad.io import load_ct
from lungcad.preprocess.lung_mask import LungMask, segment_lungs
from lungcad.preprocess.lung_outline import lung_sides
from lungcad.types import CTVolume

AERATED_HU = -400.0  # below: lung parenchyma (partial-volumed vessel edges included); above: tissue
VESSEL_HU = -400.0  # inside the lung, above: vessel (or bronchial wall, or a lesion)
MIN_LUNG_ML = 200.0  # less than this is not a chest CT with lungs (a slab of 16 slices holds ~600 ml)
# Kernel name (upper case, substring) -> in-plane PSF FWHM (mm): the middle of ``acquisition.KERNELS``.
KERNEL_FWHM_MM = {"LUNG": 0.69, "BONE": 0.65, "SHARP": 0.65, "SOFT": 1.12, "STANDARD": 0.9, "B30": 0.9}
DEFAULT_FWHM_MM = 0.9


@dataclass(frozen=True)
class HostFinding:
    """A finding of the host scan in world mm (LUNA16 row): a real nodule or an excluded finding."""

    center_xyz_mm: tuple[float, float, float]
    diameter_mm: float  # -1: unknown (LUNA16 excluded findings)
    nodule: bool  # True: annotations.csv (a real nodule, positive); False: annotations_excluded.csv

    @property
    def radius_mm(self) -> float:
        return max(0.0, 0.5 * self.diameter_mm)


@dataclass(frozen=True, eq=False)
class Host:
    """A background scan ready for insertion (see module docstring)."""

    path: Path
    volume: CTVolume  # float32 HU (z, y, x)
    lungs: LungMask  # the coarse segmentation
    lung: np.ndarray  # bool (z, y, x) native: lung at native resolution
    coarse_depth_mm: np.ndarray  # float32 on lungs.grid: distance from each lung voxel to non-lung (mm)
    hilum: np.ndarray  # bool on lungs.grid: the medial, mid-height, mid-depth lung near each hilum
    noise_std_hu: float
    noise_sigma_px: float  # in-plane Gaussian that gives the host's noise grain to white noise
    psf_fwhm_mm: float
    slice_thickness_mm: float
    findings: tuple[HostFinding, ...] = field(default=())

    @property
    def series_uid(self) -> str:
        return self.volume.metadata.series_uid


def _psf_fwhm(kernel: str | None) -> float:
    name = (kernel or "").upper()
    for key, fwhm in KERNEL_FWHM_MM.items():
        if key in name:
            return fwhm
    return DEFAULT_FWHM_MM


def estimate_noise(hu: np.ndarray, rng: np.random.Generator, n: int = 20000) -> tuple[float, float]:
    """Noise std (HU) and in-plane grain (Gaussian sigma, pixels) from uniform soft-tissue patches.

    Falls back to aerated lung patches (< -750 HU) when fewer than 50 soft-tissue patches exist (a slab
    cut through the lungs only).  Raises ``ValueError`` when neither exists.
    """
    nz, ny, nx = hu.shape
    z = rng.integers(0, nz, n)
    y = rng.integers(3, ny - 3, n)
    x = rng.integers(3, nx - 3, n)
    off = np.arange(-3, 4)
    patches = hu[
        z[:, None, None], y[:, None, None] + off[None, :, None], x[:, None, None] + off[None, None, :]
    ]
    lo, hi = patches.min(axis=(1, 2)), patches.max(axis=(1, 2))
    for keep in ((lo > -150) & (hi < 150), (lo > -1000) & (hi < -750)):
        if keep.sum() >= 50:
            p = patches[keep].astype(np.float64)
            std = p.std(axis=(1, 2))
            sigma = float(np.percentile(std, 25))
            flat = p[std <= np.percentile(std, 50)]
            a = flat[:, :, :-1] - flat[:, :, :-1].mean(axis=(1, 2), keepdims=True)
            b = flat[:, :, 1:] - flat[:, :, 1:].mean(axis=(1, 2), keepdims=True)
            rho = float(
                np.median(
                    np.sum(a * b, axis=(1, 2)) / np.sqrt(np.sum(a * a, (1, 2)) * np.sum(b * b, (1, 2)) + 1e-9)
                )
            )
            rho = float(np.clip(rho, 0.05, 0.95))
            return sigma, float(np.sqrt(-1.0 / (4.0 * np.log(rho))))
    raise ValueError("no uniform soft-tissue or lung region to measure the noise in")


def _hilum(lungs: LungMask) -> np.ndarray:
    """Lung voxels near each hilum (coarse grid): per lung, the medial 30 % of its width, the middle
    35-75 % of its craniocaudal extent (from the lowest slice) and the middle 30-75 % front to back.

    A geometric definition, not a segmentation of the hilum: on a normal chest CT the pulmonary arteries
    and veins enter each lung there, so a nodule placed there and touching a vessel is perihilar.
    """
    sides = lung_sides(lungs.mask, lungs.body)
    out = np.zeros(lungs.mask.shape, dtype=bool)
    mid_x = lungs.mask.shape[2] / 2.0
    for s in (1, 2):
        idx = np.nonzero(sides == s)
        if idx[0].size == 0:
            continue
        (z0, z1), (y0, y1), (x0, x1) = ((int(i.min()), int(i.max())) for i in idx)
        width = x1 - x0 + 1
        medial_low = abs(x1 - mid_x) < abs(x0 - mid_x)  # this lung's medial edge is its high-x edge
        xs = (x1 - 0.3 * width, x1 + 1) if medial_low else (x0, x0 + 0.3 * width)
        zs = (z0 + 0.35 * (z1 - z0), z0 + 0.75 * (z1 - z0))
        ys = (y0 + 0.3 * (y1 - y0), y0 + 0.75 * (y1 - y0))
        zz, yy, xx = idx
        keep = (xx >= xs[0]) & (xx < xs[1]) & (zz >= zs[0]) & (zz <= zs[1]) & (yy >= ys[0]) & (yy <= ys[1])
        out[zz[keep], yy[keep], xx[keep]] = True
    return out


def _native_lung(volume: CTVolume, lungs: LungMask) -> np.ndarray:
    """The lung at native resolution (module docstring)."""
    inner = ndimage.binary_erosion(lungs.mask, iterations=1)
    outer = ndimage.binary_dilation(lungs.mask, iterations=1) & lungs.body
    up = LungMask(inner, lungs.body, lungs.grid, lungs.factors, lungs.full_shape, 0, False, 0.0)
    lung = up.full_mask()
    band = LungMask(outer & ~inner, lungs.body, lungs.grid, lungs.factors, lungs.full_shape, 0, False, 0.0)
    lung |= band.full_mask() & (volume.hu < AERATED_HU)
    return lung


def read_host_findings(folder: str | Path | None, series_uid: str) -> tuple[HostFinding, ...]:
    """The rows of ``folder/annotations.csv`` and ``folder/annotations_excluded.csv`` for ``series_uid``.

    Raises:
        InputError: ``folder`` is given but holds neither file.
    """
    if folder is None:
        return ()
    root = Path(folder)
    ann, exc = root / "annotations.csv", root / "annotations_excluded.csv"
    if not ann.is_file() and not exc.is_file():
        raise InputError(
            "background annotations folder holds neither annotations.csv nor annotations_excluded.csv",
            path=root,
            fix="point --background-annotations at a LUNA16-layout folder (e.g. ../shared/data/luna16)",
        )
    rows: list[tuple[LunaAnnotation, bool]] = []
    if ann.is_file():
        rows += [(r, True) for r in read_luna16_annotations(ann) if r.seriesuid == series_uid]
    if exc.is_file():
        rows += [(r, False) for r in read_luna16_excluded(exc) if r.seriesuid == series_uid]
    return tuple(HostFinding(r.center_xyz_mm, float(r.diameter_mm), nod) for r, nod in rows)


def analyse_host(path: str | Path, annotations: str | Path | None = None, seed: int = 0) -> Host:
    """Load ``path`` (DICOM folder or file, .mhd, .nii.gz) and prepare it as a background.

    Raises:
        InputError: the path is missing or not a CT, or no lung (>= ``MIN_LUNG_ML``) is found in it.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(
            "background scan not found", path=p, fix="give an existing DICOM folder or .mhd file"
        )
    try:
        volume = load_ct(p)
    except InputError:
        raise
    except (LungcadError, OSError, ValueError, RuntimeError) as exc:
        raise InputError(
            f"background is not a readable CT ({exc})", path=p, fix="give a CT DICOM series folder or .mhd"
        ) from exc
    if volume.shape[0] < 4:
        raise InputError(
            f"background has {volume.shape[0]} slices; hybrid insertion needs >= 4",
            path=p,
            fix="give a chest CT series (a slab of a few cm at least)",
        )
    lungs = segment_lungs(volume)
    if lungs.volume_ml < MIN_LUNG_ML:
        raise InputError(
            f"no lung found in the background ({lungs.volume_ml:.0f} ml < {MIN_LUNG_ML:.0f} ml)",
            path=p,
            fix="give a chest CT that covers the lungs (lung window shows aerated lung)",
        )
    try:
        noise, grain = estimate_noise(volume.hu, np.random.default_rng(seed))
    except ValueError as exc:
        raise InputError(
            f"background: {exc}", path=p, fix="give a chest CT, not a phantom or a mask"
        ) from exc
    depth = ndimage.distance_transform_edt(lungs.mask, sampling=lungs.grid.spacing_zyx_mm).astype(np.float32)
    meta = volume.metadata
    return Host(
        path=p,
        volume=volume,
        lungs=lungs,
        lung=_native_lung(volume, lungs),
        coarse_depth_mm=depth,
        hilum=_hilum(lungs),
        noise_std_hu=noise,
        noise_sigma_px=grain,
        psf_fwhm_mm=_psf_fwhm(meta.kernel),
        slice_thickness_mm=float(meta.slice_thickness_mm or volume.spacing_zyx_mm[0]),
        findings=read_host_findings(annotations, meta.series_uid),
    )
