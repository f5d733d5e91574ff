"""``--out`` naming an existing file, or a place that cannot be written, is a one-line error (defect 7).

Each command that writes into a folder checks it first, through ``lungcad.fileio.ensure_output_dir``,
before any work is done: exit code 2, the path named, a fix, no traceback.  The unwritable case uses a path
under a regular file (``notes.txt/out``), which fails for root too; a read-only folder is tried as well
where the tests do not run as root.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lungcad.cli import main
from lungcad.io.image import save_volume
from tests.conftest import make_phantom


@pytest.fixture
def image(tmp_path: Path) -> Path:
    return save_volume(make_phantom(shape=(8, 16, 16)), tmp_path / "scan.mhd")


def _commands(image: Path, out: Path) -> dict[str, list[str]]:
    return {
        "synth": ["synth", "--out", str(out), "--n", "1"],
        "detect": ["detect", str(image), "--out", str(out)],
        "ingest": ["ingest", str(image), "--out", str(out)],
        "evaluate": ["evaluate", "--data", str(image.parent), "--out", str(out)],
        "evaluate-froc": ["evaluate-froc", "--annotations", "a.csv", "--excluded", "e.csv",
                          "--seriesuids", "s.csv", "--candidates", "c.csv", "--out", str(out)],
    }  # fmt: skip


COMMANDS = ["synth", "detect", "ingest", "evaluate", "evaluate-froc"]


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return code, " ".join(captured.err.split())


@pytest.mark.parametrize("command", COMMANDS)
def test_out_is_an_existing_file(
    command: str, image: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    code, err = _run(_commands(image, notes)[command], capsys)
    assert code == 2
    assert "--out must be a folder, but this is an existing file" in err and str(notes) in err
    assert "Fix: pass a folder to --out" in err
    assert notes.read_text() == "keep me"


@pytest.mark.parametrize("command", COMMANDS)
def test_out_under_a_file_cannot_be_created(
    command: str, image: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    code, err = _run(_commands(image, notes / "out")[command], capsys)
    assert code == 2
    assert "cannot create the --out folder" in err and str(notes / "out") in err
    assert "Fix: pass a folder you can write to as --out" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
@pytest.mark.parametrize("command", COMMANDS)
def test_out_is_a_read_only_folder(
    command: str, image: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, err = _run(_commands(image, ro)[command], capsys)
    finally:
        ro.chmod(0o755)
    assert code == 2 and "cannot write into the --out folder" in err and str(ro) in err
