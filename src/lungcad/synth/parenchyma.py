"""Correlated lung-parenchyma texture, and the parenchyma HU spread it is calibrated against.

Why: real lung parenchyma is not a flat -880 HU plus white noise.  Sub-resolution vessels, interlobular
septa and the reconstruction kernel give it a blotchy texture at several scales, and a detector trained on
smooth synthetic lungs fires on the faint dots that real parenchyma is full of.  Measured with
``parenchyma_iqr`` (the HU interquartile range of lung voxels below -500 HU, vessels excluded): LIDC-IDRI-0001
60 HU, the default synthetic scans ~44 HU (issue 10; ``scripts/measure_parenchyma.py`` prints both).

The texture is a sum of Gaussian-filtered noise fields (sigma 0.7, 2 and 6 mm, variance shares 0.1 / 0.35
/ 0.55: mostly coarse, since a fine-grained texture read as speckle beside a real slice) plus a faint web of
sheets where a band-pass field crosses zero (cells 1-2 cm across, the size of secondary pulmonary lobules, so
an axial cut shows thin septal lines).  The sum is scaled to
``amplitude_hu`` standard deviation inside the lungs and faded in over 3 mm from the pleura; voxels above
-600 HU (vessels, fissures, airway walls) are left alone.  The acquisition's blur then softens the finest
scale, so the measured spread grows by less than ``amplitude_hu`` alone would suggest (calibrated in
``configs/synth_realistic.yaml``).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lungcad.synth import anatomy as an
from lungcad.synth.anatomy import Anatomy
from lungcad.synth.geometry import ScanGeometry, body_shift, inplane_body_grid
from lungcad.synth.thorax import upsample_linear
from lungcad.types import CTVolume

SCALES_MM = ((0.7, 0.1), (2.0, 0.35), (6.0, 0.55))  # (sigma, share of the variance)
WEB_SHARE = 0.25  # web amplitude relative to amplitude_hu
PLEURA_FADE_MM = 3.0
VESSEL_CUTOFF_HU = -500.0  # parenchyma = lung voxels below this (the measurement's rule)


def lung_weight(volume: CTVolume, geom: ScanGeometry, anat: Anatomy, fade_mm: float) -> np.ndarray:
    """Float32 ``(z, y, x)`` in [0, 1]: 1 deeper than ``fade_mm`` inside the lungs, 0 outside.

    The lung signed distance is evaluated on a ~4 mm in-plane grid (it is smooth) and interpolated.
    """
    nz, ny, nx = volume.shape
    step = max(1, int(round(4.0 / volume.spacing_zyx_mm[1])))
    bx, by = inplane_body_grid(volume, geom.frame, step)
    zs = geom.body_z_of_slices()
    shift = body_shift(geom.frame, zs).astype(np.float32)
    out = np.empty((nz, ny, nx), dtype=np.float32)
    for k, z in enumerate(zs):
        x = bx + shift[k, 0]
        y = by + shift[k, 1]
        sdf, _ = anat.lung_sdf(x, y, np.full_like(x, np.float32(z)))
        w = an.smoothstep(-sdf, 0.0, fade_mm)[None]
        out[k] = upsample_linear(upsample_linear(w, step, ny, 1), step, nx, 2)[0]
    return out


def _filtered(shape: tuple[int, ...], sigma_vox: list[float], rng: np.random.Generator) -> np.ndarray:
    field = rng.standard_normal(shape, dtype=np.float32)
    return ndimage.gaussian_filter(field, sigma_vox, mode="wrap", truncate=3.0)


def texture_field(shape: tuple[int, int, int], spacing_zyx_mm, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance multi-scale texture ``(z, y, x)`` float32 (see module docstring)."""
    spacing = np.asarray(spacing_zyx_mm, dtype=np.float64)
    total = np.zeros(shape, dtype=np.float32)
    for sigma_mm, share in SCALES_MM:
        f = _filtered(shape, list(sigma_mm / spacing), rng)
        f *= np.float32(np.sqrt(share) / max(float(f.std()), 1e-6))
        total += f
    # Septal web: thin sheets where a band-pass field crosses zero (positive: septa are denser than air).
    band = _filtered(shape, list(3.0 / spacing), rng)
    band -= ndimage.gaussian_filter(band, list(6.0 / spacing), mode="wrap", truncate=2.0)
    band /= max(float(band.std()), 1e-6)
    web = np.exp(-((band / 0.25) ** 2), dtype=np.float32)
    web -= web.mean()
    total += np.float32(WEB_SHARE) * web / max(float(web.std()), 1e-6)
    total /= max(float(total.std()), 1e-6)
    return total


def add_parenchyma_texture(
    volume: CTVolume, geom: ScanGeometry, anat: Anatomy, amplitude_hu: float, rng: np.random.Generator
) -> None:
    """Add ``amplitude_hu`` (standard deviation) of correlated texture to the lung parenchyma, in place."""
    if amplitude_hu <= 0:
        return
    weight = lung_weight(volume, geom, anat, PLEURA_FADE_MM)
    # Leave vessels, fissures and airway walls alone (fading out between -650 and -600 HU).
    weight *= an.smoothstep(-volume.hu, 600.0, 650.0)
    field = texture_field(volume.shape, volume.spacing_zyx_mm, rng)
    hu = volume.hu  # a frozen dataclass: add in place into its buffer
    hu += np.float32(amplitude_hu) * weight * field


def parenchyma_iqr(volume: CTVolume, lung_mask: np.ndarray, erode_mm: float = 3.0) -> dict[str, float]:
    """HU quartiles of lung parenchyma: ``lung_mask`` voxels below -500 HU, ``erode_mm`` from its edge.

    Args:
        volume: the CT (HU).
        lung_mask: bool ``(z, y, x)``, the lungs (e.g. ``segment_lungs(volume).full_mask()``).
        erode_mm: drop this margin (pleura, chest wall partial volume).

    Returns:
        ``{"q1", "median", "q3", "iqr", "n"}`` in HU (n = voxels counted).  Morphology runs on every 2nd
        pixel in-plane (the quartiles of a regular subsample are those of the whole to < 1 HU).
    """
    hu = volume.hu[:, ::2, ::2]
    lungs = lung_mask[:, ::2, ::2] & (hu < VESSEL_CUTOFF_HU)
    sz, sy, _ = volume.spacing_zyx_mm
    r = [max(1, int(round(erode_mm / s))) for s in (sz, 2 * sy, 2 * sy)]
    zz, yy, xx = np.ogrid[-r[0] : r[0] + 1, -r[1] : r[1] + 1, -r[2] : r[2] + 1]
    ball = (zz / r[0]) ** 2 + (yy / r[1]) ** 2 + (xx / r[2]) ** 2 <= 1.0
    # Close first so the vessels the lungs surround do not punch erosion holes into the parenchyma.
    lungs = ndimage.binary_erosion(ndimage.binary_closing(lungs, ball), ball) & (hu < VESSEL_CUTOFF_HU)
    values = hu[lungs]
    if values.size == 0:
        raise ValueError("no lung parenchyma voxels below -500 HU inside the lung mask")
    q1, med, q3 = np.percentile(values, [25, 50, 75])
    return {
        "q1": float(q1),
        "median": float(med),
        "q3": float(q3),
        "iqr": float(q3 - q1),
        "n": int(values.size),
    }
