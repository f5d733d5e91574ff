"""A study full of PHI (the bundled slab with a patient's identity written in) and a grep for that identity
in bytes of any kind: JSON, CSV, logs, DICOM and PDF (whose text streams are Flate-compressed)."""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

from tests.service.uploads import SLAB_FILES, UID_ROOT, to_bytes

PHI_FIELDS = {
    "PatientName": "DOE^JANE^PHI",
    "PatientID": "PHI-ID-4242",
    "PatientBirthDate": "19510203",
    "AccessionNumber": "ACC-PHI-9931",
    "InstitutionName": "St Phimary Hospital",
    "ReferringPhysicianName": "HOUSE^GREGORY^PHI",
}
# the spellings a report or a log could give them: DICOM PN carets as spaces, the date as ISO or dotted
PHI_STRINGS = (
    *PHI_FIELDS.values(),
    "DOE JANE",
    "JANE DOE",
    "Jane Doe",
    "1951-02-03",
    "03.02.1951",
    "02/03/1951",
    "HOUSE GREGORY",
    "Phimary",
    "PHI-ID-4242",
)
_FLATE = re.compile(rb"stream\r?\n(.*?)\r?\nendstream", re.S)


def phi_copy(dst: Path, n: int = 7) -> list[Path]:
    """The slab under ``dst`` with new Study / Series / SOP UIDs and :data:`PHI_FIELDS` written in."""
    dst.mkdir(parents=True, exist_ok=True)
    study, series = (generate_uid(UID_ROOT, ["phi", kind, str(n)]) for kind in ("study", "series"))
    out = []
    for path in SLAB_FILES:
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = generate_uid(UID_ROOT, ["phi", str(ds.SOPInstanceUID), str(n)])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        for key, value in PHI_FIELDS.items():
            setattr(ds, key, value)
        target = dst / path.name
        target.write_bytes(to_bytes(ds))
        out.append(target)
    return out


def readable(data: bytes) -> bytes:
    """``data`` plus the inflated content of its PDF streams (a PDF's text is compressed)."""
    if not data.startswith(b"%PDF"):
        return data
    parts = [data]
    for raw in _FLATE.findall(data):
        try:
            parts.append(zlib.decompress(raw))
        except zlib.error:
            continue
    return b"\n".join(parts)


def _variants(text: str) -> list[bytes]:
    return [text.encode(), text.encode("utf-16-be"), text.upper().encode(), text.lower().encode()]


def phi_in(data: bytes | str) -> list[str]:
    """The PHI strings found in ``data`` (case-insensitive; UTF-8 or UTF-16), [] when none."""
    blob = readable(data.encode() if isinstance(data, str) else data)
    low = blob.lower()
    return [s for s in PHI_STRINGS if any(v.lower() in low for v in _variants(s))]
