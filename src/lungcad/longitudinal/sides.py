"""One side of a comparison: the scan, its lung mask, its ``ScanResult``, its study date and patient key.

Inputs (the choice, and why): each side is a *scan* -- a DICOM folder, ``.mhd`` or ``.nii[.gz]`` -- that
the comparison needs anyway, because registration reads the image and the lung mask.  Its findings come
either from running the detector (``Detector.run``, the function ``lungcad detect`` runs) or from an
existing ``result.json`` of that scan (``lungcad detect --out`` wrote it; the service stores one per
analysis), which skips the detection; the series UID of the result must then be the scan's.  A detect
output folder alone is not enough: ``result.json`` holds findings, not pixels, and does not name its scan.

Patients: the two scans must be of one patient.  DICOM carries PatientID (0010,0020); comparing two
patients would call every nodule new or resolved and give a wrong Lung-RADS without any sign of it, so a
mismatch is an error (``allow_different_patients`` overrides it, for phantoms and research copies).  The
identifiers are compared in memory and never printed or logged; a file format without them (MetaImage,
NIfTI) is not checked.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lungcad.config import PreprocessConfig
from lungcad.errors import InputError
from lungcad.infer.detector import DetectionOutput, Detector
from lungcad.infer.outputs import read_result_json
from lungcad.infer.risk import attach_risk
from lungcad.io.discover import choose_series
from lungcad.io.load import list_input, load_listed
from lungcad.preprocess.pipeline import preprocess_ct
from lungcad.types import CTVolume, ScanResult, ScanStatus


@dataclass
class Side:
    """What the comparison needs of one scan.

    Attributes:
        source: what was read (path or analysis id), for ``StudyRef.source``.
        volume: the preprocessed HU volume (1 mm, cropped to the lungs; world-exact).
        lungs: bool lung mask on ``volume``'s grid.
        result: the scan's findings (``result.json``).
        study_date: ISO date, or None.
        patient_key: SHA-256 of PatientID (never the identifier itself), or None when unknown.
        run: the detector's output when the side was detected here (``side_from_detection``), else None.
            Kept for the report (``report.comparison_report``): the finding masks on the preprocessed
            grid exist only in memory, and ``result.json`` does not hold them.
    """

    source: str
    volume: CTVolume
    lungs: np.ndarray
    result: ScanResult
    study_date: str | None = None
    patient_key: str | None = None
    run: DetectionOutput | None = None

    @property
    def study_uid(self) -> str:
        return self.volume.metadata.study_uid

    @property
    def series_uid(self) -> str:
        return self.result.series_uid or self.volume.metadata.series_uid


def iso_date(value: str | None, *, what: str = "study date") -> str | None:
    """DICOM DA ``YYYYMMDD`` or ISO ``YYYY-MM-DD`` -> ISO; None/empty -> None.

    Raises:
        InputError: anything else (named, with the expected forms).
    """
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    for form in ("%Y%m%d", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(text, form).date().isoformat()
        except ValueError:
            continue
    raise InputError(f"{what} {text!r} is not a date", fix="give it as YYYY-MM-DD (or DICOM YYYYMMDD)")


def interval_days(current: str | None, prior: str | None) -> int | None:
    """Days from the prior to the current study; None when either date is unknown.

    Raises:
        InputError: the prior study is after the current one (the arguments are swapped).
    """
    if current is None or prior is None:
        return None
    days = (dt.date.fromisoformat(current) - dt.date.fromisoformat(prior)).days
    if days < 0:
        raise InputError(
            f"the prior study ({prior}) is {-days} days after the current one ({current})",
            fix="give the newer scan first: lungcad compare CURRENT PRIOR",
        )
    return days


def _patient_key(path: str | Path, series_uid: str | None) -> str | None:
    """SHA-256 of the series' PatientID (0010,0020), or None (not DICOM, or no PatientID)."""
    listing = list_input(path, series_uid)
    if listing.found is None or not listing.found.ct_series():
        return None
    import pydicom

    info = choose_series(listing.found, series_uid)
    if not info.files:
        return None
    ds = pydicom.dcmread(info.files[0], stop_before_pixels=True, specific_tags=["PatientID"])
    pid = str(getattr(ds, "PatientID", "") or "").strip()
    return hashlib.sha256(pid.encode()).hexdigest() if pid else None


def side_from_detection(run: DetectionOutput, source: str, patient_key: str | None = None) -> Side:
    """A side from a detector run (``Detector.run``: the preprocessed volume and mask come with it);
    the run is kept on the side (``Side.run``) for a report of this scan."""
    if run.pre is None or run.volume is None:
        raise InputError(f"the detector produced no preprocessed scan for {source}")
    return _side(source, run.pre.volume, run.pre.lung_mask, run.result, patient_key, run)


def _side(
    source: str,
    volume: CTVolume,
    lungs: np.ndarray,
    result: ScanResult,
    key: str | None,
    run: DetectionOutput | None = None,
) -> Side:
    if result.status is ScanStatus.QA_FAILED or not lungs.any():
        raise InputError(
            f"no lungs were found in {source}: {result.reason or 'empty lung mask'}",
            fix="compare chest CT scans (both must pass detection's lung check)",
        )
    return Side(source, volume, lungs, result, iso_date(volume.metadata.study_date), key, run)


def load_side(
    source: str | Path,
    *,
    detector: Detector | None = None,
    result: ScanResult | None = None,
    series_uid: str | None = None,
    preprocess: PreprocessConfig | None = None,
) -> Side:
    """Read one side: detect on the scan, or take its existing ``result`` (then only preprocess).

    Raises:
        InputError: missing or unreadable scan, neither ``detector`` nor ``result``, a ``result`` of
            another series, or a scan without lungs.
    """
    if detector is None and result is None:
        raise InputError("a comparison side needs a detector or an existing result.json")
    key = _patient_key(source, series_uid)
    if result is None:
        assert detector is not None
        run = detector.run(source, series_uid)
        # as `lungcad detect` (report.analyse): every finding carries its Brock risk, so the side's
        # result.json and its report equal a detect run's (the header's age and sex, the rest unknown)
        risked = attach_risk(
            run.result, run.volume, run.pre, None, report_threshold=detector.cfg.infer.report_threshold
        )
        return side_from_detection(dataclasses.replace(run, result=risked), str(source), key)
    p = preprocess or PreprocessConfig()
    volume = load_listed(
        list_input(source, series_uid), series_uid, gap_factor=p.gap_factor, min_slices=p.min_slices
    )
    uid = volume.metadata.series_uid
    if result.series_uid and uid and result.series_uid != uid:
        raise InputError(
            f"result.json is of series {result.series_uid}, the scan is series {uid}",
            path=source,
            fix="give the result.json that lungcad detect wrote for this scan",
        )
    pre = preprocess_ct(volume, p)
    return _side(str(source), pre.volume, pre.lung_mask, result, key)


def check_same_patient(current: Side, prior: Side, *, allow_different: bool = False) -> str | None:
    """None when the sides are one patient (or unknown); the warning text when ``allow_different``.

    Raises:
        InputError: the PatientIDs differ and ``allow_different`` is False.
    """
    if current.patient_key is None or prior.patient_key is None or current.patient_key == prior.patient_key:
        return None
    message = "the two scans have different PatientIDs (0010,0020)"
    if allow_different:
        return message + ": compared anyway (allow_different_patients)"
    raise InputError(
        message,
        fix="compare two scans of one patient (--allow-different-patients: a phantom or a research copy)",
    )


RESULT_NAME = "result.json"
REPORT_INPUT = "report_input.json"  # written beside result.json by the report: names the scan


def resolve_input(path: str | Path, scan: str | Path | None = None) -> tuple[Path, ScanResult | None]:
    """``(scan, result)`` for one command-line side: a scan (result None: detect on it), or a
    ``lungcad detect --out`` folder holding ``result.json`` (its scan: ``scan``, else the one its
    ``report_input.json`` names).

    Raises:
        InputError: the path does not exist; an output folder whose scan is not known.
    """
    import json

    p = Path(path)
    if not p.exists():
        raise InputError(
            "path does not exist", path=p, fix="give a DICOM folder, .mhd/.nii.gz or a detect --out"
        )
    if not (p.is_dir() and (p / RESULT_NAME).is_file()):
        if scan is not None:
            raise InputError(
                "a scan was named for a path that is itself a scan (no result.json in it)",
                path=p,
                fix="name a scan only for a `lungcad detect --out` folder",
            )
        return p, None
    result = read_result_json(p / RESULT_NAME)
    if scan is None and (p / REPORT_INPUT).is_file():
        try:
            scan = json.loads((p / REPORT_INPUT).read_text()).get("scan")
        except (ValueError, AttributeError):
            scan = None
    if scan is None:
        raise InputError(
            "the detect output folder does not name its scan (no report_input.json)",
            path=p,
            fix="name the scan with --current-scan / --prior-scan",
        )
    if not Path(scan).exists():
        raise InputError("the scan of the result does not exist", path=scan, fix="name it with --*-scan")
    return Path(scan), result
