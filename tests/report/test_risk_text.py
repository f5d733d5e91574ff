"""How the report words the Brock risk (``report.risk_text``): cells, flags, the one line, the worst case."""

from __future__ import annotations

import math

import numpy as np

from lungcad.annotations import brock
from lungcad.annotations.brock import BrockInputs, brock_risk
from lungcad.infer.risk import RiskOptions, attach_risk
from lungcad.report.risk_text import (
    NOT_APPLICABLE,
    NOT_COMPUTED,
    percent,
    risk_cell,
    risk_explanation,
    risk_inputs,
    risk_row,
    worst_case,
)
from lungcad.types import CTVolume, Finding, ScanResult, SeriesMetadata, Texture


def _with_risk(finding: Finding, meta: SeriesMetadata | None = None, **options: object) -> Finding:
    volume = CTVolume(np.zeros((2, 2, 2), np.float32), (1.0, 1.0, 1.0), metadata=meta or SeriesMetadata())
    result = attach_risk(
        ScanResult("1", [finding]),
        volume,
        None,
        RiskOptions(**options),
        report_threshold=0.5,  # type: ignore[arg-type]
    )
    return result.findings[0]


def test_percent_keeps_two_places_below_one_percent() -> None:
    assert (percent(0.2266), percent(0.00421), percent(0.01), percent(1.0)) == (
        "22.7 %",
        "0.42 %",
        "1.0 %",
        "100.0 %",
    )


def test_cells_name_the_source_and_flag_the_unknown() -> None:
    f = _with_risk(
        Finding((0.0, 0.0, 0.0), 8.0, probability=0.9, texture=Texture.SOLID),
        SeriesMetadata(patient_age="066Y"),
        family_history=True,
    )
    cells = risk_inputs(f.malignancy_risk)  # type: ignore[arg-type]
    assert cells["age"] == "66 y (DICOM)" and cells["family_history"] == "yes (given)"
    assert cells["sex"] == cells["spiculation"] == cells["emphysema"] == cells["upper_lobe"] == "unknown*"
    assert cells["count"] == "1 (CAD)" and cells["size"] == "8.0 mm (headline)"
    assert risk_cell(f) == percent(f.malignancy_risk.probability)  # type: ignore[union-attr]


def test_the_line_names_the_biggest_terms_and_the_worst_case() -> None:
    f = _with_risk(
        Finding((0.0, 0.0, 0.0), 12.0, probability=0.9, texture=Texture.PART_SOLID),
        SeriesMetadata(patient_age="065Y", patient_sex="F"),
        family_history=False,
        emphysema=False,
        spiculation=False,
    )
    r = f.malignancy_risk
    assert r is not None
    # only upper lobe unknown (no lung mask): the worst case puts the nodule in an upper lobe
    assert (
        worst_case(r)
        == brock_risk(
            BrockInputs(12.0, "part-solid", 65.0, "female", False, False, True, 1, False)
        ).probability
    )
    assert math.isclose(
        math.log(worst_case(r) / (1 - worst_case(r))) - r.linear_predictor, brock.UPPER_LOBE, abs_tol=1e-12
    )
    line = risk_explanation(f)
    size = r.terms["size"]
    assert line.startswith(f"{percent(r.probability)}: raised most by size {size:+.2f} and female sex +0.60")
    assert "1 input not known (*), up to " in line and "if it were unfavourable" in line


def test_unknown_age_and_sex_take_75_years_and_female_in_the_worst_case() -> None:
    f = _with_risk(Finding((0.0, 0.0, 0.0), 6.0, probability=0.9, texture=Texture.SOLID))
    r = f.malignancy_risk
    assert r is not None
    expected = brock_risk(BrockInputs(6.0, "solid", 75.0, "female", True, True, True, 1, True)).probability
    assert worst_case(r) == expected


def test_calcified_and_old_results() -> None:
    calcified = _with_risk(Finding((0.0, 0.0, 0.0), 6.0, probability=0.9, texture=Texture.CALCIFIED))
    assert risk_cell(calcified) == NOT_APPLICABLE and worst_case(calcified.malignancy_risk) is None  # type: ignore[arg-type]
    assert risk_explanation(calcified).startswith("Calcified (benign pattern)")
    assert risk_row(3, calcified)["inputs"] is None
    old = Finding((0.0, 0.0, 0.0), 6.0, probability=0.9, texture=Texture.SOLID)
    assert risk_cell(old) == NOT_COMPUTED and "before schema 2.2" in risk_explanation(old)
