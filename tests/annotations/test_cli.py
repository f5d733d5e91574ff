"""``lungcad lidc`` on the bundled LIDC-IDRI-0001 slab and on bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lungcad.cli import main


def test_lidc_json(bundled_slab_0001: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lidc", str(bundled_slab_0001), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["series_uid"].endswith("179049373636438705059720603192")
    assert [len(r["nodules"]) for r in out["readers"]] == [1, 1, 1, 1]
    assert [len(r["small_nodules"]) for r in out["readers"]] == [3, 0, 3, 3]
    assert [len(r["non_nodules"]) for r in out["readers"]] == [4, 1, 8, 0]
    big = out["consensus"][0]
    assert big["n_readers"] == 4 and big["diameter_mm"] == 23.11 and big["lung_rads"] == "4B"
    assert big["center_xyz_mm"] == [56.4, 86.39, -115.8] and big["actionable"] is True
    assert out["scan_priority_lung_rads"] == "4B"


def test_lidc_tables(bundled_slab_0001: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lidc", str(bundled_slab_0001)]) == 0
    text = capsys.readouterr().out
    assert "consensus nodules" in text and "scan priority 4B" in text and "reader 540461523" in text


def test_lidc_without_xml_is_a_clear_error(
    bundled_slab_0001: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "series"
    shutil.copytree(bundled_slab_0001, folder, ignore=shutil.ignore_patterns("*.xml"))
    (folder / "068.xml").write_text('<IdriReadMessage xmlns="http://www.nih.gov/idri"></IdriReadMessage>')
    assert main(["lidc", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "no LIDC CT read XML" in err and "068.xml (<IdriReadMessage>)" in err and "Traceback" not in err
