"""``lungcad evaluate-froc``: numbers, files written, and a bad CSV row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lungcad.annotations.luna16 import (
    write_luna16_annotations,
    write_luna16_excluded,
    write_luna16_seriesuids,
    write_luna16_submission,
)
from lungcad.cli import main
from tests.evaluate.test_froc import CASE1_ANNOTATIONS, CASE1_CANDIDATES, CASE1_EXCLUDED


def _files(tmp_path: Path) -> list[str]:
    """The first case of test_froc.py: sensitivities (0, 0, .5, .5, .5, .5, .5), CPM 2.5 / 7."""
    write_luna16_annotations(CASE1_ANNOTATIONS, tmp_path / "a.csv")
    write_luna16_excluded(CASE1_EXCLUDED, tmp_path / "e.csv")
    write_luna16_seriesuids(["s1", "s2"], tmp_path / "s.csv")
    write_luna16_submission(CASE1_CANDIDATES, tmp_path / "c.csv")
    return [
        "evaluate-froc",
        *("--annotations", str(tmp_path / "a.csv"), "--excluded", str(tmp_path / "e.csv")),
        *("--seriesuids", str(tmp_path / "s.csv"), "--candidates", str(tmp_path / "c.csv")),
        *("--out", str(tmp_path / "out")),
    ]


def test_evaluate_froc_json_and_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*_files(tmp_path), "--bootstrap", "20", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sensitivities"] == [0.0, 0.0, 0.5, 0.5, 0.5, 0.5, 0.5]
    assert out["cpm"] == 2.5 / 7
    assert (
        out["counts"]["n_tp"] == 1 and out["counts"]["n_fp"] == 3 and out["counts"]["n_ignored_excluded"] == 1
    )
    assert out["bootstrap"]["n_samples"] + out["bootstrap"]["n_skipped"] == 20
    curve = (tmp_path / "out" / "froc.csv").read_text().splitlines()
    assert curve == [
        "fps_per_scan,sensitivity,threshold",
        "0.0,0.0,inf",
        "0.5,0.0,0.9",
        "0.5,0.5,0.8",
        "1.0,0.5,0.7",
        "1.5,0.5,0.5",
    ]
    assert (tmp_path / "out" / "froc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((tmp_path / "out" / "froc_bootstrap.csv").read_text().splitlines()) == 10001
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["cpm"] == 2.5 / 7


def test_evaluate_froc_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*_files(tmp_path), "--bootstrap", "0"]) == 0
    text = capsys.readouterr().out
    assert "CPM" in text and "0.3571" in text and "TP 1, FN 1, FP 3" in text
    assert "extended flat" in text


def test_evaluate_froc_bad_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _files(tmp_path)
    (tmp_path / "c.csv").write_text(
        "seriesuid,coordX,coordY,coordZ,probability\ns1,1,2,3,0.5\ns1,1,2,x,0.5\n"
    )
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "line 3: coordZ must be a finite number, got 'x'" in err and "c.csv" in err
    assert not (tmp_path / "out").exists()
