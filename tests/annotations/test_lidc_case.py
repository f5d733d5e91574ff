"""``lungcad lidc`` takes the patient folder that ``info``, ``ingest``, ``detect`` take (issue 9: 14)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from lungcad.annotations.lidc_case import locate_lidc_case
from lungcad.cli import main
from lungcad.errors import AnnotationError
from lungcad.io.dicom_write import write_ct_series
from lungcad.types import CTVolume
from tests.annotations.conftest import SERIES_0001
from tests.conftest import REPO

BUNDLED_PATIENT = REPO / "tests" / "data" / "lidc_slab_0001"


def _lidc_json(path: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["lidc", str(path), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_lidc_accepts_the_patient_folder(bundled_slab_0001: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from_series = _lidc_json(bundled_slab_0001, capsys)
    from_patient = _lidc_json(BUNDLED_PATIENT, capsys)
    assert from_patient == from_series
    assert from_patient["series_uid"] == SERIES_0001 and from_patient["xml"].endswith("69.xml")


def _other_series(out: Path, modality: str, seed: str) -> None:
    hu = np.full((3, 16, 16), -700.0, dtype=np.float32)
    for p in write_ct_series(CTVolume(hu, (2.0, 0.7, 0.7)), out, uid_seed=seed).paths:
        ds = pydicom.dcmread(p)
        ds.Modality = modality
        ds.save_as(p)


def _patient_folder(tmp_path: Path, bundled_slab_0001: Path) -> Path:
    """LIDC-IDRI-0001 as TCIA ships it: a CT study with 069.xml and a CXR study with an IDRI XML."""
    patient = tmp_path / "LIDC-IDRI-0001"
    shutil.copytree(bundled_slab_0001, patient / "01-01-2000-30178" / "3000566-03192")
    cxr = patient / "01-01-2000-35511" / "3000923-62357"
    _other_series(cxr, "CR", "cxr")
    (cxr / "068.xml").write_text('<IdriReadMessage xmlns="http://www.nih.gov/idri"></IdriReadMessage>')
    return patient


def test_lidc_in_a_tcia_patient_folder_picks_the_ct_and_its_xml(
    tmp_path: Path, bundled_slab_0001: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    patient = _patient_folder(tmp_path, bundled_slab_0001)
    case = locate_lidc_case(patient)
    assert case.series.series_uid == SERIES_0001 and case.xml_path.name == "69.xml"
    out = _lidc_json(patient, capsys)
    assert [len(r["nodules"]) for r in out["readers"]] == [1, 1, 1, 1]
    assert out["consensus"][0]["lung_rads"] == "4B"


def test_lidc_prefers_the_annotated_ct_series(tmp_path: Path, bundled_slab_0001: Path) -> None:
    patient = _patient_folder(tmp_path, bundled_slab_0001)
    # A second CT series with more slices but no XML: intake would pick it, lidc picks the annotated one.
    hu = np.full((20, 16, 16), -700.0, dtype=np.float32)
    write_ct_series(CTVolume(hu, (2.0, 0.7, 0.7)), patient / "01-01-2000-30178" / "9999", uid_seed="big")
    assert locate_lidc_case(patient).series.series_uid == SERIES_0001


def test_lidc_without_a_matching_xml_lists_what_it_saw(tmp_path: Path, bundled_slab_0001: Path) -> None:
    patient = _patient_folder(tmp_path, bundled_slab_0001)
    next(patient.rglob("69.xml")).unlink()
    with pytest.raises(
        AnnotationError, match=r"no LIDC CT read XML .* for series .*068.xml \(<IdriReadMessage>\)"
    ):
        locate_lidc_case(patient)


def test_lidc_on_the_real_patient_folder(real_data: Path) -> None:
    patient = real_data / "lidc" / "LIDC-IDRI-0001"
    if not patient.is_dir():
        pytest.skip(f"LIDC-IDRI-0001 not found at {patient}")
    case = locate_lidc_case(patient)
    assert case.series.series_uid == SERIES_0001 and case.xml_path.name == "069.xml"
    assert len(case.series.files) == 133
