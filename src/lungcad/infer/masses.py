"""The mass pass: the nodule network run once more on the scan shrunk by ``infer.mass_scale``.

The shipped network learnt nodules of 3-30 mm in 96 mm windows; a 5-8 cm mass is outside what it knows
(it fills most of a window and its texture looks like the mediastinum's).  Shrunk by 2.5, a 60 mm mass
is a 24 mm "nodule" in a 240 mm window -- a size the network has seen -- so the same weights find it.
The shrunk image is ``1 / 2.5^3 = 1 / 15.6`` of the voxels; with the 96^3 windows padded it costs about a
tenth of the full pass (LIDC-IDRI-0001: 8 windows against 80).

Steps:

1. area-average the 1 mm image to ``1 / scale`` (``F.interpolate(mode="area")``: the mean over each
   shrunk voxel, a box prefilter, so no aliasing of the noise);
2. the sliding window on it (``predict_volume``, same windows and blending as the full pass);
3. heatmap peaks mapped back to the 1 mm grid: voxel ``j`` of the shrunk grid covers 1 mm voxels
   ``[j f, (j + 1) f)``, its centre is ``(j + 0.5) f - 0.5`` (``f`` = 1 mm size / shrunk size per axis);
4. the size: the segmentation upsampled (trilinear) to the 1 mm grid and measured there
   (``measure_nodule``: component at 0.5, volume-equivalent diameter, HU, texture), so a mass finding has a
   1 mm mask and HU statistics like any finding; the size head's value (times ``f``) when the
   segmentation disagrees by more than 2x (``headline_size``);
5. only lesions of ``MASS_PASS_MIN_MM`` (20 mm) or more are kept -- smaller ones are the full pass's --
   and those of ``MASS_DIAMETER_MM`` (30 mm) or more are masses;
6. a mass need not lie in the lung mask: its *edge* must reach the lung.  A mass against the mediastinum
   or resting on the heart is solid tissue that a threshold lung mask leaves out; its centre is then
   within its radius of the lung (a 50 mm mass, 25 mm), where the nodule filter's 5 mm margin fails.

``merge_masses`` then keeps one finding per lesion: a mass suppresses the findings of the full pass
whose centres lie inside it (a 5 cm mass gives the full pass several partial peaks), and takes the
highest probability among them; a 20-30 mm lesion of the mass pass that the full pass found too (a
finding at least half its size there) is dropped, the full pass having measured it at 1 mm.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from lungcad.contracts import MASS_DIAMETER_MM, Finding
from lungcad.infer.peaks import find_peaks, merge_close
from lungcad.infer.properties import (
    HeadlineSize,
    NoduleMeasure,
    headline_size,
    measure_nodule,
    measured_fields,
)
from lungcad.infer.sliding import predict_volume

MAX_MASSES = 10  # candidates kept from the shrunk heatmap (a scan rarely has more than one or two masses)
# The mass pass reports lesions from 20 mm: a 45 mm lobulated mass flattened on the mediastinum (35 mm
# volume-equivalent) measured 24 mm there, while the full pass, which knows nothing that big, gave it no
# finding at all.  Below 30 mm such a lesion is a "nodule", and it yields to a full-pass finding of it.
MASS_PASS_MIN_MM = 20.0


@dataclass(frozen=True)
class MassCandidate:
    """One lesion of >= 30 mm found by the mass pass, on the preprocessed (1 mm) grid.

    Attributes:
        center_zyx_vox: centre, 1 mm voxels of the preprocessed image.
        raw_probability: heatmap peak (before calibration).
        triage_probability: triage head at the peak (before calibration).
        size_head_mm: the size head's diameter, in 1 mm-grid millimetres.
        size: the headline diameter / volume and their source.
        measure: the segmentation's measurements on the 1 mm grid (mask, HU, texture).
    """

    center_zyx_vox: np.ndarray
    raw_probability: float
    triage_probability: float
    size_head_mm: float
    size: HeadlineSize
    measure: NoduleMeasure


def shrink(image: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Area-average a (D, H, W) image to ``round(n / scale)`` voxels per axis (at least 1).

    Returns:
        The shrunk float32 image and the exact per-axis factor ``f = n / m`` (1 mm voxels per shrunk voxel).
    """
    shape = np.asarray(image.shape)
    small = np.maximum(np.round(shape / scale).astype(int), 1)
    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    out = F.interpolate(t, size=tuple(int(n) for n in small), mode="area")[0, 0].numpy()
    return out, shape / small


def _adaptive_ranges(n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The input range [start, end) that output voxel i of ``m`` averages over ``n`` input voxels, as torch's
    adaptive pooling (``F.interpolate(mode="area")``) takes it: floor(i n / m) to ceil((i + 1) n / m)."""
    i = np.arange(m)
    return (i * n) // m, -((-(i + 1) * n) // m)


def shrink_mask(mask: np.ndarray, scale: float) -> np.ndarray:
    """The fraction of each shrunk voxel inside a bool (D, H, W) ``mask``: ``shrink(mask.astype(float32))``
    counted in integers one output plane at a time (issue 18: the float copy of LIDC-IDRI-0001's 1 mm lung
    mask was 63 MB of the mass pass's peak RSS).  Same shrunk grid as ``shrink``."""
    shape = np.asarray(mask.shape)
    small = np.maximum(np.round(shape / scale).astype(int), 1)
    ranges = [_adaptive_ranges(int(n), int(m)) for n, m in zip(shape, small, strict=True)]
    (z0, z1), (y0, y1), (x0, x1) = ranges
    out = np.empty(tuple(int(m) for m in small), dtype=np.float32)
    for i in range(len(z0)):
        plane = mask[z0[i] : z1[i]].sum(axis=0, dtype=np.int64)  # (H, W) counts over the z range
        cy = np.concatenate([np.zeros((1, plane.shape[1]), np.int64), np.cumsum(plane, axis=0)])
        rows = cy[y1] - cy[y0]  # (m_y, W)
        cx = np.concatenate([np.zeros((len(rows), 1), np.int64), np.cumsum(rows, axis=1)], axis=1)
        counts = cx[:, x1] - cx[:, x0]  # (m_y, m_x)
        out[i] = counts / ((z1[i] - z0[i]) * np.outer(y1 - y0, x1 - x0))
    return out


class UpsampledBoxes:
    """Trilinear upsampling of a shrunk (d, h, w) map to ``shape``, computed only for the boxes read.

    Same values as ``F.interpolate(..., size=shape, mode="trilinear", align_corners=False)`` (voxel centres
    aligned as in ``shrink``; equal to float rounding), but ``seg[box]`` costs the box, not the volume:
    the full-size map was 63 MB of LIDC-IDRI-0001's peak RSS for a lookup around each mass candidate
    (issue 18).  Along one axis of ``n`` shrunk voxels upsampled to ``N``: output voxel ``i`` reads source
    ``x = max((i + 0.5) n / N - 0.5, 0)`` between voxels ``floor(x)`` and ``floor(x) + 1`` (clamped).
    Worked example: n = 2, N = 4: x = 0, 0.25, 0.75, 1 -> output i = 1 is 0.75 v0 + 0.25 v1.
    """

    def __init__(self, small: np.ndarray, shape: tuple[int, ...]) -> None:
        self.small = np.asarray(small, dtype=np.float32)
        self.shape = tuple(int(n) for n in shape)

    def _axis(self, axis: int, sl: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n, big = self.small.shape[axis], self.shape[axis]
        i = np.arange(*sl.indices(big), dtype=np.float64)
        x = np.maximum((i + 0.5) * (n / big) - 0.5, 0.0)
        i0 = np.minimum(np.floor(x).astype(int), n - 1)
        i1 = np.minimum(i0 + 1, n - 1)
        w1 = (x - i0).astype(np.float32)
        return i0, i1, w1

    def __getitem__(self, box: tuple[slice, slice, slice]) -> np.ndarray:
        a = self.small
        for axis, sl in enumerate(box):
            i0, i1, w1 = self._axis(axis, sl)
            shape = [1, 1, 1]
            shape[axis] = len(w1)
            w1 = w1.reshape(shape)
            a = np.take(a, i0, axis=axis) * (1 - w1) + np.take(a, i1, axis=axis) * w1
        return a


def find_masses(
    predictor,
    image: np.ndarray,
    hu: np.ndarray,
    lung_mask: np.ndarray,
    *,
    scale: float,
    patch_size: tuple[int, int, int],
    overlap: float,
    blend: str,
    threshold: float,
    bf16: bool,
    tiling: str = "grid",
    multiple: int = 16,
) -> list[MassCandidate]:
    """Masses of a preprocessed scan (module docstring), highest score first.

    Args:
        predictor: the detector network (or any callable with its interface).
        image: (D, H, W) [0, 1] windowed image on the 1 mm grid.
        hu: (D, H, W) HU on the same grid.
        lung_mask: bool (D, H, W) lung mask on the same grid.
        scale: shrink factor (> 1).
        threshold: minimum heatmap peak.
        tiling, multiple: the windows' rule and the network's total stride (``predict_volume``).
    """
    small, f = shrink(image, scale)
    pred = predict_volume(
        predictor, small, patch_size, overlap, blend, bf16=bf16, tiling=tiling, multiple=multiple
    )
    peaks = find_peaks(pred.heatmap, threshold=threshold, top_k=4 * MAX_MASSES)
    if len(peaks.scores) == 0:
        return []
    stride = pred.head_stride
    small_vox = peaks.zyx * stride + (stride - 1) / 2.0  # head grid -> shrunk grid
    vox = (small_vox + 0.5) * f - 0.5  # shrunk grid -> 1 mm grid
    keep = merge_close(vox, peaks.scores, MASS_DIAMETER_MM / 2)[:MAX_MASSES]
    # Distance (mm) from every shrunk voxel to the lung, on the shrunk grid (1/15 of the voxels); only
    # computed once a candidate gets that far (issue 18: 0.12 s CPU at LIDC-IDRI-0001 size; scans without
    # a >= 20 mm candidate need none)
    to_lung = None
    seg = None
    out = []
    for i in keep:
        head = tuple(int(v) for v in peaks.zyx[i])
        size_head = float(pred.diameter_mm[head] * np.mean(f))
        if size_head < 0.5 * MASS_DIAMETER_MM:  # not even half a mass's size: the full pass's business
            continue
        if seg is None:  # only when a candidate is big enough to need it; upsampled box by box
            seg = UpsampledBoxes(pred.segmentation, image.shape)
        m = measure_nodule(seg, hu, vox[i], size_head)
        size = headline_size(size_head, m)
        if size.diameter_mm < MASS_PASS_MIN_MM:
            continue
        j = tuple(np.clip(np.round(small_vox[i]).astype(int), 0, np.asarray(small.shape) - 1))
        if to_lung is None:
            to_lung = ndimage.distance_transform_edt(shrink_mask(lung_mask, scale) < 0.5, sampling=f)
        if to_lung[j] > 0.5 * size.diameter_mm:  # its edge does not reach the lung
            continue
        out.append(
            MassCandidate(
                center_zyx_vox=vox[i],
                raw_probability=float(peaks.scores[i]),
                triage_probability=float(pred.triage[head]),
                size_head_mm=size_head,
                size=size,
                measure=m,
            )
        )
    return out


def mass_findings(predictor, volume, pre, infer, bundle, bf16: bool) -> list[Finding]:
    """The mass pass of one preprocessed scan as ``Finding``s (``lesion_kind="mass"`` from 30 mm),
    calibrated by the bundle's detection and triage calibrators.

    Args:
        predictor: the detector network; volume: the input ``CTVolume``; pre: its ``Preprocessed``;
        infer: the ``InferConfig`` (windows, ``mass_scale``, ``peak_threshold``); bundle: the
        ``ModelBundle`` (calibrators); bf16: reduced-precision autocast.
    """
    found = find_masses(
        predictor,
        pre.image,
        pre.volume.hu,
        pre.lung_mask,
        scale=infer.mass_scale,
        patch_size=infer.patch_size,
        overlap=infer.overlap,
        blend=infer.blend,
        threshold=infer.peak_threshold,
        bf16=bf16,
        tiling=infer.tiling,
        multiple=bundle.config.model.total_stride,
    )
    out = []
    for c in found:
        m, size = c.measure, c.size
        world = pre.volume.voxel_to_world(c.center_zyx_vox[None])[0]
        out.append(
            Finding(
                center_xyz_mm=tuple(float(v) for v in world),
                center_zyx_vox=tuple(float(v) for v in volume.world_to_voxel(world)),
                probability=float(bundle.detection_calibrator(c.raw_probability)),
                triage_probability=float(bundle.triage_calibrator(c.triage_probability)),
                raw_probability=round(c.raw_probability, 5),
                raw_triage_probability=round(c.triage_probability, 5),
                lesion_kind="mass" if size.diameter_mm >= MASS_DIAMETER_MM else "nodule",
                **measured_fields(m, size, c.size_head_mm, np.asarray(c.center_zyx_vox)),  # type: ignore[arg-type]
            )
        )
    return out


def merge_masses(findings: list[Finding], masses: list[Finding]) -> list[Finding]:
    """One finding per lesion: each lesion of the mass pass drops the findings whose centre lies within its
    radius of its centre and takes the highest probability among them -- unless it is below 30 mm and the
    full pass has a finding of at least half its size there (then it is dropped); findings of >= 30 mm
    are masses.

    Args:
        findings: ``Finding``s of the full pass.
        masses: ``Finding``s of the mass pass (>= 20 mm).

    Returns:
        All findings, highest probability first.
    """
    kept = list(findings)
    merged = []
    for mass in sorted(masses, key=lambda f: -f.probability):
        c = np.asarray(mass.center_xyz_mm)
        if mass.diameter_mm < MASS_DIAMETER_MM and any(
            f.diameter_mm >= 0.5 * mass.diameter_mm
            and np.linalg.norm(np.asarray(f.center_xyz_mm) - c) < 0.5 * max(f.diameter_mm, mass.diameter_mm)
            for f in kept
        ):
            continue  # the full pass has this nodule, measured at 1 mm
        inside = [f for f in kept if np.linalg.norm(np.asarray(f.center_xyz_mm) - c) < 0.5 * mass.diameter_mm]
        kept = [f for f in kept if all(f is not g for g in inside)]
        if any(np.linalg.norm(np.asarray(m.center_xyz_mm) - c) < 0.5 * m.diameter_mm for m in merged):
            continue  # inside a stronger mass
        best = max([mass.probability, *(f.probability for f in inside)])
        merged.append(replace(mass, probability=best))
    out = [
        f if f.diameter_mm < MASS_DIAMETER_MM or f.lesion_kind == "mass" else replace(f, lesion_kind="mass")
        for f in kept
    ]
    return sorted(out + merged, key=lambda f: -f.probability)
