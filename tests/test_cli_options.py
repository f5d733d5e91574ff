"""Global and ``detect`` options: ``--version``, ``--min-probability`` range, ``--model`` that is no model."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import pytest

import lungcad
from lungcad.cli import main

REPO = Path(__file__).resolve().parents[1]
SLAB = REPO / "tests" / "data" / "lidc_slab_0001"


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err + cap.out
    return code, cap.out, " ".join(cap.err.split())


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(["--version"], capsys)
    assert code == 0 and out.strip() == f"lungcad {version('lungcad')}"
    assert lungcad.__version__ == version("lungcad")  # one source: pyproject.toml via the metadata


def test_version_single_sourced_from_pyproject() -> None:
    text = (REPO / "pyproject.toml").read_text()
    declared = re.search(r'^version = "([^"]+)"', text, re.M)
    assert declared and lungcad.package_version() == declared.group(1)
    assert "__version__ =" not in (REPO / "src" / "lungcad" / "__init__.py").read_text()


@pytest.mark.parametrize("value", ["2", "-0.1", "1.5"])
def test_min_probability_outside_0_1_is_a_usage_error(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(["detect", str(SLAB), "--min-probability", value], capsys)
    assert code == 2 and "--min-probability" in err


def test_model_that_is_not_a_model_file_is_named_with_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    code, _, err = _cli(["detect", str(SLAB), "--model", str(notes)], capsys)
    assert code == 2
    assert "notes.txt is not a lungcad model file" in err and str(notes) in err
    assert "lungcad export-model" in err and ": 101" not in err
