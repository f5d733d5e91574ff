"""The Brock risk and the comparison with a prior study: the report (PDF text), the SR (coded content)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from lungcad.errors import InputError
from lungcad.longitudinal.contract import (
    Comparison,
    DoublingTime,
    MatchingSettings,
    NoduleChange,
    Registration,
    StudyRef,
)
from lungcad.report.render import render_report
from lungcad.report.risk_text import percent
from lungcad.report.shown import ReportOptions, shown_findings
from tests.report.conftest import Rendered, dciodvfy_errors, pdf_text

pytestmark = pytest.mark.slow

PRIOR_STUDY = "1.2.826.0.1.3680043.8.498.1"
PRIOR_SERIES = "1.2.826.0.1.3680043.8.498.2"


def _comparison(result, top_index: int) -> Comparison:
    """The slab's top nodule grown from 20 to 23.9 mm over 365 days, and one nodule resolved since."""
    f = result.findings[top_index]
    prior_volume = f.volume_mm3 / 1.8
    growing = NoduleChange(
        status="growing",
        current_index=top_index,
        prior_index=0,
        current_center_xyz_mm=f.center_xyz_mm,
        prior_center_xyz_mm=f.center_xyz_mm,
        prior_center_registered_xyz_mm=f.center_xyz_mm,
        current_diameter_mm=f.diameter_mm,
        prior_diameter_mm=20.0,
        current_volume_mm3=f.volume_mm3,
        prior_volume_mm3=prior_volume,
        texture=f.texture,
        diameter_change_mm=f.diameter_mm - 20.0,
        volume_change_pct=80.0,
        doubling_time=DoublingTime(
            days=430.5, low_days=300.2, high_days=760.9, log_ratio=float(np.log(1.8)), log_ratio_sd=0.1
        ),
        registered_distance_mm=0.4,
        current_probability=f.probability,
        prior_probability=0.99,
        lung_rads="4B",
        lung_rads_baseline=f.lung_rads,
        lung_rads_rule="growing solid nodule >= 8 mm: 4B",
    )
    resolved = NoduleChange(
        status="resolved",
        current_index=None,
        prior_index=1,
        current_center_xyz_mm=None,
        prior_center_xyz_mm=(10.0, 20.0, -100.0),
        prior_center_registered_xyz_mm=(10.0, 20.0, -100.0),
        current_diameter_mm=None,
        prior_diameter_mm=6.0,
        current_volume_mm3=None,
        prior_volume_mm3=113.0,
        texture="solid",
        diameter_change_mm=None,
        volume_change_pct=None,
        doubling_time=None,
        registered_distance_mm=None,
        current_probability=None,
        prior_probability=0.8,
        lung_rads=None,
        lung_rads_baseline=None,
        lung_rads_rule="resolved",
    )
    return Comparison(
        current=StudyRef("", result.series_uid, "2001-01-01", "current", 1),
        prior=StudyRef(PRIOR_STUDY, PRIOR_SERIES, "2000-01-02", "prior", 2),
        interval_days=365,
        registration=Registration(
            "euler3d+affine",
            "mattes_mi",
            -0.5,
            2.0,
            0.80,
            0.95,
            1.2,
            True,
            3.0,
            [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]],
        ),  # fmt: skip
        matching=MatchingSettings(15.0, 2.0, 5.0, 0.5, 0.1, 1.5, 0.1),
        nodules=[growing, resolved],
        priority="4B",
    )


@pytest.fixture(scope="module")
def followup(slab_report: Rendered, tmp_path_factory: pytest.TempPathFactory):
    run = slab_report.run
    top = shown_findings(run.result, slab_report.min_probability)[0]
    comparison = _comparison(run.result, top.index)
    out = tmp_path_factory.mktemp("followup")
    files = render_report(
        run.result,
        run.volume,
        out,
        options=ReportOptions(min_probability=slab_report.min_probability),
        pre=run.pre,
        comparison=comparison,
    )
    return run, top, comparison, files, out


def test_pdf_shows_the_risk_with_assumed_inputs(slab_report: Rendered) -> None:
    text = " ".join(pdf_text(slab_report.files.pdf).split())
    top = shown_findings(slab_report.run.result, slab_report.min_probability)[0].finding
    risk = top.malignancy_risk
    assert risk is not None and risk.probability is not None
    assert "Malignancy risk (Brock / PanCan model 2b)" in text
    assert percent(risk.probability) in text
    assert "unknown*" in text and f"{len(risk.assumed)} inputs not known" in text
    assert "not a model of growth on follow-up" in text
    assert "Comparison with prior study" not in text  # no comparison given


def test_pdf_has_the_comparison_section(followup) -> None:
    _, top, _, files, _ = followup
    text = " ".join(pdf_text(files.pdf).split())
    assert "Comparison with prior study" in text
    assert (
        "2000-01-02" in text
        and PRIOR_STUDY in text
        and "365 days (12.0 months), 2000-01-02 to 2001-01-01" in text
    )
    assert "1 growing, 1 resolved" in text
    row = f"Nodule 1 growing 20.0 mm -> {top.finding.diameter_mm:.1f} mm"
    assert row in text and "+80 %" in text and "430 d (300-761)" in text
    assert "prior #2 resolved" in text
    line = f"Growing since 2000-01-02: 20.0 mm -> {top.finding.diameter_mm:.1f} mm (+"
    assert line in text and "VDT 430 d (300-761)." in text  # under the key image
    # the follow-up category replaces the baseline one in the management box
    assert "Lung-RADS 4B" in text and "doubling time take precedence" in text


def test_sr_carries_risk_and_comparison_as_coded_content(followup) -> None:
    import highdicom as hd

    run, top, comparison, files, _ = followup
    sr = hd.sr.srread(files.sr)
    groups = sr.content.get_volumetric_roi_measurement_groups(tracking_uid=None)
    g = next(g for g in groups if g.tracking_identifier == "Nodule 1")
    measured = {(m.name.value, m.name.scheme_designator): m for m in g.get_measurements()}
    cancer = measured[("111047", "DCM")]
    assert cancer.value == pytest.approx(100 * top.finding.malignancy_risk.probability, rel=1e-12)
    assert cancer.unit.value == "%"
    assert cancer.method.value == "BROCK-2B" and cancer.method.scheme_designator == "99LUNGCAD"
    assert measured[("VDT", "99LUNGCAD")].value == pytest.approx(430.5)
    assert measured[("VDT-LOW", "99LUNGCAD")].value == pytest.approx(300.2)
    assert measured[("V-CHANGE", "99LUNGCAD")].value == pytest.approx(80.0)
    evaluations = {(e.name.value, e.value.value) for e in g.get_qualitative_evaluations()}
    assert ("INTERVAL", "15454001") in evaluations  # SCT Increased size
    assert ("LR-CAT", "LR-4B") in evaluations  # Lung-RADS with the prior rules
    assumed = {v for k, v in evaluations if k == "BROCK-ASSUMED"}
    assert "BR-FH" in assumed and "BR-SPIC" in assumed

    # the prior study, referenced by its UIDs and date
    def walk(items):
        for item in items:
            yield item
            yield from walk(getattr(item, "ContentSequence", []))

    items = list(walk(pydicom.dcmread(files.sr).ContentSequence))
    uids = {i.ConceptNameCodeSequence[0].CodeValue: i.UID for i in items if i.ValueType == "UIDREF"}
    assert uids["110180"] == PRIOR_STUDY and uids["112002"] == PRIOR_SERIES
    dates = [i.Date for i in items if i.ValueType == "DATE"]
    assert "20000102" in dates
    ids = [i.TextValue for i in items if i.ValueType == "TEXT"]
    assert "Prior study" in ids and "Prior nodule 2" in ids


def test_followup_sr_passes_dciodvfy(followup) -> None:
    assert dciodvfy_errors(followup[3].sr) == []


def test_calcified_reads_not_applicable_in_the_sr(slab_report: Rendered) -> None:
    import highdicom as hd

    shown = shown_findings(slab_report.run.result, slab_report.min_probability)
    sr = hd.sr.srread(slab_report.files.sr)
    for g in sr.content.get_volumetric_roi_measurement_groups():
        f = next(s.finding for s in shown if s.label == g.tracking_identifier)
        names = {m.name.value for m in g.get_measurements()}
        evaluations = {(e.name.value, e.value.value) for e in g.get_qualitative_evaluations()}
        if f.malignancy_risk is not None and not f.malignancy_risk.applicable:
            assert "111047" not in names and ("BROCK", "BROCK-NA") in evaluations
        else:
            assert "111047" in names


def test_a_comparison_of_another_series_is_refused(followup, tmp_path: Path) -> None:
    run, _, comparison, _, _ = followup
    import dataclasses

    other = dataclasses.replace(
        comparison, current=dataclasses.replace(comparison.current, series_uid="1.2.3")
    )
    with pytest.raises(InputError, match="the comparison is of series 1.2.3"):
        render_report(run.result, run.volume, tmp_path, comparison=other, options=ReportOptions(dicom=False))


def test_a_real_comparison_of_the_slab_with_itself_reads_stable(
    slab_report: Rendered, tmp_path: Path
) -> None:
    """``lungcad.longitudinal.compare_scans`` (the real registration and matching) into the report."""
    import highdicom as hd

    from lungcad.longitudinal.compare import compare_scans
    from tests.report.conftest import slab_series

    run = slab_report.run
    comparison, _, _ = compare_scans(
        slab_series(),
        slab_series(),
        current_result=run.result,
        prior_result=run.result,
        current_date="2001-01-10",
        prior_date="2000-01-05",
        preprocess=slab_report.detector.cfg.preprocess,
    )
    assert comparison.counts()["stable"] >= 1 and comparison.registration.ok
    files = render_report(
        run.result,
        run.volume,
        tmp_path,
        options=ReportOptions(min_probability=slab_report.min_probability),
        pre=run.pre,
        comparison=comparison,
    )
    text = " ".join(pdf_text(files.pdf).split())
    assert "371 days (12.2 months), 2000-01-05 to 2001-01-10" in text
    assert "Nodule 1 stable" in text and "no growth (>" in text
    sr = hd.sr.srread(files.sr)
    g = next(
        g for g in sr.content.get_volumetric_roi_measurement_groups() if g.tracking_identifier == "Nodule 1"
    )
    assert ("INTERVAL", "STABLE") in {(e.name.value, e.value.value) for e in g.get_qualitative_evaluations()}
    assert dciodvfy_errors(files.sr) == []
