"""Geometry of the lung mask: the body outline, the two lung sides, and lesions inside a lung's outline.

All functions work on the lung mask's coarse (z, y, x) grid and are O(voxels): labelling passes,
cumulative scans, distance transforms, no structuring element larger than 3 x 3 x 3.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# Connectivity restricted to the axial plane: labels and fills slice by slice in one vectorised call.
INPLANE = np.zeros((3, 3, 3), dtype=bool)
INPLANE[1] = ndimage.generate_binary_structure(2, 1)
# The rules of ``enclosed_by_lung``: a lesion it adds holds a ball of this radius (a mass >= 3 cm does,
# the hilar vessels and bronchial walls mostly do not)...
MIN_LESION_RADIUS_MM = 8.0
# ...at least half its surface touches lung (a half-embedded hemisphere: 2/3; phantom masses 0.55-0.9;
# the thick hilar and left-atrial pieces of LIDC-IDRI-0001 that pass the other rules: 0.2-0.4)...
MIN_LUNG_CONTACT = 0.5
# ...and it takes in the tissue up to this far beside it that has lung above and below.
RIM_MM = 15.0


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest face-connected component of ``mask`` (``mask`` itself when empty)."""
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def fill_inplane(mask: np.ndarray, sealed_border: np.ndarray | None = None) -> np.ndarray:
    """Fill, slice by slice, the background regions of ``mask`` that do not reach the image border.

    Args:
        mask: bool (z, y, x).
        sealed_border: optional bool (z, y, x), True on border pixels that do *not* count as an opening
            to the outside (where the field of view cuts through the patient).

    Labelling the background once with in-plane connectivity costs about a fifth of
    ``ndimage.binary_fill_holes``, which dilates from the border one voxel per iteration.
    """
    background = ~mask
    labels, n = ndimage.label(background, structure=INPLANE)
    if n == 0:
        return mask.copy()
    exits = np.zeros(mask.shape, dtype=bool)
    exits[:, 0, :] = exits[:, -1, :] = exits[:, :, 0] = exits[:, :, -1] = True
    if sealed_border is not None:
        exits &= ~sealed_border
    open_to_border = np.zeros(n + 1, dtype=bool)
    open_to_border[np.unique(labels[exits & background])] = True
    open_to_border[0] = True
    return mask | ~open_to_border[labels]


def _runs_between_contacts(line: np.ndarray, axis: int) -> np.ndarray:
    """True from the first to the last True of ``line`` along ``axis`` (inclusive)."""
    after = np.logical_or.accumulate(line, axis=axis)
    before = np.flip(np.logical_or.accumulate(np.flip(line, axis), axis=axis), axis)
    return after & before


def sealed_border(body: np.ndarray) -> np.ndarray:
    """Border pixels that lie between two contacts of ``body`` with the same image edge.

    Why: when the field of view is narrower than the patient, the body and the lung inside it run off
    the image edge, and a fill from the border treats that lung as outside air.  The patient goes on
    beyond the edge, so the edge between the outermost body pixels on it is closed.  Worked example:
    on a 128-pixel left edge, the chest wall touches rows 20-34 and 80-95 with lung air at rows 35-79
    in between; rows 20-95 are sealed, so the lung is enclosed, while the outside air at rows 0-19 and
    96-127 still reaches the border and stays outside.
    """
    out = np.zeros(body.shape, dtype=bool)
    out[:, 0, :] = _runs_between_contacts(body[:, 0, :], axis=1)
    out[:, -1, :] = _runs_between_contacts(body[:, -1, :], axis=1)
    out[:, :, 0] |= _runs_between_contacts(body[:, :, 0], axis=1)
    out[:, :, -1] |= _runs_between_contacts(body[:, :, -1], axis=1)
    return out


def body_outline(tissue: np.ndarray) -> np.ndarray:
    """The patient: the largest tissue component, sealed across 1-2 voxel gaps, holes filled per slice.

    Why a closing and no opening: on the coarse grid a thin chest wall (a cachectic patient, 5 mm of
    intercostal tissue sampled every 2.8 mm) is one or two voxels thick, with one-voxel holes where
    noise or partial volume drop it below the threshold.  An opening would erase such a wall and a
    hole lets the lung air reach the outside air, so the slice fill would treat the whole lung as
    outside and drop it.  A 3 x 3 x 3 closing bridges gaps up to two voxels (about 5 mm) in any
    direction, including a wall missing on one slice; the outline it adds is only used to decide what
    air is inside the patient.
    """
    body = largest_component(tissue)
    if not body.any():
        return body
    # A 3 x 3 x 3 cube is separable: three running maxima, then three running minima (``nearest``
    # replicates the faces, so tissue on the volume's first and last slice survives the erosion).
    closed = body.view(np.uint8)
    for axis in range(3):
        closed = ndimage.maximum_filter1d(closed, 3, axis=axis, mode="nearest")
    for axis in range(3):
        closed = ndimage.minimum_filter1d(closed, 3, axis=axis, mode="nearest")
    return fill_inplane(closed.astype(bool) | body, sealed_border(body))


def body_midline_x(body: np.ndarray) -> float:
    """The continuous x voxel index of the body's centroid: the patient's midline on a (z, y, x) mask."""
    x_counts = body.sum(axis=(0, 1), dtype=np.float64)
    return float((x_counts * np.arange(body.shape[2])).sum() / max(x_counts.sum(), 1.0))


def lung_sides(lungs: np.ndarray, body: np.ndarray) -> np.ndarray:
    """Label each lung voxel 1 (low x index) or 2 (high x index) by the side of the body's midline.

    A component lying mostly on one side (>= 80 %) is given to that side whole; a component with
    more on both sides (lungs touching in front of the heart, or joined by the bronchi) is cut at the
    midline, the x centroid of the body.
    """
    out = np.zeros(lungs.shape, dtype=np.int8)
    if not lungs.any():
        return out
    mid = body_midline_x(body)
    low = np.zeros(lungs.shape, dtype=bool)
    low[..., : int(np.ceil(mid))] = True
    labels, n = ndimage.label(lungs)
    n_low = np.bincount(labels[low], minlength=n + 1).astype(np.float64)
    n_all = np.bincount(labels.ravel(), minlength=n + 1).astype(np.float64)
    frac_low = n_low / np.maximum(n_all, 1.0)
    whole = np.where(frac_low >= 0.8, 1, np.where(frac_low <= 0.2, 2, 0)).astype(np.int8)
    out[lungs] = whole[labels[lungs]]
    split = lungs & (out == 0)
    out[split & low] = 1
    out[split & ~low] = 2
    return out


def _bracketed(side: np.ndarray, body: np.ndarray, axis: int, max_gap: int) -> np.ndarray:
    """Non-lung body voxels between two voxels of the same lung along ``axis``, at most ``max_gap`` apart.

    The nearest "event" (a lung voxel of either side, or a voxel outside the body) before and after
    each voxel comes from running maxima/minima of ``4 * index + label`` over the events: the index
    orders them, the label rides along in the low bits.  O(voxels) whatever ``max_gap``.
    """
    n = side.shape[axis]
    shape = [1, 1, 1]
    shape[axis] = n
    code = np.int16 if 4 * n < np.iinfo(np.int16).max else np.int32
    idx4 = (4 * np.arange(n, dtype=code)).reshape(shape)
    label = np.where(body, side, np.int8(3)).astype(code)  # 3 blocks: a chord may not leave the body
    event = label != 0
    prev = np.maximum.accumulate(np.where(event, idx4 + label, code(-4)), axis=axis)
    after = np.where(event, idx4 + label, code(4 * n))
    nxt = np.flip(np.minimum.accumulate(np.flip(after, axis), axis=axis), axis)
    prev_label, next_label = prev & 3, nxt & 3
    gap = (nxt >> 2) - (prev >> 2) - 1
    flanked = (prev >= 0) & (nxt < 4 * n) & (gap <= max_gap) & (prev_label == next_label)
    return flanked & (label == 0) & ((prev_label == 1) | (prev_label == 2))


def _bbox(mask: np.ndarray) -> tuple[slice, slice, slice] | None:
    """The bounding box of ``mask`` as slices, or ``None`` when it is empty."""
    nz = [np.nonzero(mask.any(axis=tuple(a for a in range(3) if a != ax)))[0] for ax in range(3)]
    if nz[0].size == 0:
        return None
    return tuple(slice(int(i[0]), int(i[-1]) + 1) for i in nz)  # type: ignore[return-value]


def _opening_mm(mask: np.ndarray, radius_mm: float, spacing: tuple[float, float, float]) -> np.ndarray:
    """Morphological opening with a ball of ``radius_mm`` (two EDTs inside the mask's bounding box)."""
    box = _bbox(mask)
    if box is None:
        return mask
    sub = np.pad(mask[box], 1)
    core = ndimage.distance_transform_edt(sub, sampling=spacing) > radius_mm
    if not core.any():
        return np.zeros_like(mask)
    opened = ndimage.distance_transform_edt(~core, sampling=spacing) <= radius_mm
    out = np.zeros_like(mask)
    out[box] = opened[1:-1, 1:-1, 1:-1]
    return out


def _mostly_lung_bound(candidates: np.ndarray, lung: np.ndarray) -> np.ndarray:
    """The connected components of ``candidates`` whose surface is mostly lung (``MIN_LUNG_CONTACT``).

    The surface of a component is the set of voxels face-adjacent to it; each surface voxel is counted
    for the component a maximum filter of the labels gives it.
    """
    labels, n = ndimage.label(candidates)
    if n == 0:
        return candidates
    grown = ndimage.maximum_filter(labels, footprint=ndimage.generate_binary_structure(3, 1))
    surface = (grown > 0) & (labels == 0)
    total = np.bincount(grown[surface], minlength=n + 1)
    on_lung = np.bincount(grown[surface & lung], minlength=n + 1)
    accept = on_lung >= MIN_LUNG_CONTACT * np.maximum(total, 1)
    accept[0] = False
    return accept[labels]


def enclosed_by_lung(
    side: np.ndarray, body: np.ndarray, spacing_zyx_mm: tuple[float, float, float], max_lesion_mm: float
) -> np.ndarray:
    """Solid lesions inside one lung's outline, of any size up to ``max_lesion_mm``.

    A hole fill or a closing cannot tell a large mass from the mediastinum at any size that reaches the
    mass: a 7 cm mass against the mediastinum is a 180 ml bay of the lung, as big as the heart's.  So
    four rules, each O(voxels):

    1. *Flanked*: the same lung lies above and below the voxel (z), and in front and behind it (y) or
       to both sides (x), each gap at most ``max_lesion_mm``.  A mass against the mediastinum or the
       chest wall has lung above, below, in front and behind; the aorta and the oesophagus are vertical
       tubes (more of themselves above and below), the mediastinum has the *other* lung across x, and
       the liver and spleen, islands of the lung in a slice through a dome, have no lung below.
    2. *Thick*: what rule 1 keeps is opened with a ball of ``MIN_LESION_RADIUS_MM``, which leaves the
       vessels and bronchial walls of the hila, flanked between upper and lower lobes, behind.
    3. *Lung-bound*: a connected piece survives only if at least ``MIN_LUNG_CONTACT`` of its surface
       touches lung.  The heart is flanked in front and behind where the lungs meet before it, and the
       left atrium above and below between the hila and the lower lobes; but those pieces sit in the
       mediastinum and touch lung with 20-40 % of their surface, a mass with 55-90 %.
    4. *Rim*: a surviving lesion takes in the tissue up to ``RIM_MM`` beside it that has lung above and
       below (where the convex chest wall curves away in front of and behind it), and a one-voxel
       partial-volume rim.

    Worked example (5 mm slices, 2.8 mm pixels): a 70 mm mass against the right mediastinum at
    mid-lung.  A voxel in it 10 mm from the mediastinal surface sees lung 30 mm in front and 30 mm
    behind (y: flanked, a 60 mm gap), lung 35 mm above and below (z: flanked), the mediastinum
    medially (x: not flanked): rule 1 holds; the mass holds an 8 mm ball; its surface is lung except
    the medial face: ~80 %.  A voxel of the descending aorta in its groove of the left lung sees lung in
    front and behind and laterally, but 20 cm of aorta above and below: rule 1 fails.  On LIDC-IDRI-0001
    (no mass) nothing is added.  Not filled: a mass resting on the diaphragm, at the apex, or on the
    heart -- there the lung's outline is ambiguous from shape alone (the lateral part, with lung
    below it, still is).

    Args:
        side: int8 (z, y, x) lung labels (0 none, 1 and 2 the two lungs, from :func:`lung_sides`).
        body: bool (z, y, x) body outline; chords may not leave it.
        spacing_zyx_mm: voxel size.
        max_lesion_mm: longest gap bridged along an axis (the largest lesion kept whole).
    """
    out = np.zeros(side.shape, dtype=bool)
    box = _bbox(side > 0)
    if box is None:
        return out
    side, body = side[box], body[box]  # nothing outside the lungs' box has lung on both sides
    gaps = [int(max_lesion_mm / s) for s in spacing_zyx_mm]
    flanked_z = _bracketed(side, body, 0, gaps[0])
    if not flanked_z.any():
        return out
    enclosed = flanked_z & (_bracketed(side, body, 1, gaps[1]) | _bracketed(side, body, 2, gaps[2]))
    core = _opening_mm(enclosed, MIN_LESION_RADIUS_MM, spacing_zyx_mm) & enclosed
    core = _mostly_lung_bound(core, side > 0)
    if not core.any():
        return out
    steps = max(1, int(round(RIM_MM / min(spacing_zyx_mm[1:]))))
    lesion = ndimage.binary_dilation(core, structure=INPLANE, iterations=steps, mask=flanked_z) | core
    # plus the one-voxel partial-volume rim of the lesion, where the lung's outline narrows above it
    out[box] = ndimage.binary_dilation(lesion, structure=INPLANE) & body & (side == 0)
    return out
