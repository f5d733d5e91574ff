"""Brock risk wired into the result (``lungcad.infer.risk``, schema 2.2): same numbers as ``brock_risk``,
inputs from the header, the CT and the request, each request option moving the logit by its coefficient."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from lungcad.annotations import brock
from lungcad.annotations.brock import BrockInputs, brock_risk
from lungcad.cli import main
from lungcad.contracts import RiskInputSource
from lungcad.errors import InputError
from lungcad.infer.detector import Detector
from lungcad.infer.risk import (
    RiskOptions,
    attach_risk,
    brock_inputs_of,
    longest_axial_diameter_mm,
    parse_sex,
    parse_yes_no,
    scan_inputs,
)
from lungcad.io.dicom import age_from_dates
from lungcad.report.analyse import analyse_scan
from lungcad.types import (
    SCHEMA_VERSION,
    CTVolume,
    Finding,
    ScanResult,
    SeriesMetadata,
    Texture,
)
from tests.conftest import REPO

SLAB = REPO / "tests" / "data" / "lidc_slab_0001"


@pytest.fixture(scope="module")
def slab_run():
    """One detection of the bundled slab with the shipped model (reused: the risk is recomputed per test)."""
    det = Detector.load()
    return det, det.run(SLAB)


def _risk(result: ScanResult, k: int = 0):
    r = result.findings[k].malignancy_risk
    assert r is not None
    return r


def test_result_json_risk_equals_brock_risk_on_the_same_inputs(slab_run, tmp_path: Path) -> None:
    det, _ = slab_run
    out = analyse_scan(det, SLAB, tmp_path, risk=RiskOptions(family_history=True, age_years=66))
    doc = json.loads((tmp_path / "result.json").read_text())
    assert doc["schema_version"] == SCHEMA_VERSION == "2.2"
    jsonschema.validate(doc, json.loads((REPO / "docs/schema/scan_result-2.2.json").read_text()))
    back = ScanResult.from_dict(doc)
    n_applicable = 0
    for f in back.findings:
        r = f.malignancy_risk
        assert r is not None and r.model == "brock-pancan-2b"
        direct = brock_risk(brock_inputs_of(r))
        assert r.applicable is direct.applicable and r.reason == direct.reason
        if f.texture is Texture.CALCIFIED:
            assert not r.applicable and r.probability is None and "calcified" in (r.reason or "")
            continue
        n_applicable += 1
        assert r.probability == direct.probability  # exactly: JSON keeps every float digit
        assert r.linear_predictor == direct.linear_predictor and r.terms == direct.terms
        assert r.assumed == direct.assumed
        assert math.fsum(r.terms.values()) == r.linear_predictor
    assert n_applicable > 0
    # the request's options reached the model; the header had no age or sex (anonymised LIDC)
    top = back.findings[0].malignancy_risk
    assert top is not None
    assert (top.inputs.family_history, top.inputs.age_years, top.inputs.sex) == (True, 66, None)
    assert top.inputs.sources["family_history"] is RiskInputSource.REQUEST
    assert top.inputs.sources["age"] is RiskInputSource.REQUEST
    assert top.inputs.sources["sex"] is RiskInputSource.UNKNOWN
    assert any(a.startswith("sex: unknown") for a in top.assumed)
    assert top.terms["family_history"] == brock.FAMILY_HISTORY
    assert top.terms["age"] == pytest.approx(brock.AGE_PER_YEAR * 4, abs=1e-12)
    # the slab is 40 slices: the lungs leave the scan at both ends, so no upper-zone estimate
    assert top.inputs.upper_lobe is None and top.inputs.sources["upper_lobe"] is RiskInputSource.UNKNOWN
    # the in-memory result is the written one
    assert out.result.to_dict()["findings"] == doc["findings"]


def test_each_option_moves_the_logit_by_its_coefficient(slab_run) -> None:
    det, run = slab_run
    thr = det.cfg.infer.report_threshold

    def logit(**kw: object) -> float:
        res = attach_risk(run.result, run.volume, run.pre, RiskOptions(**kw), report_threshold=thr)  # type: ignore[arg-type]
        return float(_risk(res).linear_predictor)  # type: ignore[arg-type]

    base = logit()
    assert logit(family_history=True) - base == pytest.approx(brock.FAMILY_HISTORY, abs=1e-12)
    assert logit(family_history=False) == base
    assert logit(sex="female") - base == pytest.approx(brock.FEMALE, abs=1e-12)
    assert logit(sex="male") == base  # the reference level; "unknown" used it too
    assert logit(age_years=72) - base == pytest.approx(10 * brock.AGE_PER_YEAR, abs=1e-12)
    assert logit(spiculation=True) - base == pytest.approx(brock.SPICULATION, abs=1e-12)
    assert logit(emphysema=True) - base == pytest.approx(brock.EMPHYSEMA, abs=1e-12)  # CT said 2.6 %: no
    assert logit(sex="female", family_history=True, age_years=72) - base == pytest.approx(
        brock.FEMALE + brock.FAMILY_HISTORY + 10 * brock.AGE_PER_YEAR, abs=1e-12
    )


def test_nodule_count_is_the_reported_findings(slab_run) -> None:
    det, run = slab_run
    thr = det.cfg.infer.report_threshold
    res = attach_risk(run.result, run.volume, run.pre, None, report_threshold=thr)
    reported = sum(f.probability >= thr for f in res.findings)
    for f in res.findings:
        assert f.malignancy_risk is not None
        expected = reported if f.probability >= thr else reported + 1
        assert f.malignancy_risk.inputs.nodule_count == max(1, expected)
    # a lower threshold counts more nodules, and each one's risk goes down (negative count coefficient)
    low = attach_risk(run.result, run.volume, run.pre, None, report_threshold=0.0)
    applicable = [k for k, f in enumerate(res.findings) if f.texture is not Texture.CALCIFIED][0]
    assert low.findings[applicable].malignancy_risk.inputs.nodule_count == len(res.findings)  # type: ignore[union-attr]
    assert _risk(low, applicable).probability < _risk(res, applicable).probability


def _volume(meta: SeriesMetadata, hu: np.ndarray | None = None) -> CTVolume:
    return CTVolume(np.zeros((4, 4, 4), np.float32) if hu is None else hu, (1.0, 1.0, 1.0), metadata=meta)


def test_age_and_sex_come_from_the_header_unless_the_request_overrides() -> None:
    vol = _volume(SeriesMetadata(patient_age="065Y", patient_sex="F"))
    s = scan_inputs(vol, None, None, RiskOptions())
    assert (s.age_years, s.sex, s.age_source, s.sex_source) == (65.0, "female", "dicom", "dicom")
    s = scan_inputs(vol, None, None, RiskOptions(age_years=70, sex="male"))
    assert (s.age_years, s.sex, s.age_source, s.sex_source) == (70, "male", "request", "request")
    s = scan_inputs(_volume(SeriesMetadata(patient_age="006M", patient_sex="O")), None, None, RiskOptions())
    assert (s.age_years, s.sex, s.age_source, s.sex_source) == (None, None, "unknown", "unknown")  # a child
    # PatientBirthDate + StudyDate give the age when PatientAge is absent (io.dicom); the date is not kept
    assert (
        age_from_dates("19520315", "20170314") == "064Y" and age_from_dates("19520315", "20170315") == "065Y"
    )
    assert age_from_dates("1952", "20170315") is None and age_from_dates("20200101", "20190101") is None
    assert "birth" not in " ".join(f.name for f in dataclasses.fields(SeriesMetadata))


def test_emphysema_and_upper_zone_from_the_lung_mask() -> None:
    # 10 slices of lung inside a 12-slice scan (the apex and base are in it), z = 0..11 mm, +z superior
    hu = np.full((12, 10, 10), -850.0, np.float32)
    mask = np.zeros(hu.shape, bool)
    mask[1:11] = True  # 1000 lung voxels
    hu[1:11].reshape(-1)[:60] = -960.0  # 60 of them below -950 HU: 6.0 % -> emphysema
    vol = _volume(SeriesMetadata(), hu)
    s = scan_inputs(vol, vol, mask, RiskOptions())
    assert (s.emphysema_percent, s.emphysema, s.emphysema_source) == (6.0, True, "ct")
    assert s.lung_z_range_mm == (1.0, 10.0)
    assert scan_inputs(vol, vol, mask, RiskOptions(emphysema=False)).emphysema is False
    # upper third of 1..10 mm: z >= 10 - 3 = 7 mm
    hi = Finding((5.0, 5.0, 8.0), 6.0, probability=0.9, texture=Texture.SOLID)
    lo = Finding((5.0, 5.0, 3.0), 6.0, probability=0.9, texture=Texture.SOLID)
    res = attach_risk(ScanResult("1", [hi, lo]), vol, None, None, report_threshold=0.5)
    r_hi, r_lo = _risk(res, 0), _risk(res, 1)
    assert (r_hi.inputs.upper_lobe, r_lo.inputs.upper_lobe) == (None, None)  # no Preprocessed: no mask
    mask_full = np.ones(hu.shape, bool)  # lung on the first and last slice: cut off, no estimate
    assert scan_inputs(vol, vol, mask_full, RiskOptions()).lung_z_range_mm is None


def test_longest_axial_diameter_is_edge_to_edge() -> None:
    m = np.zeros((3, 9, 9), bool)
    m[1, 4, 2:7] = True  # a 5-voxel row
    assert longest_axial_diameter_mm(m, (1.0, 1.0, 1.0)) == pytest.approx(5.0)
    m[1, 2:7, 4] = True  # a plus sign: still 5
    assert longest_axial_diameter_mm(m, (1.0, 1.0, 1.0)) == pytest.approx(5.0)
    m[1, 2, 2] = m[1, 6, 6] = True  # a diagonal of 4 steps: 4 * sqrt(2) + 1
    assert longest_axial_diameter_mm(m, (1.0, 0.5, 0.5)) == pytest.approx(0.5 * 4 * math.sqrt(2) + 0.5)
    with pytest.raises(InputError, match="empty"):
        longest_axial_diameter_mm(np.zeros((2, 2, 2), bool), (1.0, 1.0, 1.0))


def test_calcified_is_not_applicable_and_no_texture_gets_no_risk() -> None:
    f = Finding((0.0, 0.0, 0.0), 6.0, texture=Texture.CALCIFIED)
    g = Finding((0.0, 0.0, 0.0), 6.0)
    res = attach_risk(ScanResult("1", [f, g]), _volume(SeriesMetadata()), None, None, report_threshold=0.5)
    r = _risk(res, 0)
    assert not r.applicable and r.probability is None and r.terms == {} and r.assumed == ()
    assert res.findings[1].malignancy_risk is None
    # the headline diameter is used without a segmentation, and the risk says so
    s = attach_risk(
        ScanResult("1", [Finding((0.0, 0.0, 0.0), 6.0, texture=Texture.SOLID)]),
        _volume(SeriesMetadata()),
        None,
        None,
        report_threshold=0.5,
    )
    assert _risk(s).inputs.diameter_mm == 6.0 and any("headline diameter" in n for n in _risk(s).notes)
    assert (
        _risk(s).probability
        == brock_risk(BrockInputs(6.0, "solid", nodule_count=1, emphysema=None)).probability
    )


def test_bad_options_are_clear_errors() -> None:
    with pytest.raises(InputError, match="age must be 18-110 years, got 12"):
        RiskOptions(age_years=12)
    with pytest.raises(InputError, match="sex must be M or F, got 'X'"):
        parse_sex("X")
    with pytest.raises(InputError, match="--family-history must be yes or no, got 'maybe'"):
        parse_yes_no("maybe", "--family-history")
    assert (parse_yes_no("YES", "x"), parse_yes_no("n", "x"), parse_sex("f"), parse_sex(None)) == (
        True,
        False,
        "female",
        None,
    )
    assert RiskOptions(family_history=True, age_years=70.0).to_dict() == {
        "family_history": True,
        "age_years": 70.0,
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sex", "X"], "sex must be M or F"),
        (["--family-history", "maybe"], "--family-history must be yes or no"),
        (["--age", "130"], "age must be 18-110 years"),
    ],
)
def test_detect_cli_refuses_bad_risk_options(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["detect", str(SLAB), *args]) == 2
    assert message in " ".join(capsys.readouterr().err.split())


def test_detect_cli_options_reach_result_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--family-history", "yes", "--sex", "F", "--age", "70", "--out", str(tmp_path)]
    assert main(["detect", str(SLAB), *args]) == 0
    doc = json.loads((tmp_path / "result.json").read_text())
    r = doc["findings"][0]["malignancy_risk"]
    assert (r["inputs"]["family_history"], r["inputs"]["sex"], r["inputs"]["age_years"]) == (
        True,
        "female",
        70.0,
    )
    assert {r["inputs"]["sources"][k] for k in ("family_history", "sex", "age")} == {"request"}
    assert r["terms"]["sex"] == brock.FEMALE and "Brock" in capsys.readouterr().out


def test_older_result_documents_stay_readable(slab_run) -> None:
    _, run = slab_run
    doc = run.result.to_dict()
    for version in ("2.1", "2.0"):
        old = {**doc, "schema_version": version, "findings": [
            {k: v for k, v in f.items() if k != "malignancy_risk"} for f in doc["findings"]
        ]}  # fmt: skip
        if version == "2.0":
            old["findings"] = [
                {k: v for k, v in f.items() if k not in ("lesion_kind", "detector_probability")}
                for f in old["findings"]
            ]
        back = ScanResult.from_dict(old)
        assert back.schema_version == SCHEMA_VERSION and all(f.malignancy_risk is None for f in back.findings)
    with pytest.raises(Exception, match="schema_version"):
        ScanResult.from_dict({**doc, "schema_version": "9.9"})


def test_ages_above_89_are_recorded_and_used_as_90() -> None:
    """result.json is a de-identified file: an age above 89 would identify the patient (HIPAA)."""
    f = Finding((0.0, 0.0, 0.0), 8.0, probability=0.9, texture=Texture.SOLID)
    for meta, options in (
        (SeriesMetadata(patient_age="094Y"), RiskOptions()),
        (SeriesMetadata(), RiskOptions(age_years=97)),
    ):
        res = attach_risk(ScanResult("1", [f]), _volume(meta), None, options, report_threshold=0.5)
        r = _risk(res)
        assert r.inputs.age_years == 90.0 and any("90 or older" in n for n in r.notes)
        assert r.probability == brock_risk(brock_inputs_of(r)).probability
        assert r.terms["age"] == pytest.approx(28 * brock.AGE_PER_YEAR, abs=1e-12)
    r89 = _risk(
        attach_risk(
            ScanResult("1", [f]),
            _volume(SeriesMetadata(patient_age="089Y")),
            None,
            None,
            report_threshold=0.5,
        )
    )
    assert r89.inputs.age_years == 89.0 and not any("90 or older" in n for n in r89.notes)
