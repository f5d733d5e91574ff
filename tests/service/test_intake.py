"""Study intake (``lungcad.service.intake``, ``.stow``): real DICOM of the bundled slab, zipped in memory."""

from __future__ import annotations

import io
import re
import stat
import zipfile
from collections.abc import Callable
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from lungcad.errors import InputError
from lungcad.service.intake import IntakeError, IntakeLimits, StagedStudy, UploadPart, stage_upload
from lungcad.service.intake_stage import DICOMDIR_SOP
from lungcad.service.stow import StowReceiver, parse_stow, stow_response, stow_status

SLAB = Path(__file__).resolve().parents[1] / "data" / "lidc_slab_0001"
SLAB_FILES = sorted(SLAB.rglob("*.dcm"))
STUDY_UID = "1.3.6.1.4.1.14519.5.2.1.6279.6001.298806137288633453246975630178"
SERIES_UID = "1.3.6.1.4.1.14519.5.2.1.6279.6001.179049373636438705059720603192"
STOW_TYPE = 'multipart/related; type="application/dicom"; boundary=XyZ-b0undary'


class NonSeekable(io.RawIOBase):
    """A stream that can only be read forward (a request body), returning short reads."""

    def __init__(self, data: bytes, step: int = 50_000) -> None:
        self._data, self._pos, self._step = data, 0, step

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, n: int = -1) -> bytes:
        n = self._step if n < 0 else min(n, self._step)
        out = self._data[self._pos : self._pos + n]
        self._pos += len(out)
        return out


def slab_bytes(i: int = 0) -> bytes:
    return SLAB_FILES[i].read_bytes()


def modified(i: int, **changes: Any) -> bytes:
    """Slab file ``i`` with header values changed (e.g. a new StudyInstanceUID), as Part-10 bytes."""
    ds = pydicom.dcmread(SLAB_FILES[i])
    for key, value in changes.items():
        setattr(ds, key, value)
    if "SOPInstanceUID" in changes:
        ds.file_meta.MediaStorageSOPInstanceUID = changes["SOPInstanceUID"]
    if "SOPClassUID" in changes:
        ds.file_meta.MediaStorageSOPClassUID = changes["SOPClassUID"]
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def mr_series(n: int = 3) -> list[bytes]:
    series = generate_uid()
    return [
        modified(
            i,
            Modality="MR",
            SOPClassUID=MRImageStorage,
            SeriesInstanceUID=series,
            SOPInstanceUID=generate_uid(),
        )
        for i in range(n)
    ]


def dicomdir_bytes() -> bytes:
    ds = Dataset()
    ds.FileSetID = "EXPORT"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = DICOMDIR_SOP
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def zip_bytes(
    entries: list[tuple[str | zipfile.ZipInfo, bytes]], method: int = zipfile.ZIP_DEFLATED
) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in entries:
            z.writestr(name, data)
    return buf.getvalue()


def part(name: str, data: bytes, *, seekable: bool = True) -> UploadPart:
    return UploadPart(name, "application/octet-stream", io.BytesIO(data) if seekable else NonSeekable(data))


def slab_entries(prefix: str = "EXPORT/PAT1/ST1/SE1/") -> list[tuple[str | zipfile.ZipInfo, bytes]]:
    return [(f"{prefix}IM{i:04d}", f.read_bytes()) for i, f in enumerate(SLAB_FILES)]


def empty(folder: Path) -> bool:
    return not folder.exists() or not any(folder.iterdir())


def refused(call: Callable[[], Any], staging: Path, status: int, code: str, match: str) -> IntakeError:
    """``call`` raises an ``IntakeError`` with this status, code and message, and leaves ``staging`` empty."""
    with pytest.raises(IntakeError, match=match) as info:
        call()
    err = info.value
    assert isinstance(err, InputError)
    assert (err.status_code, err.code) == (status, code)
    assert err.fix and "Fix:" in str(err)
    assert empty(staging), sorted(staging.iterdir())
    return err


# -- form uploads: what is accepted ----------------------------------------------------------------------
def test_zip_with_nested_folders_and_junk_stages_the_slab(tmp_path: Path) -> None:
    junk = [
        ("EXPORT/README.txt", b"exported by PACS\n"),
        ("EXPORT/DICOMDIR", dicomdir_bytes()),
        ("EXPORT/PAT1/thumbs/preview.jpg", b"\xff\xd8\xff\xe0" + bytes(400)),
        ("__MACOSX/EXPORT/._IM0000", b"\x00\x05\x16\x07" + bytes(200)),
        ("EXPORT/inner.zip", zip_bytes([("x.dcm", slab_bytes(0))])),
        ("EXPORT/empty.dat", b""),
    ]
    data = zip_bytes([("EXPORT/", b""), *slab_entries(), *junk])
    staging = tmp_path / "staging"
    study = stage_upload([part("study.zip", data)], staging)

    assert isinstance(study, StagedStudy)
    assert study.study_uid == STUDY_UID and study.primary_series_uid == SERIES_UID
    assert (study.patient_id, study.study_date, study.modality) == ("LIDC-IDRI-0001", date(2000, 1, 1), "CT")
    assert len(study.series) == 1
    s = study.series[0]
    assert (s.series_uid, s.modality, s.n_instances, s.usable, s.reason) == (SERIES_UID, "CT", 16, True, None)
    # staged under sequence names, never the member names; byte-identical to the originals
    names = sorted(p.name for p in staging.iterdir())
    assert names == sorted(p.name for p in study.files) and len(names) == 16
    assert all(re.fullmatch(r"\d{6}\.dcm", n) for n in names)
    assert sorted(p.read_bytes() for p in study.files) == sorted(f.read_bytes() for f in SLAB_FILES)
    assert study.total_bytes == sum(f.stat().st_size for f in SLAB_FILES)
    assert {i.source for i in study.instances} == {f"study.zip:{n}" for n, _ in slab_entries()}
    reasons = {s.name.removeprefix("study.zip:"): s.reason for s in study.skipped}
    assert set(reasons) == {n for n, _ in junk}
    assert "DICOMDIR" in reasons["EXPORT/DICOMDIR"]
    assert "nested zip" in reasons["EXPORT/inner.zip"]
    assert "DICM" in reasons["EXPORT/README.txt"] and reasons["EXPORT/empty.dat"] == "empty file"
    assert study.to_dict()["study_date"] == "2000-01-01"


def test_single_files_from_forward_only_streams(tmp_path: Path) -> None:
    parts = [part(f"../../{f.name}", f.read_bytes(), seekable=False) for f in SLAB_FILES[:4]]
    parts.append(part("notes.txt", b"hello", seekable=False))
    study = stage_upload(parts, tmp_path / "s")
    assert len(study.instances) == 4 and study.series[0].usable
    assert [(s.name, s.failure_code) for s in study.skipped] == [("notes.txt", 0xC000)]
    assert not (tmp_path / "f.dcm").exists() and all(p.parent == tmp_path / "s" for p in study.files)


def test_zip_from_a_forward_only_stream_is_spooled_then_removed(tmp_path: Path) -> None:
    staging = tmp_path / "s"
    study = stage_upload([part("s.zip", zip_bytes(slab_entries()), seekable=False)], staging)
    assert len(study.instances) == 16
    assert sorted(p.name for p in staging.iterdir()) == sorted(p.name for p in study.files)  # no spool left


def test_ct_study_with_an_mr_series_keeps_it_as_unusable(tmp_path: Path) -> None:
    entries = slab_entries() + [(f"MR/{i}", b) for i, b in enumerate(mr_series(2))]
    study = stage_upload([part("s.zip", zip_bytes(entries))], tmp_path / "s")
    by_modality = {s.modality: s for s in study.series}
    assert by_modality["CT"].usable and not by_modality["MR"].usable
    assert by_modality["MR"].reason == "Modality MR is not CT"
    assert study.primary_series_uid == SERIES_UID and len(study.instances) == 18


def test_duplicate_instances_are_skipped(tmp_path: Path) -> None:
    entries = slab_entries() + [("copy/IM0000", slab_bytes(0))]
    study = stage_upload([part("s.zip", zip_bytes(entries))], tmp_path / "s")
    assert len(study.instances) == 16
    (dup,) = study.skipped
    assert "duplicate of s.zip:EXPORT/PAT1/ST1/SE1/IM0000" in dup.reason and dup.failure_code == 0x0111


def test_headers_only_check(tmp_path: Path) -> None:
    limits = IntakeLimits(load_check=False, min_slices=20)
    err = refused(
        lambda: stage_upload([part("s.zip", zip_bytes(slab_entries()))], tmp_path / "s", limits=limits),
        tmp_path / "s",
        422,
        "no_usable_series",
        "series has 16 slice",
    )
    assert SERIES_UID in str(err)


def test_limits_from_settings() -> None:
    settings = SimpleNamespace(max_files=7, max_upload_bytes=1000, max_zip_ratio=50.0)
    limits = IntakeLimits.from_settings(settings)
    assert (limits.max_files, limits.max_total_bytes, limits.max_body_bytes, limits.max_ratio) == (
        7,
        1000,
        1000,
        50,
    )
    with pytest.raises(ValueError, match="max_ratio"):
        IntakeLimits(max_ratio=1.0)


def test_a_non_empty_staging_folder_is_refused_and_left_alone(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="empty"):
        stage_upload([part("a.dcm", slab_bytes(0))], tmp_path)
    assert (tmp_path / "keep.txt").read_text() == "mine"


# -- form uploads: each refusal --------------------------------------------------------------------------
def test_not_dicom_at_all(tmp_path: Path) -> None:
    s = tmp_path / "s"
    refused(
        lambda: stage_upload([part("scan.png", b"\x89PNG" + bytes(300))], s), s, 415, "not_dicom", "scan.png"
    )


def test_raw_dataset_without_part10_header_is_not_dicom(tmp_path: Path) -> None:
    ds = pydicom.dcmread(SLAB_FILES[0])
    ds.preamble = None
    del ds.file_meta
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, implicit_vr=True, little_endian=True, enforce_file_format=False)
    raw = buf.getvalue()
    assert pydicom.dcmread(io.BytesIO(raw), force=True).Modality == "CT"  # pydicom could force-read it
    assert raw[128:132] != b"DICM"
    s = tmp_path / "s"
    refused(lambda: stage_upload([part("raw.dcm", raw)], s), s, 415, "not_dicom", "no 'DICM' at byte 128")


def test_mr_only(tmp_path: Path) -> None:
    s = tmp_path / "s"
    parts = [part(f"mr{i}.dcm", b) for i, b in enumerate(mr_series())]
    refused(lambda: stage_upload(parts, s), s, 422, "not_ct", r"no CT series .*Modality found: MR")


def test_empty_zip(tmp_path: Path) -> None:
    s = tmp_path / "s"
    refused(
        lambda: stage_upload([part("e.zip", zip_bytes([]))], s), s, 422, "empty_zip", "e.zip is an empty zip"
    )
    only_dirs = zip_bytes([("A/", b""), ("A/B/", b"")])
    refused(lambda: stage_upload([part("d.zip", only_dirs)], s), s, 422, "empty_zip", "empty zip")


def test_zip_with_only_junk(tmp_path: Path) -> None:
    s = tmp_path / "s"
    data = zip_bytes(
        [("a.txt", b"x" * 500), ("b/c.jpg", b"\xff\xd8" + bytes(300)), ("DICOMDIR", dicomdir_bytes())]
    )
    refused(
        lambda: stage_upload([part("j.zip", data)], s),
        s,
        422,
        "no_dicom",
        r"no DICOM image .* 3 file\(s\) skipped",
    )


def test_several_studies(tmp_path: Path) -> None:
    s = tmp_path / "s"
    other = modified(
        0, StudyInstanceUID=generate_uid(), SeriesInstanceUID=generate_uid(), SOPInstanceUID=generate_uid()
    )
    data = zip_bytes([*slab_entries(), ("other/1.dcm", other)])
    refused(lambda: stage_upload([part("s.zip", data)], s), s, 422, "several_studies", "holds 2 studies")


def test_single_slice_is_not_usable(tmp_path: Path) -> None:
    s = tmp_path / "s"
    refused(
        lambda: stage_upload([part("one.dcm", slab_bytes(3))], s),
        s,
        422,
        "no_usable_series",
        r"no usable CT series .*needs at least 2",
    )


def test_damaged_slice_refuses_the_series_and_names_the_member(tmp_path: Path) -> None:
    entries = slab_entries()
    name, data = entries[5]
    entries[5] = (name, data[: len(data) // 2])  # pixel data cut off in transfer
    s = tmp_path / "s"
    err = refused(
        lambda: stage_upload([part("s.zip", zip_bytes(entries))], s), s, 422, "no_usable_series", "usable"
    )
    assert f"s.zip:{name}" in str(err) and str(s) not in str(err)


def test_too_many_files(tmp_path: Path) -> None:
    s = tmp_path / "s"
    limits = IntakeLimits(max_files=5)
    call = lambda: stage_upload([part("s.zip", zip_bytes(slab_entries()))], s, limits=limits)  # noqa: E731
    refused(call, s, 413, "too_many_files", "more than 5")


def test_too_many_members(tmp_path: Path) -> None:
    s = tmp_path / "s"
    data = zip_bytes([(f"{i}.txt", b"x") for i in range(10)])
    call = lambda: stage_upload([part("s.zip", data)], s, limits=IntakeLimits(max_members=3))  # noqa: E731
    refused(call, s, 413, "too_many_members", "more than 3")


def test_too_large(tmp_path: Path) -> None:
    s = tmp_path / "s"
    limits = IntakeLimits(max_total_bytes=2_000_000)  # the slab is 8.4 MB
    refused(
        lambda: stage_upload([part("s.zip", zip_bytes(slab_entries()))], s, limits=limits),
        s,
        413,
        "too_large",
        "upload too large: more than 2000000 bytes",
    )


def test_zip_bomb_is_stopped_while_reading(tmp_path: Path) -> None:
    bomb = bytes(128) + b"DICM" + bytes(40 * 1024 * 1024)  # looks like DICOM, then 40 MB of zeros
    data = zip_bytes([("bomb.dcm", bomb)])
    assert len(data) < 200_000  # ~1000:1
    s = tmp_path / "s"
    limits = IntakeLimits(max_ratio=50)
    refused(
        lambda: stage_upload([part("b.zip", data)], s, limits=limits),
        s,
        413,
        "zip_bomb",
        "expands more than 50",
    )


@pytest.mark.parametrize(
    "name", ["../evil.dcm", "a/../../evil.dcm", "/etc/evil.dcm", "C:\\evil.dcm", "..\\x.dcm"]
)
def test_zip_slip(tmp_path: Path, name: str) -> None:
    s = tmp_path / "s"
    data = zip_bytes([*slab_entries()[:2], (name, slab_bytes(3))])
    refused(lambda: stage_upload([part("s.zip", data)], s), s, 400, "zip_slip", "zip-slip")
    assert not (tmp_path / "evil.dcm").exists()


def test_symlink_member(tmp_path: Path) -> None:
    link = zipfile.ZipInfo("SE1/IM9999")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    data = zip_bytes([*slab_entries(), (link, b"/etc/passwd")])
    s = tmp_path / "s"
    refused(lambda: stage_upload([part("s.zip", data)], s), s, 400, "zip_symlink", "symbolic-link member")


def test_truncated_zip(tmp_path: Path) -> None:
    data = zip_bytes(slab_entries())
    s = tmp_path / "s"
    refused(
        lambda: stage_upload([part("s.zip", data[: len(data) // 2])], s),
        s,
        400,
        "bad_zip",
        "not a readable zip",
    )


def test_no_parts(tmp_path: Path) -> None:
    refused(lambda: stage_upload([], tmp_path / "s"), tmp_path / "s", 400, "no_files", "no files")


# -- STOW-RS -------------------------------------------------------------------------------------------
def stow_body(
    parts: list[bytes], boundary: bytes = b"XyZ-b0undary", *, types: list[str | None] | None = None
) -> bytes:
    out = [b"This is a preamble, ignored.\r\n"]
    for i, data in enumerate(parts):
        kind = (types or [])[i] if types and i < len(types) else "application/dicom"
        out.append(b"--" + boundary + b"\r\n")
        if kind is not None:
            out.append(f"Content-Type: {kind}\r\n".encode())
        out.append(f"Content-ID: <part{i}@lungcad>\r\n\r\n".encode())
        out.append(data + b"\r\n")
    out.append(b"--" + boundary + b"--\r\nepilogue")
    return b"".join(out)


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_stow_two_parts_and_response(tmp_path: Path) -> None:
    body = stow_body([slab_bytes(0), slab_bytes(1)], types=["application/dicom", None])
    study = parse_stow(STOW_TYPE, chunked(body, 997), tmp_path / "s")  # boundaries split across chunks
    assert len(study.instances) == 2 and study.series[0].usable and study.skipped == []
    assert sorted(p.read_bytes() for p in study.files) == sorted([slab_bytes(0), slab_bytes(1)])
    resp = stow_response(study, "https://pacs.example/api/v1/dicomweb/")
    root = f"https://pacs.example/api/v1/dicomweb/studies/{STUDY_UID}"
    assert resp["00081190"] == {"vr": "UR", "Value": [root]}
    items = resp["00081199"]["Value"]
    assert len(items) == 2 and "00081198" not in resp and "0008119A" not in resp
    sops = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in SLAB_FILES[:2]}
    assert {i["00081155"]["Value"][0] for i in items} == sops
    assert all(i["00081150"] == {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]} for i in items)
    url = items[0]["00081190"]["Value"][0]
    assert url == f"{root}/series/{SERIES_UID}/instances/{items[0]['00081155']['Value'][0]}"
    assert stow_status(study) == 200


def test_stow_failures_in_the_response(tmp_path: Path) -> None:
    body = stow_body([slab_bytes(0), slab_bytes(1), b"not dicom at all", slab_bytes(1)])
    study = parse_stow(STOW_TYPE, io.BytesIO(body), tmp_path / "s")
    resp = stow_response(study, "http://h/dicomweb")
    assert len(resp["00081199"]["Value"]) == 2
    (failed,) = resp["00081198"]["Value"]
    assert failed["00081197"] == {"vr": "US", "Value": [0x0111]}
    assert (
        failed["00081155"]["Value"][0]
        == pydicom.dcmread(SLAB_FILES[1], stop_before_pixels=True).SOPInstanceUID
    )
    assert resp["0008119A"]["Value"] == [{"00081197": {"vr": "US", "Value": [0xC000]}}]
    assert stow_status(study) == 202


def test_stow_receiver_push_and_abort(tmp_path: Path) -> None:
    receiver = StowReceiver(STOW_TYPE, tmp_path / "s")
    body = stow_body([slab_bytes(0), slab_bytes(1)])
    for chunk in chunked(body[: len(body) // 2], 4096):
        receiver.feed(chunk)
    assert any((tmp_path / "s").iterdir())
    receiver.abort()
    assert empty(tmp_path / "s")


@pytest.mark.parametrize(
    ("content_type", "body", "status", "code", "match"),
    [
        ("application/dicom", None, 415, "unsupported_media_type", "multipart/related"),
        (
            'multipart/related; type="application/dicom+json"; boundary=b',
            None,
            415,
            "unsupported_media_type",
            "json",
        ),
        ('multipart/related; type="application/dicom"', None, 400, "malformed_stow", "no boundary"),
        (STOW_TYPE, b"", 400, "malformed_stow", "body is empty"),
        (STOW_TYPE, b"just some bytes, no delimiter", 400, "malformed_stow", "no boundary delimiter"),
        (STOW_TYPE, b"--XyZ-b0undary--\r\n", 400, "malformed_stow", "no parts"),
        (STOW_TYPE, "cut", 400, "malformed_stow", "without the closing delimiter"),
        (STOW_TYPE, "jpeg", 415, "unsupported_part_type", "part 2 has Content-Type 'image/jpeg'"),
        (
            STOW_TYPE,
            b"--XyZ-b0undary\r\nno colon header line\r\n\r\nx\r\n--XyZ-b0undary--",
            400,
            "malformed_stow",
            "malformed multipart body",
        ),
    ],
)
def test_stow_refusals(
    tmp_path: Path, content_type: str, body: bytes | str | None, status: int, code: str, match: str
) -> None:
    if body is None:
        body = stow_body([slab_bytes(0), slab_bytes(1)])
    elif body == "cut":
        body = stow_body([slab_bytes(0), slab_bytes(1)])[:-40]
    elif body == "jpeg":
        body = stow_body([slab_bytes(0), b"\xff\xd8" + bytes(300)], types=["application/dicom", "image/jpeg"])
    s = tmp_path / "s"
    refused(lambda: parse_stow(content_type, io.BytesIO(body), s), s, status, code, match)


def test_stow_too_large(tmp_path: Path) -> None:
    s = tmp_path / "s"
    body = stow_body([slab_bytes(0), slab_bytes(1)])
    call = lambda: parse_stow(STOW_TYPE, io.BytesIO(body), s, IntakeLimits(max_body_bytes=100_000))  # noqa: E731
    refused(call, s, 413, "too_large", "STOW-RS body too large")
