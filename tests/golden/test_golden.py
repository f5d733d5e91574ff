"""Golden outputs (see ``tests/golden/cases.py``): the pipeline reproduces the recorded findings.

A failure lists every difference beyond tolerance.  If the change is intended, explain it in the commit and
re-record with ``make golden-update`` (which prints the same differences first).
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import real_data_root
from tests.golden.cases import CASES, GoldenCase, compare, expected_path


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden(case: GoldenCase) -> None:
    root = real_data_root()
    if case.needs_real_data and not (root / "lidc").is_dir():
        pytest.skip(f"real LIDC data not found at {root} (set LUNGCAD_REAL_DATA)")
    path = expected_path(case.name)
    if not path.is_file():
        pytest.fail(f"no golden output at {path}: run `make golden-update` and commit it")
    diffs = compare(json.loads(path.read_text()), case.run(root))
    assert not diffs, f"{case.name} differs from its golden output:\n  " + "\n  ".join(diffs)


def test_compare_sees_a_moved_finding_and_ignores_noise() -> None:
    f = {
        "center_xyz_mm": [0.0, 0.0, 0.0],
        "diameter_mm": 10.0,
        "volume_mm3": 500.0,
        "probability": 0.9,
        "triage_probability": 0.5,
        "texture": "solid",
        "lung_rads": "4A",
    }
    base = {
        "status": "ok",
        "verdict": "pass",
        "priority": "4A",
        "checks": {},
        "n_candidates": 10,
        "findings": [f],
    }
    noisy = base | {"findings": [f | {"center_xyz_mm": [0.3, 0.0, 0.0], "probability": 0.91}]}
    assert compare(base, noisy) == []
    moved = base | {"findings": [f | {"center_xyz_mm": [2.0, 0.0, 0.0]}]}
    assert any("is gone" in d for d in compare(base, moved))
    assert any("new finding" in d for d in compare(base, moved))
    bigger = base | {"findings": [f | {"diameter_mm": 11.0}]}
    assert compare(base, bigger) == ["finding 1: diameter 10.0 -> 11.0 mm"]


def test_position_tolerance_grows_with_the_nodule() -> None:
    f = {
        "center_xyz_mm": [0.0, 0.0, 0.0],
        "diameter_mm": 24.0,
        "volume_mm3": 7000.0,
        "probability": 1.0,
        "triage_probability": 0.9,
        "texture": "solid",
        "lung_rads": "4B",
    }
    base = {
        "status": "ok",
        "verdict": "pass",
        "priority": "4B",
        "checks": {},
        "n_candidates": 10,
        "findings": [f],
    }
    one_head_voxel = base | {"findings": [f | {"center_xyz_mm": [2.0, 0.0, 0.0]}]}
    assert compare(base, one_head_voxel) == []  # 2.0 <= 0.1 x 24 mm
    further = base | {"findings": [f | {"center_xyz_mm": [2.5, 0.0, 0.0]}]}
    assert any("is gone" in d for d in compare(base, further))
