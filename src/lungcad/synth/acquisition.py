"""The scanner: point-spread blur, dose-dependent correlated noise, metal streaks, FOV circle, gaps.

Order matters and follows the physics: noise is added *before* the blur, so the reconstruction kernel
shapes noise and anatomy alike (real CT noise is correlated over a few pixels, not white).  The noise is
drawn on a grid twice as coarse as the pixels (when pixels are below 0.9 mm) and interpolated, giving the
~2-pixel grain of a standard kernel for a quarter of the random numbers; its amplitude is calibrated from
the exact impulse response of "interpolate then blur" so the final standard deviation in a uniform region
is the sampled ``noise_std_hu`` (10-40 HU by default; std ~ 1 / sqrt(mAs)).

Blur: in-plane Gaussian of the kernel's FWHM (0.6-1.2 mm); along z the slice-sensitivity profile of the
slice thickness.  Lesions and vessels were already box-filtered over each voxel, so only 80% of the
thickness' FWHM is applied on top.  The z blur is written as a weighted sum of neighbouring slices because
``scipy.ndimage`` filtering along the slowest axis is ~3x slower (strided memory) than in-plane.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from lungcad.config import SynthConfig
from lungcad.synth.geometry import ScanGeometry
from lungcad.synth.thorax import upsample_linear
from lungcad.types import CTVolume

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
KERNELS = {"SOFT": (1.0, 1.25), "STANDARD": (0.8, 1.0), "LUNG": (0.6, 0.78)}  # in-plane FWHM range (mm)
HU_MIN, HU_MAX = -1024.0, 3071.0  # 12-bit CT range


@dataclass(frozen=True)
class Acquisition:
    """Sampled scanner settings and artefacts of one scan."""

    noise_std_hu: float
    kernel: str
    psf_fwhm_mm: float
    slice_thickness_mm: float
    kvp: float
    exposure_mas: float
    streak: dict | None  # {"slice": k, "row": r, "col": c, "half_slices": n, "amplitude": a, "lines": m}
    missing_slices: tuple[int, ...]

    def to_dict(self) -> dict:
        return {
            "noise_std_hu": self.noise_std_hu,
            "kernel": self.kernel,
            "psf_fwhm_mm": self.psf_fwhm_mm,
            "slice_thickness_mm": self.slice_thickness_mm,
            "kvp": self.kvp,
            "exposure_mas": self.exposure_mas,
            "streak": self.streak,
            "missing_slices": list(self.missing_slices),
        }


def sample_acquisition(cfg: SynthConfig, geom: ScanGeometry, rng: np.random.Generator) -> Acquisition:
    noise = float(rng.uniform(*cfg.noise_std_range_hu))
    kernel = str(rng.choice(list(KERNELS), p=[0.25, 0.5, 0.25]))
    fwhm = float(rng.uniform(*KERNELS[kernel]))
    kvp = float(rng.choice([100.0, 120.0, 140.0], p=[0.15, 0.7, 0.15]))
    mas = float(np.clip(round(120.0 * (20.0 / max(noise, 1.0)) ** 2), 10, 800))
    nz, ny, nx = geom.shape_zyx
    streak = None
    if rng.random() < cfg.p_streak:
        streak = {
            "slice": int(rng.integers(nz // 5, max(nz // 5 + 1, 4 * nz // 5))),
            "row": int(rng.integers(ny // 3, 2 * ny // 3)),
            "col": int(rng.integers(nx // 3, 2 * nx // 3)),
            "half_slices": int(rng.integers(2, 6)),
            "amplitude": float(rng.uniform(80.0, 300.0)),
            "lines": int(rng.integers(6, 14)),
        }
    missing: tuple[int, ...] = ()
    if rng.random() < cfg.p_missing_slice and nz >= 12:
        start = int(rng.integers(nz // 3, 2 * nz // 3))
        missing = tuple(range(start, start + int(rng.integers(1, 4))))
    return Acquisition(noise, kernel, fwhm, geom.slice_thickness_mm, kvp, mas, streak, missing)


def _gauss_taps(sigma: float) -> np.ndarray:
    """Normalised Gaussian taps (radius ceil(3 sigma)); a single 1 when sigma is negligible."""
    if sigma < 0.05:
        return np.ones(1)
    radius = int(np.ceil(3.0 * sigma))
    x = np.arange(-radius, radius + 1)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def blur_z(hu: np.ndarray, sigma_px: float) -> None:
    """In-place Gaussian blur along axis 0 (nearest-edge), as a weighted sum of whole slices.

    Slices are overwritten in order; the originals still needed below the current one are kept in a
    rolling buffer of ``radius`` slices, so no second volume is allocated.
    """
    taps = _gauss_taps(sigma_px)
    if len(taps) == 1:
        return
    radius = len(taps) // 2
    nz = hu.shape[0]
    saved: dict[int, np.ndarray] = {}

    def original(j: int) -> np.ndarray:
        j = min(max(j, 0), nz - 1)
        return saved[j] if j in saved else hu[j]

    for k in range(nz):
        acc = original(k) * np.float32(taps[radius])
        for j in range(1, radius + 1):
            acc += (original(k - j) + original(k + j)) * np.float32(taps[radius + j])
        saved[k] = hu[k].copy()
        saved.pop(k - radius - 1, None)
        hu[k] = acc


def _noise_gain(step: int, sig_yx: tuple[float, float], sig_z: float) -> float:
    """Mean output variance of unit white noise on a ``step``-coarse grid after interpolation and blur."""
    n = 9
    delta = np.zeros((n, n), dtype=np.float32)
    delta[n // 2, n // 2] = 1.0
    fine = upsample_linear(upsample_linear(delta, step, (n - 1) * step + 1, 0), step, (n - 1) * step + 1, 1)
    resp = ndimage.gaussian_filter(fine.astype(np.float64), sig_yx, mode="constant", truncate=4.0)
    inplane = float(np.sum(resp**2)) / step**2
    return inplane * float(np.sum(_gauss_taps(sig_z) ** 2))


def _streaks(volume: CTVolume, streak: dict, rng: np.random.Generator) -> None:
    """A dense metal object with radiating bright/dark streaks across a few slices (before blur)."""
    nz, ny, nx = volume.shape
    k0, r0, c0 = streak["slice"], streak["row"], streak["col"]
    rr, cc = np.mgrid[0:ny, 0:nx].astype(np.float32)
    sy, sx = volume.spacing_zyx_mm[1:]
    dy, dx = (rr - r0) * sy, (cc - c0) * sx
    dist = np.sqrt(dy * dy + dx * dx)
    angles = rng.uniform(0, np.pi, streak["lines"])
    signs = np.where(np.arange(streak["lines"]) % 2 == 0, 1.0, -1.0)
    pattern = np.zeros((ny, nx), dtype=np.float32)
    for theta, sgn in zip(angles, signs, strict=True):
        d_line = np.abs(dx * np.sin(theta) - dy * np.cos(theta))
        pattern += np.float32(sgn) * np.exp(-0.5 * (d_line / 0.9) ** 2) * (30.0 / (30.0 + dist))
    pattern *= np.float32(streak["amplitude"])
    metal = dist < 2.5
    n = streak["half_slices"]
    for k in range(max(0, k0 - n), min(nz, k0 + n + 1)):
        fade = np.float32(1.0 - abs(k - k0) / (n + 1))
        volume.hu[k] += pattern * fade
        if abs(k - k0) <= 1:
            volume.hu[k][metal] = 2500.0


def apply_acquisition(
    volume: CTVolume, geom: ScanGeometry, acq: Acquisition, rng: np.random.Generator
) -> None:
    """Streaks, noise, blur, FOV circle and HU clipping, in place on ``volume.hu``."""
    nz, ny, nx = volume.shape
    sz, sy, sx = volume.spacing_zyx_mm
    if acq.streak is not None:
        _streaks(volume, acq.streak, rng)
    sig_yx = (acq.psf_fwhm_mm * FWHM_TO_SIGMA / sy, acq.psf_fwhm_mm * FWHM_TO_SIGMA / sx)
    sig_z = 0.8 * acq.slice_thickness_mm * FWHM_TO_SIGMA / sz
    step = 2 if sy < 0.9 else 1
    amp = acq.noise_std_hu / np.sqrt(_noise_gain(step, sig_yx, sig_z))
    cy, cx = -(-(ny - 1) // step) + 1, -(-(nx - 1) // step) + 1
    for s in range(0, nz, 32):
        e = min(nz, s + 32)
        coarse = rng.standard_normal((e - s, cy, cx), dtype=np.float32)
        coarse *= np.float32(amp)
        noise = upsample_linear(upsample_linear(coarse, step, ny, 1), step, nx, 2)
        volume.hu[s:e] += noise
    for s in range(0, nz, 32):
        e = min(nz, s + 32)
        volume.hu[s:e] = ndimage.gaussian_filter(volume.hu[s:e], (0, *sig_yx), mode="nearest", truncate=3.0)
    blur_z(volume.hu, sig_z)
    # Outside the reconstruction circle the scanner has no data: constant air.
    rr, cc = np.mgrid[0:ny, 0:nx]
    outside = ((rr - (ny - 1) / 2) * sy) ** 2 + ((cc - (nx - 1) / 2) * sx) ** 2 > (0.5 * geom.fov_mm) ** 2
    volume.hu[:, outside] = -1000.0
    np.clip(volume.hu, HU_MIN, HU_MAX, out=volume.hu)
