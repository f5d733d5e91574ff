"""Fixtures of the report tests: one detection + report of the bundled LIDC slab, shared by the module."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO

SLAB = REPO / "tests" / "data" / "lidc_slab_0001"


def slab_series() -> Path:
    return next(p for p in SLAB.glob("*/*") if p.is_dir())


def need_tool(name: str) -> str:
    """The path of a command-line tool, or skip the test saying how to install it."""
    path = shutil.which(name)
    if path is None:
        pkg = {"dciodvfy": "dicom3tools", "pdftotext": "poppler-utils", "pdftoppm": "poppler-utils"}[name]
        pytest.skip(f"{name} not installed (apt-get install {pkg}, or `make system-deps`)")
    return path


def dciodvfy_errors(path: Path) -> list[str]:
    """The ``Error`` lines dciodvfy prints for a DICOM file (warnings are not errors)."""
    run = subprocess.run([need_tool("dciodvfy"), str(path)], capture_output=True, text=True, check=False)
    return [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]


def pdf_text(path: Path) -> str:
    run = subprocess.run(
        [need_tool("pdftotext"), "-layout", str(path), "-"], capture_output=True, text=True, check=True
    )
    return run.stdout


@dataclass
class Rendered:
    run: object  # DetectionOutput
    files: object  # ReportFiles
    out: Path
    min_probability: float
    detector: object = None


def render_detection(scan: Path, out: Path) -> Rendered:
    import dataclasses

    from lungcad.infer.detector import Detector
    from lungcad.infer.outputs import write_outputs
    from lungcad.infer.risk import attach_risk
    from lungcad.report.rerender import report_detection

    detector = Detector.load()
    run = detector.run(scan)
    threshold = detector.cfg.infer.report_threshold
    # as analyse_scan does: every finding carries its Brock risk (schema 2.2)
    run = dataclasses.replace(
        run, result=attach_risk(run.result, run.volume, run.pre, None, report_threshold=threshold)
    )
    write_outputs(run.result, run.volume, out, threshold)
    files = report_detection(run, detector, out, min_probability=threshold)
    return Rendered(run, files, out, threshold, detector)


@pytest.fixture(scope="session")
def slab_report(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """Detection (about 2 s) and the full report of the slab, once per session."""
    return render_detection(slab_series(), tmp_path_factory.mktemp("slab_report"))
