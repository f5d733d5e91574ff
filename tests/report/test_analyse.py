"""``analyse_scan``, behind both ``lungcad detect`` and the service: files, progress, cancelling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lungcad.cli import build_app
from lungcad.cli.common import invocation
from lungcad.config import load_config
from lungcad.infer.detector import Detector
from lungcad.report.analyse import STAGES, analyse_scan
from tests.report.conftest import slab_series


class Cancelled(Exception):
    """What a job's progress callback raises when the job was cancelled."""


@pytest.fixture(scope="module")
def detector() -> Detector:
    """The shipped model with the configuration ``lungcad detect`` builds (defaults + ``LUNGCAD_*``)."""
    return Detector.load(config=load_config())


def canonical(path: Path) -> bytes:
    """``result.json`` without ``timings_s`` (wall-clock seconds, the one field two runs may differ in)."""
    doc = json.loads(path.read_text())
    assert "timings_s" in doc  # the field removed must be there, or the comparison would hide a rename
    del doc["timings_s"]
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def test_writes_the_files_and_reports_every_stage_in_order(detector: Detector, tmp_path: Path) -> None:
    calls: list[tuple[str, float]] = []
    out = analyse_scan(
        detector,
        slab_series(),
        tmp_path / "a",
        report=True,
        progress=lambda stage, f: calls.append((stage, f)),
    )
    # the slab has a shown finding, so key images too; then the report's files
    assert {"result", "candidates", "key_images", "report_pdf", "dicom_seg", "dicom_sr"} <= set(out.files)
    for path in out.files.values():
        assert Path(path).exists(), path
    assert Path(out.files["result"]) == tmp_path / "a" / "result.json" and out.out_dir == tmp_path / "a"
    assert json.loads((tmp_path / "a" / "result.json").read_text()) == out.result.to_dict()
    assert [s for s, _ in calls] == list(STAGES)
    assert list(STAGES) == ["load", "preprocess", "network", "postprocess", "write", "report", "done"]
    fractions = [f for _, f in calls]
    assert all(0.0 < f <= 1.0 for f in fractions)
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and fractions[-3] < 1.0
    # the network is the longest stage, so it moves the bar the most
    steps = {s: f - prev for (s, f), prev in zip(calls, [0.0, *fractions], strict=False)}
    assert max(steps, key=steps.__getitem__) == "network"
    assert {"load", "preprocess", "network", "postprocess", "write", "report", "total"} <= set(out.timings_s)
    assert out.timings_s["total"] >= out.result.timings_s["total"] + out.timings_s["report"]


def test_detect_only_writes_nothing(detector: Detector, tmp_path: Path) -> None:
    calls: list[str] = []
    out = analyse_scan(detector, slab_series(), None, progress=lambda stage, _: calls.append(stage))
    assert out.files == {} and out.out_dir is None and out.result.findings
    assert calls == ["load", "preprocess", "network", "postprocess", "done"]  # no write, no report


def test_result_json_is_the_clis(detector: Detector, tmp_path: Path) -> None:
    analyse_scan(detector, slab_series(), tmp_path / "lib")
    with invocation():
        run = CliRunner().invoke(build_app(), ["detect", str(slab_series()), "--out", str(tmp_path / "cli")])
    assert run.exit_code == 0, run.output
    assert f"wrote result: {tmp_path / 'cli' / 'result.json'}" in " ".join(run.output.split())
    lib, cli = tmp_path / "lib", tmp_path / "cli"
    assert canonical(lib / "result.json") == canonical(cli / "result.json")
    assert (lib / "candidates.csv").read_bytes() == (cli / "candidates.csv").read_bytes()


@pytest.mark.parametrize("stage", ["preprocess", "network"])
def test_a_raising_callback_cancels_the_run(detector: Detector, tmp_path: Path, stage: str) -> None:
    seen: list[str] = []

    def cancel_after(name: str, _: float) -> None:
        seen.append(name)
        if name == stage:
            raise Cancelled(f"job cancelled after {name}")

    with pytest.raises(Cancelled, match=f"after {stage}"):
        analyse_scan(detector, slab_series(), tmp_path / "c", report=True, progress=cancel_after)
    assert seen[-1] == stage  # nothing ran after the stage that cancelled
    assert not (tmp_path / "c").exists()  # cancelled before the write stage: no result.json to mistake


def test_a_report_needs_an_output_folder(detector: Detector) -> None:
    from lungcad.errors import InputError

    with pytest.raises(InputError, match="no output folder"):
        analyse_scan(detector, slab_series(), None, explain=True)
