"""Brock (PanCan) malignancy risk of each finding, from the scan, its header and the request's options.

``attach_risk`` fills ``Finding.malignancy_risk`` (schema 2.2) with ``annotations.brock.brock_risk`` evaluated
on inputs gathered here once per scan:

* age and sex: the request's options when given, else the DICOM header (PatientAge (0010,1010), or the
  years between PatientBirthDate (0010,0030) and StudyDate (0008,0020) -- ``io.dicom`` derives it; the birth
  date itself is never kept) and PatientSex (0010,0040).  They are written to ``result.json`` because a
  reader must see what the number rests on; they are never logged.
* emphysema: %LAA-950 of the lung mask (``brock_inputs.emphysema_from_lung``) on the lung mask's own grid,
  the input strided without interpolation (interpolation would pull voxels above -950 HU and hide
  emphysema); a request option overrides it (a radiologist's visual score is what the paper used).
* upper lobe: the upper third of the lungs' craniocaudal extent (``brock_inputs.upper_lobe_from_position``);
  unknown when the lung mask reaches the first or the last slice (an apex or base outside the scan: the
  visible extent is not the lungs' height, e.g. a 40-slice slab).
* size: the **longest axial diameter** of the segmented nodule (the paper's "longest diameter"; the
  headline diameter is volume-equivalent and smaller), edge to edge on the 1 mm grid; the headline diameter
  when nothing was segmented or the size head's estimate was used (a note says so).
* type: the finding's texture; calcified -> not applicable.
* nodule count: the findings a reader is shown (probability >= ``infer.report_threshold``, the ones the
  scan priority is taken from), plus the finding itself when it is below that threshold.
* family history and spiculation: request options only (``RiskOptions``); lungcad does not measure
  spiculation, so it is unknown (absent used, listed in ``assumed``) unless a caller passes it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial import ConvexHull, QhullError

from lungcad.annotations.brock import BrockInputs, BrockResult, Sex, brock_risk
from lungcad.annotations.brock_inputs import (
    age_sex_from_metadata,
    emphysema_from_lung,
    lung_z_range_mm,
    upper_lobe_from_position,
)
from lungcad.contracts import BrockRiskInputs, MalignancyRisk, RiskInputSource
from lungcad.errors import InputError
from lungcad.types import CTVolume, DiameterSource, Finding, ScanResult, Texture

MODEL_NAME = "brock-pancan-2b"
# result.json is served as a de-identified file: under the HIPAA Safe Harbor rule an age above 89 identifies
# a patient, so ages of 90 or more are written -- and the model evaluated -- as 90 (a note says so).  The
# model extrapolates there anyway (PanCan enrolled 50-75); 95 -> 90 lowers the logit by 5 x 0.0287 = 0.14.
MAX_RECORDED_AGE_YEARS = 90.0
AGE_CAP_NOTE = "age: 90 or older, 90 used (an age above 89 identifies a patient; HIPAA Safe Harbor)"
_YES = {"yes": True, "y": True, "true": True, "1": True, "no": False, "n": False, "false": False, "0": False}


@dataclass(frozen=True)
class RiskOptions:
    """What a scan cannot give, from the request (``None``: not given).

    Attributes:
        family_history: a first-degree relative with lung cancer.
        age_years: overrides the header's age (18-110 years).
        sex: overrides the header's sex ("male" / "female").
        emphysema: a visual emphysema read; overrides the %LAA-950 estimate.
        spiculation: every reported nodule's margin is spiculated (True) or not (False).
    """

    family_history: bool | None = None
    age_years: float | None = None
    sex: Sex | None = None
    emphysema: bool | None = None
    spiculation: bool | None = None

    def __post_init__(self) -> None:
        age = self.age_years
        if age is not None and (isinstance(age, bool) or not math.isfinite(age) or not 18 <= age <= 110):
            raise InputError(f"age must be 18-110 years, got {age!r}", fix="pass the age in whole years")
        if self.sex is not None and self.sex not in ("male", "female"):
            raise InputError(f'sex must be "male" or "female", got {self.sex!r}', fix="pass M or F")

    def to_dict(self) -> dict[str, Any]:
        """The options given (unset ones left out), in a fixed key order: ``{}`` when none."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


def parse_yes_no(value: str | bool | None, what: str) -> bool | None:
    """``"yes"`` / ``"no"`` (also y/n, true/false, 1/0; any case) -> bool; None -> None."""
    if value is None or isinstance(value, bool):
        return value
    try:
        return _YES[str(value).strip().lower()]
    except KeyError:
        raise InputError(f"{what} must be yes or no, got {value!r}", fix=f"pass {what} yes|no") from None


def parse_sex(value: str | None) -> Sex | None:
    """``"M"`` / ``"male"`` -> "male", ``"F"`` / ``"female"`` -> "female"; None -> None."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in ("m", "male"):
        return "male"
    if text in ("f", "female"):
        return "female"
    raise InputError(f"sex must be M or F, got {value!r}", fix="pass M or F (the model has two levels)")


def longest_axial_diameter_mm(mask: np.ndarray, spacing_zyx_mm: tuple[float, float, float]) -> float:
    """Longest in-plane (axial) diameter of a boolean mask ``(z, y, x)``, edge to edge, in mm.

    Per slice, the largest distance between two voxel centres (over the convex hull's vertices) plus one
    voxel, so a single voxel measures one voxel: a 5-voxel row at 1 mm -> 4 + 1 = 5 mm.

    Raises:
        InputError: an empty mask.
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise InputError("the nodule mask is empty: no diameter to measure")
    sy, sx = float(spacing_zyx_mm[1]), float(spacing_zyx_mm[2])
    best = 0.0
    for z in np.flatnonzero(mask.any(axis=(1, 2))):
        pts = np.argwhere(mask[z]).astype(np.float64) * (sy, sx)
        if len(pts) > 3:
            try:
                pts = pts[ConvexHull(pts).vertices]
            except QhullError:  # collinear voxels: every point is on the hull
                pass
        d = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)).max()
        best = max(best, float(d))
    return best + min(sy, sx)


@dataclass(frozen=True)
class ScanInputs:
    """The per-scan inputs (``scan_inputs``): patient, emphysema, lung extent."""

    age_years: float | None
    sex: Sex | None
    age_source: RiskInputSource
    sex_source: RiskInputSource
    emphysema: bool | None
    emphysema_percent: float | None
    emphysema_source: RiskInputSource
    lung_z_range_mm: tuple[float, float] | None  # None: the lungs are not wholly in the scan
    age_capped: bool = False  # the age was above 89 and is recorded as 90 (MAX_RECORDED_AGE_YEARS)


def scan_inputs(
    volume: CTVolume, lungs_hu: CTVolume | None, lung_mask: np.ndarray | None, options: RiskOptions
) -> ScanInputs:
    """Age, sex, emphysema and the lung extent of one scan.

    Args:
        volume: the input scan (its metadata holds the header's age and sex).
        lungs_hu: the volume the lung mask is on (``Preprocessed.lungs.grid``), or None.
        lung_mask: bool lung mask on ``lungs_hu``'s grid, or None.
        options: the request's options (they take precedence over the header and the CT).
    """
    header_age, header_sex = age_sex_from_metadata(volume.metadata)
    if header_age is not None and not 18 <= header_age <= 110:
        header_age = None  # a child or an implausible header: unknown rather than an error
    age, age_src = _pick(options.age_years, header_age, RiskInputSource.DICOM)
    capped = age is not None and age > MAX_RECORDED_AGE_YEARS
    age = MAX_RECORDED_AGE_YEARS if capped else age
    sex, sex_src = _pick(options.sex, header_sex, RiskInputSource.DICOM)
    percent = emph = z_range = None
    if lungs_hu is not None and lung_mask is not None and np.any(lung_mask):
        percent, emph = emphysema_from_lung(lungs_hu.hu, lung_mask)
        percent = round(percent, 2)
        slices = np.flatnonzero(np.asarray(lung_mask).any(axis=(1, 2)))
        if slices[0] > 0 and slices[-1] < lung_mask.shape[0] - 1:
            z_range = lung_z_range_mm(lungs_hu, lung_mask)
    emphysema, emph_src = _pick(options.emphysema, emph, RiskInputSource.CT)
    return ScanInputs(age, sex, age_src, sex_src, emphysema, percent, emph_src, z_range, capped)


def _pick(option: Any, measured: Any, source: RiskInputSource) -> tuple[Any, RiskInputSource]:
    if option is not None:
        return option, RiskInputSource.REQUEST
    if measured is not None:
        return measured, source
    return None, RiskInputSource.UNKNOWN


def finding_risk(
    f: Finding,
    scan: ScanInputs,
    options: RiskOptions,
    nodule_count: int,
    spacing_zyx_mm: tuple[float, float, float] | None,
) -> MalignancyRisk | None:
    """The Brock risk of one finding (None when it has no texture: nothing to evaluate)."""
    if f.texture is None:
        return None
    notes: list[str] = [AGE_CAP_NOTE] if scan.age_capped else []
    segmented = (
        f.mask is not None
        and spacing_zyx_mm is not None
        and bool(np.any(f.mask))
        and f.diameters is not None
        and f.diameters.source is DiameterSource.SEGMENTATION
    )
    if segmented:
        diameter = round(longest_axial_diameter_mm(f.mask, spacing_zyx_mm), 2)  # type: ignore[arg-type]
    else:
        diameter = float(f.diameter_mm)
        notes.append("size: no segmentation, the headline diameter was used (may understate the risk)")
    upper = None
    if scan.lung_z_range_mm is not None:
        upper = upper_lobe_from_position(float(f.center_xyz_mm[2]), scan.lung_z_range_mm)
    else:
        notes.append("upper lobe: the lungs are not wholly in the scan, the upper zone was not estimated")
    inputs = BrockInputs(
        diameter_mm=diameter,
        nodule_type=f.texture,
        age_years=scan.age_years,
        sex=scan.sex,
        family_history=options.family_history,
        emphysema=scan.emphysema,
        upper_lobe=upper,
        nodule_count=nodule_count,
        spiculation=options.spiculation,
    )
    result: BrockResult = brock_risk(inputs)
    known = lambda v, src: src if v is not None else RiskInputSource.UNKNOWN  # noqa: E731
    sources = {
        "age": scan.age_source,
        "sex": scan.sex_source,
        "family_history": known(options.family_history, RiskInputSource.REQUEST),
        "emphysema": scan.emphysema_source,
        "size": RiskInputSource.CT if segmented else RiskInputSource.FINDINGS,
        "nodule_type": RiskInputSource.FINDINGS,
        "upper_lobe": known(upper, RiskInputSource.CT),
        "nodule_count": RiskInputSource.FINDINGS,
        "spiculation": known(options.spiculation, RiskInputSource.REQUEST),
    }
    return MalignancyRisk(
        model=MODEL_NAME,
        applicable=result.applicable,
        probability=result.probability,
        linear_predictor=result.linear_predictor,
        terms=dict(result.terms),
        inputs=BrockRiskInputs(  # the model's inputs as given, plus where each came from
            **{**dataclasses.asdict(inputs), "nodule_type": Texture(f.texture)},
            emphysema_laa950_percent=scan.emphysema_percent,
            sources=sources,
        ),
        assumed=result.assumed,
        notes=(*result.notes, *notes) if result.applicable else (),
        reason=result.reason,
    )


def brock_inputs_of(risk: MalignancyRisk) -> BrockInputs:
    """The ``BrockInputs`` a stored risk was evaluated with (to check or re-evaluate it)."""
    i = risk.inputs
    return BrockInputs(
        diameter_mm=i.diameter_mm,
        nodule_type=i.nodule_type,
        age_years=i.age_years,
        sex=i.sex,
        family_history=i.family_history,
        emphysema=i.emphysema,
        upper_lobe=i.upper_lobe,
        nodule_count=i.nodule_count,
        spiculation=i.spiculation,
    )


def attach_risk(
    result: ScanResult,
    volume: CTVolume | None,
    pre: Any | None,
    options: RiskOptions | None = None,
    *,
    report_threshold: float,
) -> ScanResult:
    """``result`` with every finding's ``malignancy_risk`` filled in (findings otherwise unchanged).

    Args:
        result: the detector's result (findings with their in-memory masks).
        volume: the input scan (header age and sex), or None.
        pre: the scan's ``Preprocessed`` (lung mask, 1 mm grid of the finding masks), or None.
        options: the request's options.
        report_threshold: findings at or above it are the scan's nodules for the count.
    """
    if not result.findings or volume is None:
        return result
    options = options or RiskOptions()
    lungs = getattr(pre, "lungs", None)
    scan = scan_inputs(volume, getattr(lungs, "grid", None), getattr(lungs, "mask", None), options)
    spacing = pre.volume.spacing_zyx_mm if pre is not None else None
    reported = sum(1 for f in result.findings if f.probability >= report_threshold)
    findings = [
        dataclasses.replace(
            f,
            malignancy_risk=finding_risk(
                f, scan, options, max(1, reported + (f.probability < report_threshold)), spacing
            ),
        )
        for f in result.findings
    ]
    return dataclasses.replace(result, findings=findings)
