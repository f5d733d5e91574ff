"""Logging: stage events with timings as JSON lines on stderr, unknown levels refused, no patient fields."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lungcad.cli import main
from lungcad.errors import ConfigError
from lungcad.log import REDACTED, configure_logging, get_logger, is_phi_key, log_stage, parse_level

REPO = Path(__file__).resolve().parents[1]
SLAB = REPO / "tests" / "data" / "lidc_slab_0001"

PHI_VALUES = ("Doe^John", "PID-12345", "19600101", "ACC-778", "St Elsewhere")


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_detect_logs_every_stage_with_timings_as_json_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["--log-json", "--log-level", "INFO", "detect", str(SLAB), "--out", str(tmp_path / "o"), "--json"]
    )
    cap = capsys.readouterr()
    assert code == 0, cap.err
    json.loads(cap.out)  # stdout stays the result document alone
    events = _json_lines(cap.err)
    stages = [e["stage"] for e in events if e.get("event") == "stage"]
    for stage in ("model_load", "load", "preprocess", "network", "postprocess", "write"):
        assert stage in stages, (stage, stages)
    for e in events:
        if e.get("event") == "stage":
            assert isinstance(e["seconds"], float) and e["seconds"] >= 0
            assert e["level"] == "info" and e["logger"].startswith("lungcad")
    # the slab's real DICOM header carries patient fields: none of their values is logged
    text = cap.err
    assert "LIDC-IDRI-0001" not in text and "PatientName" not in text


def test_default_level_is_quiet_and_debug_level_shows_info(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(SLAB)]) == 0
    assert _json_lines(capsys.readouterr().err) == []
    assert main(["--log-json", "--log-level", "debug", "info", str(SLAB)]) == 0
    capsys.readouterr()
    log_stage("probe", 0.5)  # configured by the previous call: the level filter lets INFO through
    assert _json_lines(capsys.readouterr().err)[0]["stage"] == "probe"


def test_unknown_log_level_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--log-level", "LOUD", "info", str(SLAB)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "unknown log level 'LOUD'" in err and "DEBUG, INFO, WARNING, ERROR" in err
    with pytest.raises(ConfigError, match="unknown log level"):
        parse_level("verbose")
    assert parse_level("warning") == 30


@pytest.mark.parametrize(
    ("key", "phi"),
    [
        ("PatientName", True),
        ("patient_name", True),
        ("PatientID", True),
        ("OtherPatientIDs", True),
        ("PatientBirthDate", True),
        ("patient-birth-date", True),
        ("AccessionNumber", True),
        ("InstitutionName", True),
        ("stage", False),
        ("seconds", False),
        ("series_uid", False),
    ],
)
def test_phi_key_rule(key: str, phi: bool) -> None:
    assert is_phi_key(key) is phi


def test_scrubber_removes_patient_fields_at_any_depth(capsys: pytest.CaptureFixture[str]) -> None:
    import pydicom

    ds = pydicom.Dataset()
    ds.PatientName = "Doe^John"
    ds.PatientID = "PID-12345"
    for json_mode in (True, False):
        configure_logging(json=json_mode, level="DEBUG")
        get_logger("lungcad.test").info(
            "loaded",
            PatientName="Doe^John",
            patient_id="PID-12345",
            PatientBirthDate="19600101",
            meta={"AccessionNumber": "ACC-778", "site": {"InstitutionName": "St Elsewhere"}, "slices": 3},
            readers=[{"patient_name": "Doe^John"}],
            header=ds,
            stage="load",
        )
        err = capsys.readouterr().err
        for value in PHI_VALUES:
            assert value not in err
        assert REDACTED in err and "slices" in err and "load" in err
    configure_logging(json=False, level="WARNING")


def test_synth_and_evaluation_log_their_milestones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "small.yaml"
    config.write_text(
        "synth:\n  slice_spacing_range_mm: [5.0, 5.0]\n  vessel_points_per_tree: 200\n  p_no_nodule: 0\n"
    )
    cohort = tmp_path / "cohort"
    synth = ["synth", "--n", "1", "--out", str(cohort), "--format", "mhd", "--shape-xy", "96", "--json"]
    assert main(["--log-json", "--log-level", "INFO", "--config", str(config), *synth]) == 0
    events = _json_lines(capsys.readouterr().err)
    assert {"synth_scan", "synth"} <= {e.get("stage") for e in events}
    assert any(e["event"] == "synth.start" and e["scans"] == 1 for e in events)
    # evaluation's own milestone, with a detector that fails on the scan (no network run: fast)
    from lungcad.data.cohort import read_cohort
    from lungcad.errors import InputError
    from lungcad.evaluate.runner import run_cohort

    class Failing:
        def run(self, path: object) -> None:
            raise InputError("unreadable", path=str(path))

    run = run_cohort(Failing(), read_cohort(cohort), show_progress=False)  # type: ignore[arg-type]
    assert len(run.failed) == 1
    events = _json_lines(capsys.readouterr().err)
    assert any(e["event"] == "evaluate.scan_failed" and e["error"] == "InputError" for e in events)
    assert any(e.get("stage") == "evaluate_detect" and e["failed"] == 1 for e in events)
