"""Command outputs come out ``0o644`` under umask 022, like any file ``open(path, "w")`` creates.

Before ``lungcad.fileio``, outputs renamed from ``tempfile.mkstemp`` files were ``0o600`` (the preprocessed
image and LUNA16 CSVs, among others): unreadable to the rest of a team sharing the results.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from lungcad.cli import main
from lungcad.fileio import TEMP_MARK
from lungcad.io.image import save_volume
from tests.conftest import make_phantom
from tests.evaluate.test_cli_froc import _files as froc_args


@pytest.fixture(autouse=True)
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _modes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): oct(stat.S_IMODE(p.stat().st_mode))
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_ingest_outputs_are_0644(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scan = save_volume(make_phantom(), tmp_path / "scan.nii.gz")
    for fmt in ("nifti", "mhd"):
        out = tmp_path / f"out-{fmt}"
        assert main(["ingest", str(scan), "--out", str(out), "--format", fmt, "--json"]) == 0
        modes = _modes(out)
        assert "preview.png" in modes and len(modes) >= 4
        assert modes == {name: "0o644" for name in modes}
        assert not [name for name in modes if TEMP_MARK in name]
    capsys.readouterr()


def test_evaluate_froc_outputs_are_0644(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*froc_args(tmp_path), "--bootstrap", "5"]) == 0
    modes = _modes(tmp_path)  # the input CSVs (LUNA16 writers) and the report
    assert {"a.csv", "c.csv", "out/froc.csv", "out/froc.png", "out/summary.json"} <= set(modes)
    assert modes == {name: "0o644" for name in modes}
    capsys.readouterr()
