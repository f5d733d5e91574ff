"""Write uploaded DICOM instances into a staging folder: one safe name each, within the caps.

The pieces every way in shares (form upload, zip member, STOW-RS part): the limits, the error type, the
byte-level sniffing of what an item is, and ``Stager``, which owns the staging folder.

What counts as DICOM: a DICOM Part-10 file only -- 128 bytes of preamble, then ``DICM`` (PS3.10 7.1).  A raw
dataset without the File Meta Information is refused as "not DICOM" although pydicom could read one with
``force=True``: that mode reads almost any bytes as *some* dataset (a text file becomes a dataset of garbage
tags), so accepting it would turn junk into damaged-DICOM errors; PS3.18 defines ``application/dicom`` as a
Part-10 file anyway, and every PACS export writes one.  The sniff needs only the first 132 bytes, so junk
is recognised without reading (or decompressing) the rest of it.

Staged files are named ``000001.dcm``, ``000002.dcm``, ... in arrival order, never after the uploaded name
(which may hold ``..``, odd characters, or collide).  Each is probed after it is written (headers only):
DICOMDIR files, DICOM without the UIDs of an image instance, and a second copy of an instance already staged
are removed again and reported as skipped.  A file with ``DICM`` that pydicom cannot parse is *kept*:
``lungcad.io.discover`` reports it as damaged, and the series beside it is then refused exactly as
``lungcad detect`` refuses it (a damaged slice must not silently disappear from the volume).
"""

from __future__ import annotations

import re
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import pydicom

from lungcad.config import PreprocessConfig
from lungcad.errors import InputError
from lungcad.io.discover import DICOM_PARSE_ERRORS

MiB = 1024 * 1024
CHUNK_BYTES = MiB
HEAD_BYTES = 132  # preamble (128) + "DICM"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header; the end record of an empty archive
DICOMDIR_SOP = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")  # PS3.5 9.1 (leading zeros tolerated: real exports have them)

# HTTP statuses the route maps ``IntakeError.status_code`` to.
MALFORMED = 400  # the container itself is broken or hostile (bad zip, zip-slip, bad multipart body)
TOO_LARGE = 413  # a size or count cap
UNSUPPORTED_MEDIA = 415  # not DICOM / not a zip, or a media type this endpoint does not take
UNPROCESSABLE = 422  # a valid container whose content cannot be analysed (not CT, several studies, ...)

# STOW-RS Failure Reason (0008,1197) values, PS3.18 Table I.2-2 (0x0111 "duplicate SOP instance" is the
# DIMSE status of PS3.7 C.4.4, used here as the table allows "additional codes").
FAIL_CANNOT_UNDERSTAND = 0xC000
FAIL_NOT_SOP_CLASS = 0xA900
FAIL_SOP_CLASS_NOT_SUPPORTED = 0x0122
FAIL_DUPLICATE = 0x0111

Kind = Literal["dicom", "zip", "junk"]


class IntakeError(InputError):
    """An upload refused at intake; ``status_code`` is the HTTP status, ``code`` a stable machine name.

    ``lungcad.service.errors`` maps any ``LungcadError`` with a ``status_code`` attribute to that status.
    """

    def __init__(self, message: str, *, status_code: int, code: str, fix: str) -> None:
        super().__init__(message, fix=fix)
        self.status_code = status_code
        self.code = code


@dataclass(frozen=True)
class IntakeLimits:
    """Caps on one upload (one study).  Sizes in bytes.

    Attributes:
        max_files: DICOM files in the upload (after the junk is set aside).
        max_members: entries of all zip archives together, folders and junk included.
        max_total_bytes: bytes decompressed and staged, all files together.
        max_body_bytes: raw bytes read from a STOW-RS body or spooled from a non-seekable zip stream.
        max_ratio: uncompressed / compressed size of one zip member (a zip bomb's is ~1000).
        ratio_floor_bytes: members are ratio-checked once they decompress past this size; a 4 KiB text file
            of spaces compresses 100:1 and is harmless.
        min_slices, gap_factor: the loader's ``PreprocessConfig`` values (a usable series has this many).
        load_check: load each CT series with the detector's loader (pixels too, ~1 s per 300 slices) to
            call it usable; False: headers only (slice count, damaged files).
    """

    max_files: int = 5000
    max_members: int = 20000
    max_total_bytes: int = 4096 * MiB
    max_body_bytes: int = 4096 * MiB
    max_ratio: float = 200.0
    ratio_floor_bytes: int = MiB
    min_slices: int = 2
    gap_factor: float = 1.5
    load_check: bool = True

    def __post_init__(self) -> None:
        for name in ("max_files", "max_members", "max_total_bytes", "max_body_bytes", "min_slices"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_ratio <= 1:
            raise ValueError(f"max_ratio must be > 1, got {self.max_ratio}")

    @classmethod
    def from_settings(cls, settings: Any, preprocess: PreprocessConfig | None = None) -> IntakeLimits:
        """Caps from ``ServiceSettings`` (max_files, max_upload_bytes, max_zip_ratio) and the loader's."""
        p = preprocess or PreprocessConfig()
        return cls(
            max_files=settings.max_files,
            max_members=max(4 * settings.max_files, 1000),  # folders, DICOMDIR, thumbnails beside files
            max_total_bytes=settings.max_upload_bytes,
            max_body_bytes=settings.max_upload_bytes,
            max_ratio=settings.max_zip_ratio,
            min_slices=p.min_slices,
            gap_factor=p.gap_factor,
        )


@dataclass(frozen=True)
class SkippedItem:
    """Something in the upload that was set aside (not fatal); ``failure_code`` is its STOW-RS reason."""

    name: str  # e.g. "study.zip:DOC/readme.txt", a form file name, "part 3"
    reason: str
    failure_code: int = FAIL_CANNOT_UNDERSTAND
    sop_class_uid: str | None = None
    sop_instance_uid: str | None = None


@dataclass(frozen=True)
class StagedInstance:
    """One DICOM instance written into the staging folder."""

    path: Path
    source: str  # where it came from (display only; never used as a path)
    sop_class_uid: str
    sop_instance_uid: str
    series_uid: str
    study_uid: str
    size_bytes: int


def sniff(head: bytes) -> Kind:
    """What an item is, from its first ``HEAD_BYTES`` bytes (fewer if it is shorter)."""
    if head[:4] in ZIP_MAGICS:
        return "zip"
    if len(head) >= HEAD_BYTES and head[128:132] == b"DICM":
        return "dicom"
    return "junk"


def junk_reason(head: bytes) -> str:
    if not head:
        return "empty file"
    return "not a DICOM Part-10 file (no 'DICM' at byte 128)"


def display_name(name: str | None, fallback: str) -> str:
    """An uploaded name made safe to show: control characters dropped, at most 200 characters."""
    clean = "".join(ch for ch in (name or "") if ch.isprintable())[:200]
    return clean or fallback


def read_head(read: Any) -> bytes:
    """Read up to ``HEAD_BYTES`` from ``read(n)`` (a stream may return short reads)."""
    head = b""
    while len(head) < HEAD_BYTES:
        chunk = read(HEAD_BYTES - len(head))
        if not chunk:
            break
        head += chunk
    return head


class Stager:
    """Owns one staging folder: writes DICOM items into it, counts against the limits, cleans up on error."""

    def __init__(self, staging_dir: Path, limits: IntakeLimits) -> None:
        self.dir = Path(staging_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        if any(self.dir.iterdir()):
            # it is emptied on failure: a folder holding someone's files must never be handed in
            raise ValueError(f"staging_dir must be a fresh empty folder: {self.dir}")
        self.limits = limits
        self.instances: list[StagedInstance] = []
        self.damaged: dict[Path, str] = {}  # staged file pydicom cannot parse -> source
        self.sources: dict[Path, str] = {}  # every staged file -> source
        self.skipped: list[SkippedItem] = []
        self.saw_zip = False
        self.saw_dicom = False  # any item with the DICM prefix, kept or not
        self.members = 0  # zip entries seen
        self.bytes_staged = 0
        self._seq = 0
        self._sop_source: dict[str, str] = {}

    @contextmanager
    def guard(self) -> Iterator[None]:
        """On any exception, leave the staging folder empty, then re-raise."""
        try:
            yield
        except BaseException:
            self.clear()
            raise

    def clear(self) -> None:
        for entry in self.dir.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)

    def skip(self, name: str, reason: str, code: int = FAIL_CANNOT_UNDERSTAND, **uids: str | None) -> None:
        self.skipped.append(SkippedItem(name, reason, code, uids.get("sop_class"), uids.get("sop_instance")))

    def source_of(self, path: Path) -> str:
        """The uploaded name of a staged file (for messages: staging paths mean nothing to the caller)."""
        return self.sources.get(path, path.name)

    def count_members(self, n: int) -> None:
        self.members += n
        if self.members > self.limits.max_members:
            raise IntakeError(
                f"too many zip entries: more than {self.limits.max_members}",
                status_code=TOO_LARGE,
                code="too_many_members",
                fix="upload one study per request, without unrelated files",
            )

    def count_bytes(self, n: int) -> None:
        self.bytes_staged += n
        if self.bytes_staged > self.limits.max_total_bytes:
            raise IntakeError(
                f"upload too large: more than {self.limits.max_total_bytes} bytes of DICOM data",
                status_code=TOO_LARGE,
                code="too_large",
                fix="upload one study per request; split a very large study by series",
            )

    def open_dicom(self) -> tuple[Path, BinaryIO]:
        """A new ``NNNNNN.dcm.part`` file for the next instance (renamed by ``close_dicom``)."""
        self._seq += 1
        self.saw_dicom = True
        if self._seq > self.limits.max_files:
            raise IntakeError(
                f"too many DICOM files: more than {self.limits.max_files} in one upload",
                status_code=TOO_LARGE,
                code="too_many_files",
                fix="upload one study per request (split a very large study by series)",
            )
        path = self.dir / f"{self._seq:06d}.dcm"
        return path, open(path.with_name(path.name + ".part"), "xb")  # noqa: SIM115 -- closed by the sink

    def close_dicom(self, path: Path, source: str, size: int) -> None:
        """Rename the finished file into place and probe it: keep it, or remove it as skipped."""
        path.with_name(path.name + ".part").rename(path)
        self.sources[path] = source
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(
                    path,
                    stop_before_pixels=True,
                    specific_tags=["SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID"],
                )
                media = str(ds.file_meta.get("MediaStorageSOPClassUID", ""))
                uids = {k: str(ds.get(k) or "").strip() for k in ("SOPClassUID", "SOPInstanceUID")}
                uids.update(
                    {k: str(ds.get(k) or "").strip() for k in ("SeriesInstanceUID", "StudyInstanceUID")}
                )
        except DICOM_PARSE_ERRORS:
            self.damaged[path] = source  # discover names it; the series beside it is refused
            return
        reason, code = self._refusal(media, uids)
        if reason is not None:
            path.unlink()
            self.bytes_staged -= size
            self.skip(
                source,
                reason,
                code,
                sop_class=uids["SOPClassUID"] or None,
                sop_instance=uids["SOPInstanceUID"] or None,
            )
            return
        sop = uids["SOPInstanceUID"]
        self._sop_source[sop] = source
        self.instances.append(
            StagedInstance(
                path,
                source,
                uids["SOPClassUID"],
                sop,
                uids["SeriesInstanceUID"],
                uids["StudyInstanceUID"],
                size,
            )
        )

    def _refusal(self, media: str, uids: dict[str, str]) -> tuple[str | None, int]:
        if DICOMDIR_SOP in (media, uids["SOPClassUID"]):
            return "DICOMDIR (an index of a DICOM medium, not an image)", FAIL_SOP_CLASS_NOT_SUPPORTED
        missing = [k for k, v in uids.items() if not v]
        if missing:
            return f"DICOM without {', '.join(missing)} (not an image instance)", FAIL_NOT_SOP_CLASS
        bad = [k for k, v in uids.items() if len(v) > 64 or not _UID.fullmatch(v)]
        if bad:
            return f"DICOM with a malformed {', '.join(bad)} (not a UID)", FAIL_NOT_SOP_CLASS
        first = self._sop_source.get(uids["SOPInstanceUID"])
        if first is not None:
            return f"duplicate of {first} (same SOPInstanceUID)", FAIL_DUPLICATE
        return None, 0


class ItemSink:
    """One item (a zip member, a form file, a STOW part) fed in chunks; sniffed, then staged or skipped.

    The first ``HEAD_BYTES`` decide: DICOM is written to the staging folder; anything else is skipped and the
    rest of its bytes are dropped (``wants_more`` turns False, so a pulling caller stops reading).
    """

    def __init__(self, stager: Stager, source: str, *, zip_reason: str) -> None:
        self.stager = stager
        self.source = source
        self.zip_reason = zip_reason  # why a zip here is not opened (nested, or a STOW part)
        self.kind: Kind | None = None
        self._head = b""
        self._path: Path | None = None
        self._file: BinaryIO | None = None
        self._size = 0

    @property
    def wants_more(self) -> bool:
        return self.kind is None or self.kind == "dicom"

    def write(self, data: bytes) -> None:
        if self.kind is None:
            self._head += data
            if len(self._head) >= HEAD_BYTES:
                self._decide()
            return
        if self._file is not None:
            self._put(data)

    def _decide(self) -> None:
        head, self._head = self._head, b""
        self.kind = sniff(head[:HEAD_BYTES])
        if self.kind == "dicom":
            self._path, self._file = self.stager.open_dicom()
            self._put(head)
        elif self.kind == "zip":
            self.stager.skip(self.source, self.zip_reason)
        else:
            self.stager.skip(self.source, junk_reason(head))

    def _put(self, data: bytes) -> None:
        assert self._file is not None  # only called for a DICOM item
        self.stager.count_bytes(len(data))
        self._size += len(data)
        self._file.write(data)

    def close(self) -> None:
        """The item is complete: finish the staged file (rename + probe), or decide on a short item."""
        if self.kind is None:
            self._decide()
        if self._file is not None and self._path is not None:
            self._file.close()
            self._file = None
            self.stager.close_dicom(self._path, self.source, self._size)

    def discard(self) -> None:
        """Close without keeping (the caller is failing the whole upload)."""
        if self._file is not None:
            self._file.close()
            self._file = None
