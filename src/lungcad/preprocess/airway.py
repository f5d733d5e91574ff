"""Find the trachea and main bronchi in the air mask, slice by slice, so they can leave the lung mask.

Why slice by slice: in an axial slice the trachea and each main bronchus are their own small air
component until the bronchus enters the lung at the hilum, where the component it joins is suddenly the
size of a lung.  Tracking those components down from the neck needs no HU threshold inside the
airway, so it works where a 3-D pure-air region breaks: on LIDC-IDRI-0001's 2.8 mm strided grid the
trachea is below -950 HU on only some slices (partial volume with its wall, noise), and it widens or
narrows by half from slice to slice.
"""

from __future__ import annotations

import numpy as np

from lungcad.preprocess.lung_outline import body_midline_x
from lungcad.preprocess.morphology import counts, label_inplane

PURE_AIR_HU = -950.0  # median of a seed: the tracheal lumen, not lung parenchyma (-850) or an apex tip
SEED_BAND_MM = 40.0  # the seed is searched for in the top 40 mm of the air mask
SEED_AREA_MM2 = (40.0, 800.0)  # trachea cross-section: 150-300 mm2 in adults, narrower in the neck
SEED_MIDLINE_MM = 35.0  # its centre lies within this distance of the body's midline
MAX_AIRWAY_MM2 = 800.0  # a tracked component larger than this is lung: the bronchus has entered it
MAX_GROWTH = 2.5  # nor may a component grow more than 2.5x over the area it continues from


def find_airway(
    hu: np.ndarray,
    air: np.ndarray,
    body: np.ndarray,
    spacing_zyx_mm: tuple[float, float, float],
    *,
    top_last: bool,
) -> np.ndarray:
    """The trachea and main bronchi as a bool (z, y, x) mask (all False when no trachea is found).

    Args:
        hu: HU on the working grid.
        air: the lung air candidates (the trachea is part of them).
        body: the body outline (its x centroid is the midline).
        spacing_zyx_mm: voxel size.
        top_last: True when the last z index is the most superior.
    """
    out = np.zeros(air.shape, dtype=bool)
    z_idx = np.nonzero(air.any(axis=(1, 2)))[0]
    if z_idx.size == 0:
        return out
    sz, sy, sx = spacing_zyx_mm
    pixel_mm2 = sy * sx
    labels, n = label_inplane(air)  # 2-D components, each within one slice
    area = counts(labels, n, air) * pixel_mm2
    mid_x = body_midline_x(body)
    xs = np.arange(air.shape[2], dtype=np.float64)
    # superior to inferior
    order = z_idx[::-1] if top_last else z_idx
    band = order[: max(1, int(np.ceil(SEED_BAND_MM / sz)))]
    seed_z, seed = -1, np.zeros(0, dtype=np.int64)
    for z in band:
        # x centroids of this slice's components (a component lies in one slice; the sums of integer
        # x indices are exact, so the order of summation does not matter)
        x_sum = np.bincount(labels[z].ravel(), weights=np.broadcast_to(xs, labels[z].shape).ravel())
        centre_x = x_sum / np.maximum(area[: x_sum.size] / pixel_mm2, 1.0)
        cands = [
            int(lab)
            for lab in np.unique(labels[z][labels[z] > 0])
            if SEED_AREA_MM2[0] <= area[lab] <= SEED_AREA_MM2[1]
            and abs(centre_x[lab] - mid_x) * sx <= SEED_MIDLINE_MM
            and float(np.median(hu[z][labels[z] == lab])) < PURE_AIR_HU
        ]
        if cands:
            seed_z, seed = int(z), np.asarray(cands)
            break
    if seed_z < 0:
        return out
    pos = int(np.nonzero(order == seed_z)[0][0])
    for path in (order[pos:], order[pos::-1]):  # down from the seed, then up from it
        current = seed
        for z_prev, z in zip(path[:-1], path[1:], strict=False):
            prev_mask = np.isin(labels[z_prev], current)
            touching = np.unique(labels[z][prev_mask & (labels[z] > 0)])
            limit = min(MAX_AIRWAY_MM2, MAX_GROWTH * float(area[current].sum()))
            current = np.asarray([int(lab) for lab in touching if area[lab] <= limit], dtype=np.int64)
            if current.size == 0:
                break
            out[z] = np.isin(labels[z], current)
        out[seed_z] = np.isin(labels[seed_z], seed)
    return out
