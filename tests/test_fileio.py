"""Atomic writes keep normal permissions and never leave half a file or a temporary file behind."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from lungcad.errors import InputError
from lungcad.fileio import (
    TEMP_MARK,
    atomic_open,
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    check_output_dir,
    ensure_output_dir,
    temp_dir_for,
    temp_path_for,
)


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if TEMP_MARK in p.name)


def test_temp_name_keeps_the_extension_and_is_hidden(tmp_path: Path) -> None:
    assert temp_path_for(tmp_path / "froc.png").name.endswith(".tmp.png")
    assert temp_path_for(tmp_path / "scan.nii.gz").name.endswith(".tmp.nii.gz")
    assert temp_path_for(tmp_path / "a.json").name.startswith(".a.json.")
    assert temp_path_for(tmp_path / "a.json") != temp_path_for(tmp_path / "a.json")


@pytest.mark.usefixtures("umask_022")
def test_every_writer_gives_0644_under_umask_022(tmp_path: Path) -> None:
    paths = [
        atomic_write_text(tmp_path / "a.txt", "x\n"),
        atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01"),
        atomic_write_json(tmp_path / "c.json", {"a": 1}),
        atomic_write(tmp_path / "d.png", lambda tmp: tmp.write_bytes(b"png")),
    ]
    with atomic_open(tmp_path / "e.csv") as handle:
        handle.write("a,b\n")
    paths.append(tmp_path / "e.csv")
    assert {p.name: oct(_mode(p)) for p in paths} == {p.name: "0o644" for p in paths}
    assert json.loads((tmp_path / "c.json").read_text()) == {"a": 1}
    assert (tmp_path / "c.json").read_text().endswith("}\n")
    assert _leftovers(tmp_path) == []


@pytest.mark.usefixtures("umask_022")
def test_temp_dir_is_0755_under_umask_022(tmp_path: Path) -> None:
    folder = temp_dir_for(tmp_path / "entry")
    assert folder.is_dir() and folder.parent == tmp_path and TEMP_MARK in folder.name
    assert _mode(folder) == 0o755


def test_umask_077_is_respected(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        path = atomic_write_text(tmp_path / "private.txt", "x")
    finally:
        os.umask(old)
    assert _mode(path) == 0o600


def test_parent_folders_are_created(tmp_path: Path) -> None:
    path = atomic_write_text(tmp_path / "a" / "b" / "c.txt", "x")
    assert path.read_text() == "x"


def test_a_crash_in_the_writer_callback_keeps_the_old_file(tmp_path: Path) -> None:
    target = atomic_write_text(tmp_path / "figure.png", "old")

    def half_then_crash(tmp: Path) -> None:
        tmp.write_text("half a fig")
        raise RuntimeError("renderer died")

    with pytest.raises(RuntimeError, match="renderer died"):
        atomic_write(target, half_then_crash)
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_a_crash_inside_atomic_open_keeps_the_old_file(tmp_path: Path) -> None:
    target = atomic_write_text(tmp_path / "annotations.csv", "old\n")
    with pytest.raises(KeyboardInterrupt), atomic_open(target) as handle:
        handle.write("new rows, half written")
        raise KeyboardInterrupt
    assert target.read_text() == "old\n"
    assert _leftovers(tmp_path) == []


def test_unserialisable_json_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        atomic_write_json(tmp_path / "s.json", {"x": object()})
    assert list(tmp_path.iterdir()) == []


def test_binary_mode_only_w_or_wb(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mode must be 'w' or 'wb', got 'a'"):
        with atomic_open(tmp_path / "x", "a"):
            pass


def test_ensure_output_dir_creates_the_folder(tmp_path: Path) -> None:
    out = ensure_output_dir(tmp_path / "new" / "out")
    assert out.is_dir() and list(out.iterdir()) == []


def test_check_output_dir_creates_nothing(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    assert check_output_dir(out) == out
    assert list(tmp_path.iterdir()) == []  # not even the write probe
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    with pytest.raises(InputError, match=r"cannot create the --out folder \(.*notes\.txt is a file\)"):
        check_output_dir(notes / "a" / "b")


def test_ensure_output_dir_refuses_an_existing_file(tmp_path: Path) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("x")
    with pytest.raises(InputError, match=r"--out must be a folder, but this is an existing file .*notes"):
        ensure_output_dir(f)


def test_ensure_output_dir_refuses_a_path_under_a_file(tmp_path: Path) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("x")
    with pytest.raises(InputError, match=r"cannot create the --report folder .*notes\.txt/out.* Fix: pass"):
        ensure_output_dir(f / "out", option="--report")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_ensure_output_dir_refuses_a_read_only_folder(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(InputError, match=r"cannot write into the --out folder .*ro\]"):
            ensure_output_dir(ro)
        with pytest.raises(InputError, match=r"cannot create the --out folder"):
            ensure_output_dir(ro / "sub")
    finally:
        ro.chmod(0o755)
