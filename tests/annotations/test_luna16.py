"""LUNA16 CSV readers and writers: exact round trips, line-numbered errors, the real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from lungcad.annotations.luna16 import (
    read_luna16_annotations,
    read_luna16_candidates,
    read_luna16_candidates_with_version,
    read_luna16_excluded,
    read_luna16_seriesuids,
    read_luna16_submission,
    write_luna16_annotations,
    write_luna16_candidates,
    write_luna16_excluded,
    write_luna16_seriesuids,
    write_luna16_submission,
)
from lungcad.annotations.model import LunaAnnotation, LunaCandidate
from lungcad.errors import AnnotationError

HEADER = "seriesuid,coordX,coordY,coordZ,diameter_mm\n"
ROWS = [
    LunaAnnotation("1.2.3", 0.1, -175.3192718, -298.3875064, 5.651470635),
    LunaAnnotation("1.2.3", 1e-300, 2.0, -0.0, 30.0),
    LunaAnnotation("4.5.6", -128.6994211, 1 / 3, 1234567.125, 3.0000000000000004),
]


def _write(tmp_path: Path, text: str, name: str = "f.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_annotations_round_trip_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "out" / "annotations.csv"
    write_luna16_annotations(ROWS, path)
    assert path.read_text().splitlines()[0] == HEADER.strip()
    assert read_luna16_annotations(path) == ROWS


def test_excluded_round_trip_keeps_unknown_diameter(tmp_path: Path) -> None:
    rows = [LunaAnnotation("1.2.3", -131.8964945, -155.0567015, -317.8, -1.0), ROWS[0]]
    write_luna16_excluded(rows, tmp_path / "e.csv")
    assert read_luna16_excluded(tmp_path / "e.csv") == rows


def test_candidates_and_submission_round_trip(tmp_path: Path) -> None:
    cands = [
        LunaCandidate("1.2.3", -56.08, -67.85, -311.92, 0.0),
        LunaCandidate("1.2.3", 53.21, -244.41, -245.17, 1.0),
    ]
    write_luna16_candidates(cands, tmp_path / "c.csv")
    assert (tmp_path / "c.csv").read_text().splitlines() == [
        "seriesuid,coordX,coordY,coordZ,class",
        "1.2.3,-56.08,-67.85,-311.92,0",
        "1.2.3,53.21,-244.41,-245.17,1",
    ]
    assert read_luna16_candidates(tmp_path / "c.csv") == cands
    write_luna16_candidates(cands, tmp_path / "v.csv", label_column="label")
    assert read_luna16_candidates_with_version(tmp_path / "v.csv") == (cands, "label")
    subm = [LunaCandidate("1.2.3", 1.5, 2.5, -3.5, 0.123456789), LunaCandidate("9.9", 0.0, 0.0, 0.0, -7.25)]
    write_luna16_submission(subm, tmp_path / "s.csv")
    assert read_luna16_submission(tmp_path / "s.csv") == subm


def test_seriesuids_round_trip_and_optional_header(tmp_path: Path) -> None:
    write_luna16_seriesuids(["1.2", "3.4"], tmp_path / "s.csv")
    assert (tmp_path / "s.csv").read_text() == "1.2\n3.4\n"
    assert read_luna16_seriesuids(tmp_path / "s.csv") == ["1.2", "3.4"]
    assert read_luna16_seriesuids(_write(tmp_path, "seriesuid\n1.2\n\n")) == ["1.2"]


def test_bom_and_blank_lines_are_tolerated(tmp_path: Path) -> None:
    path = _write(tmp_path, "\ufeff" + HEADER + "\n1.2.3, 1.0 ,2.0,3.0,4.0\n\n")
    assert read_luna16_annotations(path) == [LunaAnnotation("1.2.3", 1.0, 2.0, 3.0, 4.0)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("1.2,1,2,3,4\n1.2,1,abc,3,4\n", r"line 3: coordY must be a finite number, got 'abc'"),
        ("1.2,1,2,3,4\n1.2,1,2,nan,4\n", r"line 3: coordZ must be a finite number, got 'nan'"),
        ("1.2,1,2,3\n", r"line 2: missing field\(s\): expected 5 values, got 4"),
        ("1.2,1,2,3,4,5\n", r"line 2: extra field\(s\): expected 5 values, got 6"),
        (",1,2,3,4\n", r"line 2: empty seriesuid"),
        ("1.2,1,2,3,0\n", r"line 2: diameter_mm must be > 0, got 0.0"),
        ("1.2,1,2,3,-1\n", r"line 2: diameter_mm must be > 0, got -1.0 .*read_luna16_excluded"),
    ],
)
def test_bad_annotation_rows_name_file_and_line(tmp_path: Path, body: str, message: str) -> None:
    path = _write(tmp_path, HEADER + body)
    with pytest.raises(AnnotationError, match=message) as info:
        read_luna16_annotations(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("seriesuid,coordX,coordY,coordZ,diameter_mm,comment\n", r"unknown column\(s\) \['comment'\]"),
        ("seriesuid,coordX,coordY,diameter_mm\n", r"missing column\(s\) \['coordZ'\]"),
        ("seriesuid,coordY,coordX,coordZ,diameter_mm\n", r"columns in the wrong order or repeated"),
    ],
)
def test_bad_headers(tmp_path: Path, header: str, message: str) -> None:
    with pytest.raises(AnnotationError, match=r"header at line 1: " + message):
        read_luna16_annotations(_write(tmp_path, header))


def test_other_file_errors(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match=r"not found"):
        read_luna16_annotations(tmp_path / "missing.csv")
    with pytest.raises(AnnotationError, match=r"is empty \(no header row\)"):
        read_luna16_annotations(_write(tmp_path, "\n\n"))
    with pytest.raises(AnnotationError, match=r"line 2: class must be 0 or 1, got 2.0"):
        read_luna16_candidates(_write(tmp_path, "seriesuid,coordX,coordY,coordZ,class\n1.2,1,2,3,2\n"))
    with pytest.raises(AnnotationError, match=r"header at line 1: unknown column\(s\) \['class'\]"):
        read_luna16_submission(_write(tmp_path, "seriesuid,coordX,coordY,coordZ,class\n"))
    with pytest.raises(AnnotationError, match=r"line 3: series UID repeated \(first at line 1\)"):
        read_luna16_seriesuids(_write(tmp_path, "1.2\n3.4\n1.2\n"))
    with pytest.raises(AnnotationError, match=r"line 1: expected one series UID"):
        read_luna16_seriesuids(_write(tmp_path, "1.2,3.4\n"))


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    write_luna16_annotations(ROWS[:1], path)
    before = path.read_text()
    bad = LunaAnnotation("1.2", "not a number", 0.0, 0.0, 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="could not convert"):
        write_luna16_annotations([ROWS[1], bad], path)
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]


@pytest.mark.realdata
def test_real_luna16_files(luna16_dir: Path, tmp_path: Path) -> None:
    annotations = read_luna16_annotations(luna16_dir / "annotations.csv")
    excluded = read_luna16_excluded(luna16_dir / "annotations_excluded.csv")
    uids = read_luna16_seriesuids(luna16_dir / "seriesuids.csv")
    assert (len(annotations), len({a.seriesuid for a in annotations})) == (1186, 601)
    assert len(excluded) == 35192
    assert len(uids) == 888
    assert {a.seriesuid for a in annotations} <= set(uids)
    s0001 = [a for a in annotations if a.seriesuid.endswith("179049373636438705059720603192")]
    assert s0001 == [LunaAnnotation(s0001[0].seriesuid, 56.20840547, 86.34341278, -115.8675792, 23.35064438)]
    assert sum(e.seriesuid == s0001[0].seriesuid for e in excluded) == 25
    write_luna16_annotations(annotations, tmp_path / "a.csv")
    assert read_luna16_annotations(tmp_path / "a.csv") == annotations
    with pytest.raises(AnnotationError, match=r"line 2: diameter_mm must be > 0, got -1.0"):
        read_luna16_annotations(luna16_dir / "annotations_excluded.csv")
