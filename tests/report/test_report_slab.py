"""The full report of the bundled LIDC slab (always runs): SEG, SR, PDF, dciodvfy, rerender, CLI."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from lungcad.cli import main
from tests.report.checks import seg_dice, sr_matches
from tests.report.conftest import Rendered, dciodvfy_errors, need_tool, pdf_text, slab_series

pytestmark = pytest.mark.slow


def test_files_are_written(slab_report: Rendered) -> None:
    files = slab_report.files
    assert files.skipped == []
    for path in (files.html, files.pdf, files.view3d, files.labels, files.seg, files.sr, files.pdf_dicom):
        assert path is not None and path.is_file() and path.stat().st_size > 0
    assert {p.name for p in files.figures} == {"nodule_01.png", "overview_mip.png", "overview_3d.png"}
    assert (slab_report.out / "report_input.json").is_file()


def test_seg_reprojects_to_our_mask(slab_report: Rendered) -> None:
    dice = seg_dice(slab_report.out, slab_report.run.volume)
    assert dice and all(d == 1.0 for d in dice.values()), dice


def test_label_map_is_the_segmentation_in_world_space(slab_report: Rendered) -> None:
    """The re-projected mask sits on the finding (centroid within 2 mm) and has its volume (within 5 %)."""
    from lungcad.report.masks import read_label_map

    volume = slab_report.run.volume
    labels = read_label_map(slab_report.out / "nodules.nii.gz", volume)
    f = next(f for f in slab_report.run.result.findings if f.probability >= slab_report.min_probability)
    assert labels.sources[1] == "segmentation"
    idx = np.argwhere(labels.labels == 1)
    centroid = volume.voxel_to_world(idx.mean(axis=0))
    assert np.linalg.norm(centroid - np.asarray(f.center_xyz_mm)) < 2.0
    voxel_mm3 = float(np.prod(volume.spacing_zyx_mm))
    assert len(idx) * voxel_mm3 == pytest.approx(f.volume_mm3, rel=0.05)


def test_sr_groups_are_the_shown_findings(slab_report: Rendered) -> None:
    sr_matches(slab_report.out, slab_report.run.result, slab_report.min_probability)


@pytest.mark.parametrize("name", ["seg.dcm", "sr.dcm", "report_pdf.dcm"])
def test_dciodvfy_reports_no_error(slab_report: Rendered, name: str) -> None:
    assert dciodvfy_errors(slab_report.out / "dicom" / name) == []


def test_pdf_renders_and_holds_the_nodule_row(slab_report: Rendered, tmp_path: Path) -> None:
    text = pdf_text(slab_report.files.pdf)
    f = next(f for f in slab_report.run.result.findings if f.probability >= slab_report.min_probability)
    x = f"{f.center_xyz_mm[0]:.1f},"
    row = next(line for line in text.splitlines() if line.strip().startswith("1 ") and x in line)
    for cell in (f.lung_rads.value, f"{f.diameter_mm:.1f} mm", f.texture.value, f"{f.probability:.2f}"):
        assert cell in row, (cell, row)
    assert "QA FAILED - results not reliable" in text  # the slab cuts the lungs: coverage fails
    assert "not a medical device" in text
    subprocess.run(
        [need_tool("pdftoppm"), "-r", "30", "-png", str(slab_report.files.pdf), str(tmp_path / "p")],
        check=True,
    )
    assert sorted(tmp_path.glob("p-*.png"))


def test_encapsulated_pdf_holds_the_report(slab_report: Rendered) -> None:
    import pydicom

    from lungcad.report.dicom_pdf import pdf_bytes

    ds = pydicom.dcmread(slab_report.files.pdf_dicom)
    assert pdf_bytes(ds) == slab_report.files.pdf.read_bytes()
    src = slab_report.run.volume
    assert ds.StudyInstanceUID == src.metadata.study_uid and ds.Modality == "DOC"


def test_report_command_rerenders_with_a_new_threshold(slab_report: Rendered, tmp_path: Path, capsys) -> None:
    """``lungcad report DIR --min-probability 0.1`` shows more findings; the first keeps its mask."""
    import shutil

    out = tmp_path / "again"
    shutil.copytree(slab_report.out, out)
    assert main(["report", str(out), "--min-probability", "0.1", "--no-dicom"]) == 0
    assert "wrote report_pdf" in capsys.readouterr().out
    # --no-dicom skips the DICOM objects, not the patient header read from the source slices
    assert "LIDC-IDRI-0001" in (out / "report" / "report.html").read_text()
    from lungcad.report.masks import read_label_map

    labels = read_label_map(out / "nodules.nii.gz", slab_report.run.volume)
    assert len(labels.sources) > 1 and labels.sources[1] == "segmentation"
    before = read_label_map(slab_report.out / "nodules.nii.gz", slab_report.run.volume)
    np.testing.assert_array_equal(labels.labels == 1, before.labels == 1)


def test_report_command_needs_a_result(tmp_path: Path, capsys) -> None:
    assert main(["report", str(tmp_path)]) == 2
    assert "no result.json" in capsys.readouterr().err


def test_detect_report_needs_out(capsys) -> None:
    assert main(["detect", str(slab_series()), "--report"]) == 2
    assert "--out" in capsys.readouterr().err


def test_gradcam_looks_at_the_nodule(slab_report: Rendered) -> None:
    """The Grad-CAM maximum of the centre-heatmap head lies within the nodule's diameter of its centre."""
    from lungcad.report.figures.gradcam import CUBE, gradcam_cube

    run = slab_report.run
    f = next(f for f in run.result.findings if f.probability >= slab_report.min_probability)
    cam, grid = gradcam_cube(slab_report.detector.model, run.pre.image, run.pre.volume.grid, f)
    assert cam.shape == (CUBE,) * 3 and cam.min() >= 0.0 and cam.max() == pytest.approx(1.0)
    peak = grid.voxel_to_world(np.asarray(np.unravel_index(np.argmax(cam), cam.shape), float))
    assert np.linalg.norm(peak - np.asarray(f.center_xyz_mm)) < f.diameter_mm / 2
