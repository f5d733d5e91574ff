"""Render a synthetic lesion on a fine grid, image it the way the host scanner would, composite it in.

1. **Fine grid.**  The lesion (a ``NoduleSpec``) is drawn by the phantom's own ``lesions.render_lesion``
   on a grid aligned with the host's: each host pixel split into ``FINE_XY`` x ``FINE_XY`` and each slice
   step into ``kz = ceil(dz / 0.5 mm)`` sub-slices, over the lesion's box plus the PSF and slice-profile
   margins.  Its occupancy is clipped to the host's native lung (the part of a juxtapleural nodule beyond
   the pleura is chest wall, as in the phantom).  It is drawn onto -1024 HU, so the fine image minus -1024
   is ``occ * (hu + 1024)``: the lesion's "mass", linear in what the scanner integrates.
2. **Host imaging.**  In-plane: the kernel's Gaussian PSF on the fine grid, then the mean over each host
   pixel (detector-pixel integration).  Along z: the slice sensitivity profile, a box of the slice
   *thickness* centred on each slice (thickness > spacing on overlapping reconstructions), as the overlap of
   each sub-slice with it.  ``a`` = imaged occupancy, ``m`` = imaged mass, lesion HU ``L = m / a - 1024``.
3. **Composite** (why this rule).  A voxel's signal is the mix of what it holds: ``(1 - w) S + w L`` with
   ``S`` the host's noise-free signal (estimated by a 1-pixel Gaussian in-plane) and ``w = a`` -- except
   where the host is brighter than the lesion (a vessel inside ground glass), where the lesion does not
   displace it: ``w = a * clip((L - S) / 100 + 0.5, 0, 1)``, the smooth form of the phantom's "brighter
   wins" rule.  Noise: the host's own noise ``host - S`` stays with weight ``1 - w``, and new noise ``n`` of
   the host's std and grain is added with weight ``g = sqrt(1 - (1 - w)^2)`` so the variance stays
   ``sigma^2`` everywhere (``(1 - w)^2 + g^2 = 1``): a solid lesion is exactly as noisy as the tissue around
   it, never smoother.  ``out = S + w (L - S) + (1 - w)(host - S) + g n``, i.e. ``host`` wherever ``w = 0``.
4. **Label.**  The fine occupancy averaged over each host voxel's own extent (pixel x slice spacing, no
   PSF) >= 0.5, as ``lungcad synth`` labels (plus the centre voxel of a sub-voxel lesion).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from lungcad.synth.acquisition import FWHM_TO_SIGMA, HU_MAX, HU_MIN
from lungcad.synth.geometry import BodyFrame
from lungcad.synth.hybrid_host import Host
from lungcad.synth.lesions import _extent, render_lesion
from lungcad.synth.nodules import NoduleSpec
from lungcad.types import CTVolume

FINE_XY = 2  # sub-pixels per host pixel and axis
FINE_Z_MM = 0.5  # sub-slice step at most
FLOOR_HU = -1024.0


class _HostLungSdf:
    """The ``Anatomy.lung_sdf`` interface ``render_lesion`` clips with, answered by the host's native lung:
    -1 inside, +1 outside (only the sign matters there).  World = body (identity ``BodyFrame``)."""

    def __init__(self, host: Host) -> None:
        self.host = host

    def lung_sdf(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, None]:
        vol = self.host.volume
        idx = np.rint(vol.world_to_voxel(np.stack([x, y, z], axis=1))).astype(np.int64)
        shape = np.asarray(vol.shape)
        ok = np.all((idx >= 0) & (idx < shape), axis=1)
        inside = np.zeros(len(idx), dtype=bool)
        inside[ok] = self.host.lung[idx[ok, 0], idx[ok, 1], idx[ok, 2]]
        return np.where(inside, -1.0, 1.0), None


@dataclass(frozen=True)
class Inserted:
    """What one insertion changed: the host box, the label voxels written, imaged occupancy there."""

    box: tuple[slice, slice, slice]
    voxels: int
    occupancy: np.ndarray  # float32 (box shape): imaged occupancy ``a``


def _z_profile(fine_z: np.ndarray, dzf: float, host_z: np.ndarray, width: float) -> np.ndarray:
    """``(n_host, n_fine)`` weights: overlap of each sub-slice with a box of ``width`` mm centred on each
    host slice, divided by ``width`` (a uniform occupancy 1 images to 1 when fully covered)."""
    lo = np.maximum(fine_z[None, :] - dzf / 2, host_z[:, None] - width / 2)
    hi = np.minimum(fine_z[None, :] + dzf / 2, host_z[:, None] + width / 2)
    return np.clip(hi - lo, 0.0, None) / width


def _image(fine: np.ndarray, wz: np.ndarray, sigma_fine_px: float | None) -> np.ndarray:
    """Fine ``(fz, fy, fx)`` -> host ``(hz, fy/k, fx/k)``: in-plane PSF (optional), pixel mean, z profile."""
    if sigma_fine_px:
        fine = ndimage.gaussian_filter(fine, (0, sigma_fine_px, sigma_fine_px), mode="constant", truncate=3.0)
    fz, fy, fx = fine.shape
    k = FINE_XY
    pix = fine.reshape(fz, fy // k, k, fx // k, k).mean(axis=(2, 4))
    return np.tensordot(wz, pix, axes=(1, 0)).astype(np.float32)


def insert_lesion(
    host: Host,
    hu: np.ndarray,
    label: np.ndarray,
    spec: NoduleSpec,
    value: int,
    rng: np.random.Generator,
) -> Inserted | None:
    """Insert ``spec`` (centre in world mm: the body frame is the identity) into ``hu`` and ``label``.

    Args:
        host: the background (grid, lung, noise, blur).
        hu: float32 (z, y, x) image being built (a copy of the host), modified in place.
        label: uint8 (z, y, x) label mask, modified in place (value ``value``, only where still 0).
        spec: the lesion.
        value: its label value.
        rng: the stream for its texture and noise.

    Returns:
        ``Inserted`` or ``None`` when the lesion misses the grid.
    """
    vol = host.volume
    sz, sy, sx = vol.spacing_zyx_mm
    shape = np.asarray(vol.shape)
    kz = max(1, int(np.ceil(sz / FINE_Z_MM)))
    thick = max(host.slice_thickness_mm, 1e-3)
    psf_sigma_mm = host.psf_fwhm_mm * FWHM_TO_SIGMA
    c = vol.world_to_voxel(np.asarray(spec.centre, dtype=np.float64))
    ext = _extent(spec)
    margin_xy = (ext + 3.0 * psf_sigma_mm) / np.array([sy, sx]) + 2
    margin_z = (ext + 0.5 * max(thick, sz)) / sz + 2
    lo = np.floor(c - np.array([margin_z, *margin_xy])).astype(int)
    hi = np.ceil(c + np.array([margin_z, *margin_xy])).astype(int) + 1
    lo, hi = np.clip(lo, 0, shape), np.clip(hi, 0, shape)
    if np.any(hi - lo < 1):
        return None
    n = hi - lo
    # Sub-slices cover the host box plus half a slice profile on either side (rendered, then integrated).
    pad = int(np.ceil(0.5 * max(thick - sz, 0.0) / sz))
    z0 = lo[0] - pad
    nfz = (n[0] + 2 * pad) * kz
    origin_idx = np.array([z0 - 0.5 + 0.5 / kz, lo[1] - 0.5 + 0.5 / FINE_XY, lo[2] - 0.5 + 0.5 / FINE_XY])
    fine_sp = (sz / kz, sy / FINE_XY, sx / FINE_XY)
    fine = CTVolume(
        np.full((nfz, n[1] * FINE_XY, n[2] * FINE_XY), FLOOR_HU, dtype=np.float32),
        fine_sp,
        tuple(float(v) for v in vol.voxel_to_world(origin_idx)),
        vol.direction,
        vol.metadata,
    )
    fine_label = np.zeros(fine.shape, dtype=np.uint8)
    frame = BodyFrame(np.zeros(3), np.eye(3))
    drawn = render_lesion(fine, fine_label, frame, _HostLungSdf(host), spec, 1, rng)  # type: ignore[arg-type]
    if drawn is None:
        return None
    occ_f = np.zeros(fine.shape, dtype=np.float32)
    occ_f[drawn.box] = drawn.occupancy
    mass_f = fine.hu - np.float32(FLOOR_HU)
    fine_z = (z0 - 0.5 + (np.arange(nfz) + 0.5) / kz) * sz
    host_z = np.arange(lo[0], hi[0]) * sz
    w_img = _z_profile(fine_z, sz / kz, host_z, thick)
    sig = psf_sigma_mm / fine_sp[1]
    a = np.clip(_image(occ_f, w_img, sig), 0.0, 1.0)
    m = _image(mass_f, w_img, sig)
    vox_occ = _image(occ_f, _z_profile(fine_z, sz / kz, host_z, sz), None)

    box = tuple(slice(int(s), int(e)) for s, e in zip(lo, hi, strict=True))
    host_box = hu[box]
    smooth = ndimage.gaussian_filter(host_box, (0, 1.0, 1.0), mode="nearest")
    lesion = np.where(a > 1e-4, m / np.maximum(a, 1e-4) + np.float32(FLOOR_HU), smooth)
    w = a * np.clip((lesion - smooth) / 100.0 + 0.5, 0.0, 1.0)
    w[a < 1e-3] = 0.0  # the far tails of the PSF: leave the host bit-exact there
    white = rng.standard_normal(host_box.shape, dtype=np.float32)
    s = host.noise_sigma_px
    noise = ndimage.gaussian_filter(white, (0, s, s), mode="wrap", truncate=3.0)
    noise *= np.float32(host.noise_std_hu / max(float(_unit_gain(s)), 1e-6))
    g = np.sqrt(np.clip(1.0 - (1.0 - w) ** 2, 0.0, 1.0))
    out = host_box + w * (lesion - smooth) - w * (host_box - smooth) + g * noise
    changed = w > 0
    host_box[changed] = np.clip(np.rint(out[changed]), HU_MIN, HU_MAX)

    mask = vox_occ >= 0.5
    cv = tuple(int(v) for v in np.rint(c).astype(int) - lo)
    if all(0 <= v < k for v, k in zip(cv, mask.shape, strict=True)) and vox_occ[cv] > 0:
        mask[cv] = True
    lab = label[box]
    mask &= lab == 0
    lab[mask] = value
    return Inserted(box, int(mask.sum()), a)


def _unit_gain(sigma_px: float) -> float:
    """Std of unit white noise after the in-plane Gaussian of ``sigma_px`` (truncate 3): the root of the
    sum of the squared 2-D taps, so the added noise has exactly the host's std."""
    r = int(3.0 * sigma_px + 0.5)
    x = np.arange(-r, r + 1)
    t = np.exp(-0.5 * (x / sigma_px) ** 2)
    t /= t.sum()
    return float(np.sum(t**2))  # (sum t^2)^2 for 2-D, sqrt -> sum t^2
