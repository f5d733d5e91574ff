"""``lungcad compare``: reusing detect output folders (no detection run), the JSON it prints, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from lungcad.cli import main
from lungcad.io.image import save_volume
from lungcad.longitudinal.schema import comparison_schema
from lungcad.types import Finding, ScanResult, Texture
from tests.longitudinal.conftest import Pair


def _detect_dir(folder: Path, volume, findings: list[Finding]) -> Path:
    """What ``lungcad detect --out`` leaves: result.json, and report_input.json naming the scan."""
    folder.mkdir(parents=True)
    scan = save_volume(volume, folder / f"{volume.metadata.series_uid}.mhd")  # an .mhd: its stem is the uid
    result = ScanResult(volume.metadata.series_uid, findings)
    (folder / "result.json").write_text(json.dumps(result.to_dict()))
    (folder / "report_input.json").write_text(json.dumps({"scan": str(scan)}))
    return folder


@pytest.fixture(scope="module")
def folders(phantom_pair: Pair, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("compare_cli")
    nodule = (-60.0, -10.0, -10.0)
    prior = _detect_dir(root / "prior", phantom_pair.prior, [Finding(nodule, 6.0, texture=Texture.SOLID)])
    current = _detect_dir(
        root / "current",
        phantom_pair.current,
        [Finding(phantom_pair.map(nodule), 8.0, texture=Texture.SOLID)],
    )
    return current, prior


def test_compare_detect_folders_prints_and_writes_comparison_json(
    folders: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    current, prior = folders
    argv = ["compare", str(current), str(prior), "--out", str(tmp_path / "out"), "--json"]
    code = main([*argv, "--current-date", "2024-07-01", "--prior-date", "2024-01-01"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    doc = json.loads(captured.out)
    jsonschema.validate(doc, comparison_schema())
    assert doc == json.loads((tmp_path / "out" / "comparison.json").read_text())
    assert not (tmp_path / "out" / "current").exists()  # the findings were given: no result.json copied
    (n,) = doc["nodules"]
    assert n["status"] == "growing" and n["lung_rads"] == "4B" and doc["interval_days"] == 182
    assert n["registered_distance_mm"] < 2.0 and n["doubling_time"]["days"] > 0


def test_table_output(folders: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    current, prior = folders
    assert main(["compare", str(current), str(prior)]) == 0
    out = capsys.readouterr().out
    assert "registration euler3d+affine" in out and "growing" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing_current", "{prior}"], "path does not exist"),
        (["{current}", "{prior}", "--metric", "cosine"], "mattes_mi or mean_squares"),
        (["{prior}", "{current}"], "give the newer scan first"),
        (["{current}", "{prior}", "--current-date", "2024-13-45"], "not a date"),
        (["{bare}", "{prior}"], "does not name its scan"),
        (["{prior}/1.2.3.1.mhd", "{current}", "--current-scan", "{prior}/1.2.3.1.mhd"], "itself a scan"),
    ],
)
def test_bad_input_exits_2_with_the_problem(
    folders: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    current, prior = folders
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "result.json").write_text((current / "result.json").read_text())
    dates = ["--prior-date", "2024-06-01", "--current-date", "2024-01-01"] if args[0] == "{prior}" else []
    argv = [a.format(current=current, prior=prior, bare=bare) for a in args]
    assert main(["compare", *argv, *dates]) == 2
    assert message in capsys.readouterr().err
