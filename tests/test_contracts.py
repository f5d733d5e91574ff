"""The result contract (``lungcad.contracts``): enums everywhere, typed fields, JSON through one adapter."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import numpy as np
import pytest

from lungcad.errors import InputError
from lungcad.types import (
    SCHEMA_VERSION,
    CheckStatus,
    DiameterEstimates,
    DiameterSource,
    Finding,
    HUStats,
    LungRads,
    MaskRef,
    QACheck,
    QAReport,
    ScanResult,
    ScanStatus,
    Texture,
)
from tests.conftest import REPO


def _finding(**kw: object) -> Finding:
    return Finding(
        center_xyz_mm=(1.0, 2.0, 3.0),
        diameter_mm=6.2,
        center_zyx_vox=(4.0, 5.0, 6.0),
        volume_mm3=124.8,
        probability=0.8,
        texture=Texture.SOLID,
        triage_probability=0.3,
        lung_rads=LungRads.C3,
        raw_probability=0.7,
        raw_triage_probability=0.2,
        diameters=DiameterEstimates(DiameterSource.SEGMENTATION, 7.0, 6.2),
        hu_stats=HUStats(mean_hu=20.5, max_hu=110.0),
        solid_component_mm=6.2,
        mask_ref=MaskRef((1, 2, 3), (2, 2, 2)),
        center_zyx_preprocessed=(10.0, 11.0, 12.0),
        mask=np.ones((2, 2, 2), dtype=bool),
        **kw,  # type: ignore[arg-type]
    )


def _result(findings: list[Finding]) -> ScanResult:
    qa = QAReport([QACheck("noise", CheckStatus.PASS, {"air_hu_std": np.float64(12.5)}, "noise ~12.5 HU")])
    return ScanResult(
        "1.2.3", findings, status=ScanStatus.OK, qa=qa, priority=LungRads.C3, timings_s={"a": 1}
    )


def published_schema() -> dict:
    return json.loads((REPO / "docs" / "schema" / f"scan_result-{SCHEMA_VERSION}.json").read_text())


def test_strings_become_enums_and_bad_ones_are_clear_errors() -> None:
    f = Finding((0.0, 0.0, 0.0), 5.0, texture="part-solid", lung_rads="4A")  # type: ignore[arg-type]
    assert f.texture is Texture.PART_SOLID and f.lung_rads is LungRads.C4A
    with pytest.raises(InputError, match=r"'5' is not a valid LungRads.*lung_rads one of \['1', '2'"):
        Finding((0.0, 0.0, 0.0), 5.0, lung_rads="5")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="'glass' is not a valid Texture"):
        Finding((0.0, 0.0, 0.0), 5.0, texture="glass")  # type: ignore[arg-type]
    r = ScanResult("x", [], status="qa_failed", priority="2", reason="no lung")  # type: ignore[arg-type]
    assert r.status is ScanStatus.QA_FAILED and r.priority is LungRads.C2


def test_finding_serialises_typed_fields_and_never_the_mask() -> None:
    d = _finding().to_dict()
    assert "mask" not in d and "extra" not in d
    assert d["diameters"] == {"source": "segmentation", "size_head_mm": 7.0, "segmentation_mm": 6.2}
    assert d["hu_stats"] == {"mean_hu": 20.5, "max_hu": 110.0}
    assert d["mask_ref"] == {"offset_zyx": [1, 2, 3], "shape_zyx": [2, 2, 2]}
    assert (d["texture"], d["lung_rads"], d["center_xyz_mm"]) == ("solid", "3", [1.0, 2.0, 3.0])
    ground_truth = Finding((0.0, 0.0, 0.0), 5.0).to_dict()  # detector fields stay null
    assert ground_truth["diameters"] is None and ground_truth["raw_probability"] is None


def test_scan_result_document_is_schema_valid_and_plain_json() -> None:
    doc = _result([_finding(), Finding((0.0, 0.0, 0.0), 5.0)]).to_dict()
    assert next(iter(doc)) == "schema_version" and doc["schema_version"] == SCHEMA_VERSION == "2.2"
    assert (doc["status"], doc["priority"], doc["reason"]) == ("ok", "3", None)
    assert doc["qa"] == {
        "checks": [
            {"name": "noise", "status": "pass", "value": {"air_hu_std": 12.5}, "message": "noise ~12.5 HU"}
        ],
        "verdict": "pass",
    }
    assert json.loads(json.dumps(doc)) == doc  # no numpy values or tuples left
    jsonschema.validate(doc, published_schema())
    bad = doc | {"outputs": {"result": "r.json"}}  # what detect --json printed in 1.0
    with pytest.raises(jsonschema.ValidationError, match="outputs"):
        jsonschema.validate(bad, published_schema())


def test_qa_verdict_is_the_worst_status() -> None:
    assert QAReport().verdict is CheckStatus.PASS
    checks = [QACheck("a", CheckStatus.WARN, 1, ""), QACheck("b", CheckStatus.PASS, np.int64(2), "")]
    report = QAReport(checks)
    assert report.verdict is CheckStatus.WARN and type(report.get("b").value) is int
    report.checks.append(QACheck("c", "fail", None, ""))  # type: ignore[arg-type]
    assert report.verdict is CheckStatus.FAIL
    with pytest.raises(KeyError):
        report.get("missing")


def test_one_definition_of_each_type() -> None:
    from lungcad.annotations import lungrads
    from lungcad.preprocess import qa

    assert lungrads.LungRads is LungRads and qa.Status is CheckStatus
    assert qa.QAReport is QAReport and qa.QACheck is QACheck
    assert [c.rank for c in LungRads] == list(range(6)) and LungRads.C4A.rank > LungRads.C3.rank


def test_the_contract_imports_no_pipeline_stage() -> None:
    code = "import sys, lungcad.types; print(sorted(m for m in sys.modules if m.startswith('lungcad')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert eval(out) == ["lungcad", "lungcad.contracts", "lungcad.errors", "lungcad.types"]


def test_from_dict_round_trips_a_real_result_and_refuses_a_foreign_document() -> None:
    """``result.json`` read back gives the same document; the computed QA verdict is not an input."""
    import pydantic

    from lungcad.contracts import CheckStatus, QACheck, QAReport, ScanResult, ScanStatus

    qa = QAReport([QACheck("lung_coverage", CheckStatus.FAIL, 0.4, "lungs cut at the apex")])
    finding = Finding(center_xyz_mm=(1.0, 2.0, 3.0), diameter_mm=6.5, probability=0.8, lung_rads="3")
    result = ScanResult(
        "1.2.3", [finding], status=ScanStatus.QA_WARNING, reason="lung_coverage: cut", qa=qa, priority="3"
    )
    doc = result.to_dict()
    assert doc["qa"]["verdict"] == "fail"
    back = ScanResult.from_dict(doc)
    assert back.to_dict() == doc and back.findings[0].lung_rads is LungRads.C3
    with pytest.raises(pydantic.ValidationError):
        ScanResult.from_dict({**doc, "outputs": {}})  # a 1.0-style extra key
    with pytest.raises(pydantic.ValidationError):
        ScanResult.from_dict([doc])  # type: ignore[arg-type]
