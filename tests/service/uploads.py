"""Upload bodies for the API tests, built from the bundled slab (real DICOM): zips with folders and junk,
loose files, STOW-RS ``multipart/related`` bodies written by hand, retagged copies (another study, MR), and
``stored(ctx)``: what the service holds (rows, blobs, staging leftovers), to check that nothing was stored.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pydicom
from pydicom.uid import MRImageStorage, generate_uid
from sqlalchemy import func, select

from lungcad.service.context import ServiceContext
from lungcad.service.db.models import Instance, ModelFile, Series, Study
from tests.service.conftest import SLAB

API = "/api/v1"
SLAB_FILES = sorted(SLAB.rglob("*.dcm"))
SLAB_XML = next(SLAB.rglob("*.xml"))
STUDY_UID = "1.3.6.1.4.1.14519.5.2.1.6279.6001.298806137288633453246975630178"
SERIES_UID = "1.3.6.1.4.1.14519.5.2.1.6279.6001.179049373636438705059720603192"
SLAB_DATE = date(2000, 1, 1)  # StudyDate of LIDC-IDRI-0001 (de-identified)
UID_ROOT = "1.2.826.0.1.3680043.10.1138."
BOUNDARY = "lungcad-test-b0undary"
STOW_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
JUNK = {  # member name -> bytes: what a PACS export or a user's folder holds beside the images
    "EXPORT/README.txt": b"exported by a PACS\n",
    "EXPORT/PAT1/thumbs/preview.jpg": b"\xff\xd8\xff\xe0" + bytes(300),
    "__MACOSX/EXPORT/._IM0001": b"\x00\x05\x16\x07" + bytes(100),
}


def slab_bytes() -> list[bytes]:
    return [p.read_bytes() for p in SLAB_FILES]


def zip_of(entries: dict[str, bytes]) -> bytes:
    """A deflated zip of ``name -> bytes`` (folders implied by the names)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


def slab_zip(files: list[bytes] | None = None, *, junk: bool = True) -> bytes:
    """The slab (or ``files``) nested as ``EXPORT/PAT1/ST1/SE1/IMnnnn`` with the LIDC XML and junk."""
    entries = {f"EXPORT/PAT1/ST1/SE1/IM{i:04d}": b for i, b in enumerate(files or slab_bytes())}
    if junk:
        entries["EXPORT/PAT1/ST1/SE1/069.xml"] = SLAB_XML.read_bytes()
        entries.update(JUNK)
    return zip_of(entries)


def form(*parts: tuple[str, bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    """``files=`` of an httpx / TestClient request: one ``files`` field per (filename, bytes)."""
    return [("files", (name, data, "application/octet-stream")) for name, data in parts]


def to_bytes(ds: pydicom.Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def retagged(n: int, *, limit: int | None = None, **changes: Any) -> list[bytes]:
    """The slab as copy ``n``: new Study/Series/SOP Instance UIDs (deterministic) and header ``changes``
    (``Modality="MR"``, ``StudyDate="20240102"``, ``PatientID="P2"``), as Part-10 bytes."""
    study, series = (generate_uid(UID_ROOT, [kind, str(n)]) for kind in ("study", "series"))
    out = []
    for path in SLAB_FILES[:limit]:
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = generate_uid(UID_ROOT, [str(ds.SOPInstanceUID), str(n)])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        for key, value in changes.items():
            setattr(ds, key, value)
        if changes.get("Modality") == "MR":
            ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
        out.append(to_bytes(ds))
    return out


def damaged_pixels(files: list[bytes], index: int) -> list[bytes]:
    """``files`` with the pixel data of file ``index`` cut to a few bytes (a slice broken in transfer)."""
    ds = pydicom.dcmread(io.BytesIO(files[index]))
    ds.PixelData = ds.PixelData[:64]
    return [*files[:index], to_bytes(ds), *files[index + 1 :]]


def stow_body(
    parts: list[bytes], *, content_type: str | None = "application/dicom", close: bool = True
) -> bytes:
    """A STOW-RS body written by hand (RFC 2046): ``--B CRLF headers CRLF CRLF bytes CRLF`` per part, then
    ``--B--`` (left off with ``close=False``)."""
    out = bytearray()
    for data in parts:
        out += f"--{BOUNDARY}\r\n".encode()
        if content_type is not None:
            out += f"Content-Type: {content_type}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    if close:
        out += f"--{BOUNDARY}--\r\n".encode()
    return bytes(out)


@dataclass(frozen=True)
class Stored:
    """What the service holds: rows, DICOM blobs (model files left out) and leftovers in ``D/tmp``."""

    studies: int
    series: int
    instances: int
    blobs: int
    tmp: tuple[str, ...]

    @property
    def nothing(self) -> bool:
        return (self.studies, self.series, self.instances, self.blobs, self.tmp) == (0, 0, 0, 0, ())


def blob_files(data_dir: Path) -> list[Path]:
    root = data_dir / "blobs"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []


def stored(ctx: ServiceContext) -> Stored:
    with ctx.sessions() as s:
        counts = [s.scalar(select(func.count()).select_from(t)) or 0 for t in (Study, Series, Instance)]
        models = set(s.scalars(select(ModelFile.sha256)))
    data_dir = ctx.settings.data_dir
    blobs = [p for p in blob_files(data_dir) if p.name not in models]
    tmp = data_dir / "tmp"
    leftovers = tuple(sorted(p.name for p in tmp.iterdir())) if tmp.is_dir() else ()
    return Stored(*counts, blobs=len(blobs), tmp=leftovers)
