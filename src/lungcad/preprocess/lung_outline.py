"""Geometry of the lung mask: the body outline, the two lung sides, and lesions inside a lung's outline.

All functions work on the lung mask's coarse (z, y, x) grid and are O(voxels): labelling passes,
cumulative scans, and ball morphology as shifted bit planes (``morphology``, exact), no voxel-by-voxel
structuring element larger than 3 x 3 x 3.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lungcad.preprocess.morphology import (
    bbox,
    close_cube3_nearest,
    counts,
    label6,
    label_inplane,
    opening_ball,
)

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
    """The largest face-connected component of ``mask`` (``mask`` itself when empty; the lowest label,
    the first in C order, on a tie)."""
    labels, n = label6(mask)
    if n == 0:
        return mask
    sizes = counts(labels, n, mask)
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
    labels, n = label_inplane(~mask)
    if n == 0:
        return mask.copy()
    open_to_border = np.zeros(n + 1, dtype=bool)
    every = slice(None)
    for edge in ((every, 0, every), (every, -1, every), (every, every, 0), (every, every, -1)):
        on_edge = labels[edge]
        open_to_border[on_edge if sealed_border is None else on_edge[~sealed_border[edge]]] = True
    # label 0 is ``mask`` itself: filled; a background label is filled when it never reaches an exit
    filled = ~open_to_border
    filled[0] = True
    return np.take(filled, labels)


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
    # A 3 x 3 x 3 cube is separable: three running maxima, then three running minima (replicated
    # faces, so tissue on the volume's first and last slice survives the erosion).
    return fill_inplane(close_cube3_nearest(body) | body, sealed_border(body))


def body_midline_x(body: np.ndarray) -> float:
    """The continuous x voxel index of the body's centroid: the patient's midline on a (z, y, x) mask."""
    # per-column counts as integers first (exact, 3x faster than a float64 sum over two axes)
    x_counts = np.asarray(body, dtype=bool).view(np.uint8).sum(axis=0, dtype=np.uint32)
    x_counts = x_counts.sum(axis=0, dtype=np.float64)
    return float((x_counts * np.arange(body.shape[2])).sum() / max(x_counts.sum(), 1.0))


def _side_tables(
    lungs: np.ndarray, body: np.ndarray
) -> tuple[tuple[slice, slice, slice], np.ndarray, int, np.ndarray, np.ndarray]:
    """What :func:`lung_sides` needs, inside the bounding box of non-empty ``lungs``: the box, the
    component labels in it, the midline cut (a box x index: the low side is ``[..., :cut]``), and per
    label ``(2, n + 1)`` int8 its side left and right of the cut and ``(2, n + 1)`` its voxel counts
    there (label 0: side 0, count 0)."""
    box = bbox(lungs)
    lungs = lungs[box]  # type: ignore[index]
    cut = min(max(int(np.ceil(body_midline_x(body))) - box[2].start, 0), lungs.shape[2])  # type: ignore[index]
    labels, n = label6(lungs)
    n_low = counts(labels[..., :cut], n, lungs[..., :cut])
    n_all = counts(labels, n, lungs)
    frac_low = n_low.astype(np.float64) / np.maximum(n_all.astype(np.float64), 1.0)
    whole = np.where(frac_low >= 0.8, 1, np.where(frac_low <= 0.2, 2, 0))
    # a component on both sides is cut at the midline: 1 left of it, 2 right of it
    side = np.stack([np.where(whole == 0, 1, whole), np.where(whole == 0, 2, whole)]).astype(np.int8)
    side[:, 0] = 0
    return box, labels, cut, side, np.stack([n_low, n_all - n_low])  # type: ignore[return-value]


def lung_sides(lungs: np.ndarray, body: np.ndarray) -> np.ndarray:
    """Label each lung voxel 1 (low x index) or 2 (high x index) by the side of the body's midline.

    A component lying mostly on one side (>= 80 %) is given to that side whole; a component with
    more on both sides (lungs touching in front of the heart, or joined by the bronchi) is cut at the
    midline, the x centroid of the body.
    """
    out = np.zeros(lungs.shape, dtype=np.int8)
    if not lungs.any():
        return out
    box, labels, cut, side, _ = _side_tables(lungs, body)
    sub = out[box]
    sub[..., :cut] = np.take(side[0], labels[..., :cut])
    sub[..., cut:] = np.take(side[1], labels[..., cut:])
    return out


def lung_side_voxels(lungs: np.ndarray, body: np.ndarray) -> tuple[int, int]:
    """The number of voxels :func:`lung_sides` labels 1 and 2, without building the label volume."""
    if not lungs.any():
        return 0, 0
    *_, side, n = _side_tables(lungs, body)
    return int(n[side == 1].sum()), int(n[side == 2].sum())


def _events(side: np.ndarray, body: np.ndarray) -> np.ndarray:
    """The events :func:`_bracketed` scans for: 1 and 2 the lungs, 3 outside the body (a chord may not
    leave it), 0 none; int16 where ``4 * index + label`` fits along every axis, else int32."""
    code = np.int16 if 4 * max(side.shape) < np.iinfo(np.int16).max else np.int32
    return np.where(body, side, np.int8(3)).astype(code)


def _bracketed(label: np.ndarray, axis: int, max_gap: int) -> np.ndarray:
    """Non-lung body voxels between two voxels of the same lung along ``axis``, at most ``max_gap`` apart.

    ``label`` comes from :func:`_events`.  The nearest event before and after each voxel comes from
    running maxima/minima of ``4 * index + label`` over the events: the index orders them, the label
    rides along in the low bits.  The running extrema only need to reach ``max_gap`` voxels (a voxel
    is flanked only when both its events are that close), so they are windowed ones by doubling
    shifts, ``log2(max_gap)`` vectorised steps, 2x faster than ``np.maximum.accumulate``: an event
    outside the window reads as none, which (like a farther event) leaves the voxel unflanked.
    """
    n = label.shape[axis]
    code = label.dtype.type
    shape = [1, 1, 1]
    shape[axis] = n
    event = label != 0
    coded = (4 * np.arange(n, dtype=code)).reshape(shape) + label
    prev = np.where(event, coded, code(-4))
    nxt = np.where(event, coded, code(4 * n))
    step, reach = 1, 0
    while reach < max_gap and step < n:
        lo = tuple(slice(None, -step) if a == axis else slice(None) for a in range(3))
        hi = tuple(slice(step, None) if a == axis else slice(None) for a in range(3))
        np.maximum(prev[hi], prev[lo], out=prev[hi])  # numpy buffers the overlapping operands
        np.minimum(nxt[lo], nxt[hi], out=nxt[lo])
        reach, step = reach + step, 2 * step
    prev_label, next_label = prev & 3, nxt & 3
    gap = (nxt >> 2) - (prev >> 2) - 1
    flanked = (prev >= 0) & (nxt < 4 * n) & (gap <= max_gap) & (prev_label == next_label)
    return flanked & (label == 0) & ((prev_label == 1) | (prev_label == 2))


def _mostly_lung_bound(candidates: np.ndarray, lung: np.ndarray) -> np.ndarray:
    """The connected components of ``candidates`` whose surface is mostly lung (``MIN_LUNG_CONTACT``).

    The surface of a component is the set of voxels face-adjacent to it; each surface voxel is counted
    for the component a maximum filter of the labels gives it.
    """
    labels, n = label6(candidates)
    if n == 0:
        return candidates
    # ndimage.maximum_filter over the 6 face neighbours and the voxel ("reflect" adds no new value)
    grown = labels.copy()
    for axis in range(3):
        lo = tuple(slice(None, -1) if a == axis else slice(None) for a in range(3))
        hi = tuple(slice(1, None) if a == axis else slice(None) for a in range(3))
        np.maximum(grown[hi], labels[lo], out=grown[hi])
        np.maximum(grown[lo], labels[hi], out=grown[lo])
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
    box = bbox(side > 0)
    if box is None:
        return out
    side, body = side[box], body[box]  # nothing outside the lungs' box has lung on both sides
    gaps = [int(max_lesion_mm / s) for s in spacing_zyx_mm]
    events = _events(side, body)
    flanked_z = _bracketed(events, 0, gaps[0])
    if not flanked_z.any():
        return out
    enclosed = flanked_z & (_bracketed(events, 1, gaps[1]) | _bracketed(events, 2, gaps[2]))
    core = opening_ball(enclosed, MIN_LESION_RADIUS_MM, spacing_zyx_mm) & enclosed
    core = _mostly_lung_bound(core, side > 0)
    if not core.any():
        return out
    steps = max(1, int(round(RIM_MM / min(spacing_zyx_mm[1:]))))
    lesion = ndimage.binary_dilation(core, structure=INPLANE, iterations=steps, mask=flanked_z) | core
    # plus the one-voxel partial-volume rim of the lesion, where the lung's outline narrows above it
    out[box] = ndimage.binary_dilation(lesion, structure=INPLANE) & body & (side == 0)
    return out
