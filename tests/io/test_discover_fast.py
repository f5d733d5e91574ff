"""Discovery's strict header walk (``discover._known_series_file``) reports what pydicom's path reports.

Every case runs ``discover`` twice on the same folder -- as shipped, and with the fast path turned off
(``_known_series_file`` returning None, so pydicom reads every header) -- and compares series, files,
frame counts, skipped and damaged files.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ImplicitVRLittleEndian

from lungcad.io import discover as discover_module
from lungcad.io.dicom_write import write_ct_series
from lungcad.io.discover import Discovery, discover
from lungcad.types import CTVolume

LIDC = Path(__file__).resolve().parents[3] / "shared" / "data" / "lidc"


def _volume(n: int = 5, seed: int = 0) -> CTVolume:
    hu = np.random.default_rng(seed).normal(-500, 200, (n, 16, 16)).astype(np.float32)
    return CTVolume(hu, (1.5, 0.7, 0.7), (-10.0, -20.0, -30.0))


def _summary(found: Discovery) -> tuple:
    series = [(s.to_dict(), [p.name for p in s.files]) for s in found.series]
    return series, [(p.name, why) for p, why in found.skipped], [(p.name, why) for p, why in found.damaged]


def _both(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[tuple, tuple, list[bool]]:
    """(fast summary, pydicom summary, per-call fast-path hits)."""
    real = discover_module._known_series_file
    hits: list[bool] = []

    def counting(*args):
        out = real(*args)
        hits.append(out is not None)
        return out

    monkeypatch.setattr(discover_module, "_known_series_file", counting)
    fast = _summary(discover(path))
    monkeypatch.setattr(discover_module, "_known_series_file", lambda *args: None)
    slow = _summary(discover(path))
    monkeypatch.setattr(discover_module, "_known_series_file", real)
    return fast, slow, hits


def test_two_series_and_junk_same_as_pydicom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_ct_series(_volume(4), tmp_path / "a", uid_seed="a")
    write_ct_series(_volume(6, 1), tmp_path / "b", uid_seed="b")
    (tmp_path / "notes.txt").write_text("not dicom")
    (tmp_path / "b" / "empty.dcm").write_bytes(b"")
    fast, slow, hits = _both(tmp_path, monkeypatch)
    assert fast == slow
    assert sum(hits) == 4 - 1 + 6 - 1  # all but each series' first slice took the fast path
    assert [s["n_slices"] for s, _ in fast[0]] == [4, 6]


def _edit(path: Path, change) -> None:
    ds = pydicom.dcmread(path)
    change(ds)
    ds.save_as(path, enforce_file_format=True)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda ds: setattr(ds, "NumberOfFrames", 3), id="number-of-frames"),
        pytest.param(lambda ds: delattr(ds, "SeriesInstanceUID"), id="no-series-uid"),
        pytest.param(lambda ds: delattr(ds, "SOPClassUID"), id="no-sop-class"),
        pytest.param(lambda ds: setattr(ds, "SeriesInstanceUID", "1.2.3.4"), id="another-series"),
        pytest.param(lambda ds: setattr(ds, "SpecificCharacterSet", "ISO 2022 IR 87"), id="charset"),
        pytest.param(lambda ds: setattr(ds, "ImageComments", "x" * 20000), id="header-past-prefix"),
        pytest.param(
            lambda ds: setattr(ds.file_meta, "TransferSyntaxUID", ImplicitVRLittleEndian), id="implicit-vr"
        ),
    ],
)
def test_odd_slice_same_as_pydicom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change) -> None:
    written = write_ct_series(_volume(5), tmp_path, uid_seed="odd")
    _edit(written.paths[2], change)
    fast, slow, hits = _both(tmp_path, monkeypatch)
    assert fast == slow
    assert hits.count(False) >= 1  # the edited slice went to pydicom


@pytest.mark.parametrize("cut", [140, 300, 700, 1200, -100])
def test_truncated_slice_same_as_pydicom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cut: int) -> None:
    written = write_ct_series(_volume(5), tmp_path, uid_seed="cut")
    data = written.paths[3].read_bytes()
    written.paths[3].write_bytes(data[:cut])
    fast, slow, _ = _both(tmp_path, monkeypatch)
    assert fast == slow


def test_damaged_header_byte_flips_same_as_pydicom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seeded byte overwrites in the header region: whatever either path makes of a file, both agree."""
    written = write_ct_series(_volume(3), tmp_path / "s", uid_seed="flip")
    pristine = written.paths[1].read_bytes()
    header_end = pristine.index(b"\xe0\x7f\x10\x00")  # (7FE0,0010) Pixel Data
    rng = np.random.default_rng(7)
    for _ in range(60):
        data = bytearray(pristine)
        for at in rng.integers(132, header_end, size=int(rng.integers(1, 4))):
            data[at] = int(rng.integers(0, 256))
        written.paths[1].write_bytes(bytes(data))
        fast, slow, _ = _both(tmp_path, monkeypatch)
        assert fast == slow


def test_lidc_series_same_as_pydicom(monkeypatch: pytest.MonkeyPatch) -> None:
    if not LIDC.is_dir():
        pytest.skip(f"real LIDC-IDRI data not found at {LIDC}")
    for case in ("LIDC-IDRI-0001", "LIDC-IDRI-0002"):
        if not (LIDC / case).is_dir():
            continue
        fast, slow, hits = _both(LIDC / case, monkeypatch)
        assert fast == slow
        assert sum(hits) >= len(hits) - 2  # real LIDC headers take the fast path


def test_copy_of_first_slice_counts_once_per_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written = write_ct_series(_volume(3), tmp_path, uid_seed="dup")
    (tmp_path / "copy.dcm").write_bytes(copy.copy(written.paths[0].read_bytes()))
    fast, slow, _ = _both(tmp_path, monkeypatch)
    assert fast == slow
    assert fast[0][0][0]["n_slices"] == 4
