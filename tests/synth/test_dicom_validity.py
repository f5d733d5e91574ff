"""Generated DICOM is valid CT Image Storage: dicom3tools (dciodvfy, dcentvfy), pydicom, SimpleITK."""

from __future__ import annotations

import json
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import CTImageStorage

from lungcad.io import load_ct


def _series(cohort_dir: Path) -> list[Path]:
    scan = json.loads((cohort_dir / "manifest.json").read_text())["scans"][0]
    return sorted((cohort_dir / scan["dicom_dir"]).glob("*.dcm"))


def _run(tool: str, args: list[str]) -> str:
    done = subprocess.run([tool, *args], capture_output=True, text=True, timeout=120, check=False)
    return done.stdout + done.stderr


@pytest.mark.parametrize("tool", ["dciodvfy", "dcentvfy"])
def test_dicom3tools_report_no_errors(cohort_dir: Path, tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} not installed (Debian/Ubuntu: apt-get install dicom3tools)")
    files = _series(cohort_dir)
    # dciodvfy checks one object against the CT Image IOD; dcentvfy checks the series' shared entities.
    targets = (
        [[str(f)] for f in (files[0], files[len(files) // 2], files[-1])]
        if tool == "dciodvfy"
        else [[str(f) for f in files]]
    )
    for args in targets:
        report = _run(tool, args)
        errors = [line for line in report.splitlines() if line.startswith("Error")]
        assert not errors, f"{tool} {args[0]}:\n{report}"
        for line in report.splitlines():
            if line.startswith("Warning"):
                warnings.warn(f"{tool}: {line}", stacklevel=1)


def test_pydicom_and_simpleitk_read_the_series(cohort_dir: Path) -> None:
    files = _series(cohort_dir)
    ds = pydicom.dcmread(files[0])
    assert ds.SOPClassUID == CTImageStorage and ds.Modality == "CT"
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert (float(ds.RescaleSlope), float(ds.RescaleIntercept)) == (1.0, -1024.0)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(files[0].parent)))
    image = reader.Execute()
    ours = load_ct(files[0].parent)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image).astype(np.float32), ours.hu)
    np.testing.assert_allclose(image.GetOrigin(), ours.origin_xyz_mm, rtol=0, atol=1e-6)
    np.testing.assert_allclose(image.GetSpacing()[:2], ours.spacing_xyz_mm[:2], rtol=0, atol=1e-9)
