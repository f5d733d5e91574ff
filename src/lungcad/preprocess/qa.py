"""Quality-assurance checks on a loaded CT: is it safe to run detection on this scan?

Each check returns pass / warn / fail with the measured value and a sentence a technologist can act on.
The verdict is the worst status.  Thresholds are documented beside each check.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lungcad.config import PreprocessConfig
from lungcad.preprocess.lung_mask import BODY_HU, LungMask
from lungcad.preprocess.lung_outline import INPLANE, largest_component
from lungcad.types import CheckStatus as Status  # the QA types live in lungcad.contracts
from lungcad.types import CTVolume, QACheck, QAReport

METAL_HU = 2500.0  # above cortical bone (<~1900 HU) and iodine contrast: metal or beam hardening
METAL_WARN_ML = 0.1
TRUNCATION_WARN_FRACTION = 0.01  # of in-plane border pixels covered by the body
LUNG_CUT_WARN = 0.05  # lung area on an end slice relative to the largest slice area
LUNG_CUT_FAIL = 0.25
NOISE_WARN_HU = 60.0
# Smaller / larger lung volume.  A normal right lung is 10-20 % larger than the left (0.8-0.9); after a
# lobectomy, with a collapsed lobe or a large effusion the ratio falls to about 0.3-0.7; after a
# pneumonectomy, a total collapse -- or when the mask lost a lung -- it is near 0 (the remaining lung may
# herniate a little across the midline), and nodules on that side cannot be found.
LUNG_ASYMMETRY_WARN = 0.6
LUNG_ASYMMETRY_FAIL = 0.2


def robust_noise_std(hu: np.ndarray, region: np.ndarray) -> float | None:
    """Noise standard deviation (HU) in ``region`` from differences of x-neighbours.

    For white noise of std sigma, the difference of two neighbours has std sigma*sqrt(2); the median
    absolute deviation (x 1.4826) makes it robust to the edges a region still contains.
    """
    both = region[..., 1:] & region[..., :-1]
    if both.sum() < 100:
        return None
    d = (hu[..., 1:] - hu[..., :-1])[both]
    mad = float(np.median(np.abs(d - np.median(d))))
    return float(1.4826 * mad / np.sqrt(2.0))


def check_slices(volume: CTVolume, cfg: PreprocessConfig) -> list[QACheck]:
    out: list[QACheck] = []
    thickness = volume.metadata.slice_thickness_mm or volume.spacing_zyx_mm[0]
    if thickness > cfg.thick_slice_warn_mm:
        out.append(
            QACheck(
                "slice_thickness",
                Status.WARN,
                thickness,
                f"slices are {thickness:g} mm thick (> {cfg.thick_slice_warn_mm:g} mm): small nodules "
                "may be missed; prefer a thin-slice reconstruction",
            )
        )
    else:
        out.append(QACheck("slice_thickness", Status.PASS, thickness, f"{thickness:g} mm slices"))
    rep = volume.metadata.slice_report
    if rep is None:
        return out
    if rep.n_gaps:
        status = Status.WARN if cfg.allow_gaps else Status.FAIL
        out.append(
            QACheck(
                "missing_slices",
                status,
                rep.n_gaps,
                f"{rep.n_gaps} gap(s) in the slice stack (largest step {rep.max_step_mm:.2f} mm vs median "
                f"{rep.median_step_mm:.2f} mm); interpolated across"
                + ("" if cfg.allow_gaps else "; re-send the complete series or pass --allow-gaps"),
            )
        )
    else:
        out.append(QACheck("missing_slices", Status.PASS, 0, "no missing slices"))
    if rep.nonuniform and not rep.n_gaps:
        out.append(
            QACheck(
                "slice_spacing",
                Status.WARN,
                rep.max_step_mm,
                "irregular slice spacing; resampled to a uniform grid",
            )
        )
    else:
        out.append(QACheck("slice_spacing", Status.PASS, rep.median_step_mm, "uniform slice spacing"))
    if rep.duplicates_dropped:
        out.append(
            QACheck(
                "duplicate_slices",
                Status.WARN,
                rep.duplicates_dropped,
                f"{rep.duplicates_dropped} duplicate slice position(s) dropped",
            )
        )
    if rep.gantry_tilt_deg > 0.01:
        out.append(
            QACheck(
                "gantry_tilt",
                Status.WARN,
                round(rep.gantry_tilt_deg, 3),
                f"gantry tilt {rep.gantry_tilt_deg:.2f} deg detected and corrected",
            )
        )
    return out


def check_lung_symmetry(lungs: LungMask) -> QACheck:
    """Both lungs in the mask, of comparable volume (thresholds: ``LUNG_ASYMMETRY_*``).

    The volumes are those of ``LungMask.side_ml``: each lung component on the side of the body's
    midline that holds most of it.
    """
    names = lungs.side_names()
    vols = dict(zip(names, lungs.side_ml, strict=True))
    small, large = sorted(lungs.side_ml)
    ratio = small / large if large > 0 else 0.0
    value = {"right_ml": round(vols["right"], 1), "left_ml": round(vols["left"], 1), "ratio": round(ratio, 3)}
    smaller = min(vols, key=vols.__getitem__)
    if ratio < LUNG_ASYMMETRY_FAIL:
        return QACheck(
            "lung_symmetry",
            Status.FAIL,
            value,
            f"the {smaller} lung is missing from the lung mask ({vols[smaller]:.0f} ml vs "
            f"{large:.0f} ml): after a pneumonectomy or a total collapse this is expected, otherwise the "
            f"mask failed and nodules in the {smaller} lung cannot be found; check the lung mask preview",
        )
    if ratio < LUNG_ASYMMETRY_WARN:
        return QACheck(
            "lung_symmetry",
            Status.WARN,
            value,
            f"the {smaller} lung is much smaller than the other ({ratio:.0%}): a lobectomy, collapse or "
            "effusion, or part of the lung left out of the mask; check the lung mask preview",
        )
    return QACheck("lung_symmetry", Status.PASS, value, f"both lungs present (volume ratio {ratio:.2f})")


def check_anatomy(lungs: LungMask) -> list[QACheck]:
    """Coverage, field of view and metal, read on the lung mask's coarse grid."""
    volume = lungs.grid
    out: list[QACheck] = []
    area = lungs.mask.sum(axis=(1, 2)).astype(np.float64)
    if area.max() == 0:
        return [
            QACheck(
                "lung_coverage",
                Status.FAIL,
                0.0,
                "no lung found: not a chest CT, or the window/threshold is wrong",
            )
        ]
    ends = (area[0] / area.max(), area[-1] / area.max())
    names = ("first", "last") if volume.direction[2, 2] < 0 else ("base", "apex")
    worst = max(ends)
    if worst > LUNG_CUT_FAIL:
        status = Status.FAIL
    elif worst > LUNG_CUT_WARN:
        status = Status.WARN
    else:
        status = Status.PASS
    cut = [n for n, e in zip(names, ends, strict=True) if e > LUNG_CUT_WARN]
    msg = (
        "lungs covered apex to base"
        if not cut
        else (
            f"lungs cut at the {' and '.join(cut)} of the scan "
            f"(end-slice lung area {worst:.0%} of the largest): nodules outside the scanned range "
            "cannot be found; rescan with full lung coverage"
        )
    )
    out.append(QACheck("lung_coverage", status, [round(e, 3) for e in ends], msg))
    out.append(check_lung_symmetry(lungs))
    border = np.zeros(volume.shape[1:], dtype=bool)
    border[0, :] = border[-1, :] = border[:, 0] = border[:, -1] = True
    # The trunk as the field of view sees it: the largest tissue component after an in-plane opening,
    # which cuts arms, blankets and a mattress off where they touch the trunk through a voxel or two.
    # (The mask's own body keeps such thin tissue, so that a thin chest wall still encloses its lung.)
    trunk = largest_component(ndimage.binary_opening(volume.hu > BODY_HU, structure=INPLANE))
    frac = float(trunk[:, border].mean())
    out.append(
        QACheck(
            "field_of_view",
            Status.WARN if frac > TRUNCATION_WARN_FRACTION else Status.PASS,
            round(frac, 4),
            "body touches the edge of the field of view (truncated FOV)"
            if frac > TRUNCATION_WARN_FRACTION
            else "body inside the field of view",
        )
    )
    voxel_ml = float(np.prod(volume.spacing_zyx_mm)) / 1000.0
    metal_ml = float(((volume.hu > METAL_HU) & lungs.body).sum()) * voxel_ml
    out.append(
        QACheck(
            "metal_artefact",
            Status.WARN if metal_ml > METAL_WARN_ML else Status.PASS,
            round(metal_ml, 3),
            f"{metal_ml:.2f} ml above {METAL_HU:g} HU (metal or undiluted contrast): expect streak artefacts"
            if metal_ml > METAL_WARN_ML
            else "no metal",
        )
    )
    return out


def check_noise(lungs: LungMask, n_slices: int = 24) -> QACheck:
    """Noise from neighbour differences on the coarse grid (strided samples are as noisy as the originals)."""
    volume = lungs.grid
    # About 24 evenly spaced slices estimate the noise as well as all of them at a fraction of the cost.
    step = max(1, volume.shape[0] // n_slices)
    hu = volume.hu[::step]
    body = lungs.body[::step]
    # Outside-body air, away from the skin; exactly -1000 HU is the loader's padding fill, not signal.
    outside = (
        ~ndimage.binary_dilation(body, INPLANE, iterations=3) & (hu > -1100) & (hu < -900) & (hu != -1000.0)
    )
    tissue = ndimage.binary_erosion(body & (hu > -200) & (hu < 200), INPLANE, iterations=2)
    air_std = robust_noise_std(hu, outside)
    tissue_std = robust_noise_std(hu, tissue)
    value = {
        "air_hu_std": None if air_std is None else round(air_std, 2),
        "tissue_hu_std": None if tissue_std is None else round(tissue_std, 2),
    }
    ref = tissue_std if tissue_std is not None else air_std
    if ref is None:
        return QACheck("noise", Status.WARN, value, "noise could not be estimated (no air or tissue region)")
    status = Status.WARN if ref > NOISE_WARN_HU else Status.PASS
    return QACheck(
        "noise",
        status,
        value,
        f"noise ~{ref:.1f} HU std" + (" (high: low-dose or thin slices)" if status is Status.WARN else ""),
    )


def run_qa(volume: CTVolume, lungs: LungMask, cfg: PreprocessConfig) -> QAReport:
    """All checks on the loaded (not yet resampled) volume."""
    return QAReport(check_slices(volume, cfg) + check_anatomy(lungs) + [check_noise(lungs)])
