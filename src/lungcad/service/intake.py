"""Study intake: stage an upload (DICOM files or zip archives) and check it is one usable CT study.

The routes call ``stage_upload`` (``POST /api/v1/studies``, a multipart form of files) or
``lungcad.service.stow.parse_stow`` (DICOMweb STOW-RS); both end in ``finish_study``, which judges the
staged files with the project's own reader, the way ``lungcad detect`` would:

* ``lungcad.io.discover`` groups the files into series (damaged files noted);
* exactly one StudyInstanceUID (0020,000D), at least one CT series (Modality (0008,0060) ``CT``);
* each CT series is *usable* when ``lungcad.io.dicom.load_dicom_series`` loads it (what ``detect`` runs after
  ``choose_series``), with no damaged file beside it (``Discovery.check_not_damaged``); with
  ``IntakeLimits.load_check=False`` only the slice count is checked;
* the primary series is ``choose_series`` among the usable ones (CT, axial, most slices).

Every refusal is an ``IntakeError`` (an ``InputError``) with ``status_code`` 400 / 413 / 415 / 422 and a
``fix``; the staging folder is then left empty.  Worked example: a zip of ``DOC/readme.txt``,
``IMG/S1/0001.dcm``..``0133.dcm`` and ``IMG/DICOMDIR`` stages ``000001.dcm``..``000133.dcm``, skips the text
file and the DICOMDIR (``skipped``, with reasons), and returns one usable CT series of 133 instances.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import pydicom

from lungcad.errors import InputError
from lungcad.io.dicom import load_dicom_series
from lungcad.io.discover import DICOM_PARSE_ERRORS, Discovery, SeriesInfo, choose_series, discover
from lungcad.service.intake_stage import (
    CHUNK_BYTES,
    MALFORMED,
    TOO_LARGE,
    UNPROCESSABLE,
    UNSUPPORTED_MEDIA,
    IntakeError,
    IntakeLimits,
    ItemSink,
    SkippedItem,
    StagedInstance,
    Stager,
    display_name,
    junk_reason,
    read_head,
    sniff,
)
from lungcad.service.intake_zip import remove_spool, spool, stage_zip

__all__ = [
    "MALFORMED",
    "TOO_LARGE",
    "UNPROCESSABLE",
    "UNSUPPORTED_MEDIA",
    "IntakeError",
    "IntakeLimits",
    "SkippedItem",
    "StagedInstance",
    "StagedSeries",
    "StagedStudy",
    "UploadPart",
    "finish_study",
    "stage_upload",
]

_HEADER_TAGS = [
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "StudyDate",
    "AccessionNumber",
    "Modality",
]


class UploadLike(Protocol):
    """What ``stage_upload`` reads from a part; Starlette's ``UploadFile`` has this shape too."""

    filename: str | None
    content_type: str | None
    file: BinaryIO


@dataclass(frozen=True)
class UploadPart:
    """One uploaded file: its name and media type as the client sent them (display only), and its bytes.

    What the part *is* (DICOM, zip, junk) is decided from its bytes, never from ``filename`` or
    ``content_type``: browsers send ``application/octet-stream`` for a ``.dcm`` and names lie.
    """

    filename: str | None
    content_type: str | None
    file: BinaryIO  # any readable binary stream; a seekable one spares a copy of a zip


@dataclass(frozen=True)
class StagedSeries:
    """One series of the staged study, and whether the detector can use it (``reason`` when not)."""

    series_uid: str
    modality: str
    n_instances: int
    description: str
    usable: bool
    reason: str | None
    n_frames: int = 0  # slices: instances, or the frames of an Enhanced CT file


@dataclass(frozen=True)
class StagedStudy:
    """A staged, checked study: its header fields, series, instances (files in ``staging_dir``) and skips.

    Patient fields are for the database and the caller's view only: never log them.
    """

    study_uid: str
    patient_id: str | None
    patient_name: str | None
    patient_birth_date: date | None
    study_date: date | None
    accession: str | None
    modality: str  # of the primary series: "CT"
    primary_series_uid: str  # the series ``lungcad detect`` would analyse
    series: list[StagedSeries]
    instances: list[StagedInstance]
    skipped: list[SkippedItem] = field(default_factory=list)
    total_bytes: int = 0  # of the staged files

    @property
    def files(self) -> list[Path]:
        """The staged DICOM files (``NNNNNN.dcm`` in the staging folder), every series of the study."""
        return [i.path for i in self.instances]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (file names relative to the staging folder)."""
        return {
            "study_uid": self.study_uid,
            "patient_id": self.patient_id,
            "patient_name": self.patient_name,
            "patient_birth_date": self.patient_birth_date.isoformat() if self.patient_birth_date else None,
            "study_date": self.study_date.isoformat() if self.study_date else None,
            "accession": self.accession,
            "modality": self.modality,
            "primary_series_uid": self.primary_series_uid,
            "series": [s.__dict__.copy() for s in self.series],
            "n_instances": len(self.instances),
            "skipped": [{"name": s.name, "reason": s.reason} for s in self.skipped],
            "total_bytes": self.total_bytes,
        }


def stage_upload(
    parts: Iterable[UploadLike], staging_dir: Path, *, limits: IntakeLimits | None = None
) -> StagedStudy:
    """Stage the parts of a form upload into ``staging_dir`` and check they make one usable CT study.

    Args:
        parts: uploaded files; each is one DICOM Part-10 file or one zip archive (sniffed from its bytes).
            A part that is neither is skipped, like junk inside a zip.
        staging_dir: a fresh, empty folder (created if missing).  It holds the staged files on success and
            is left empty on any error.
        limits: caps; ``IntakeLimits.from_settings(settings)`` in the service.

    Raises:
        IntakeError: every refusal, with ``status_code`` (see ``lungcad.service.intake_stage``).
        ValueError: ``staging_dir`` is not empty (a programming error, not a user's).
    """
    stager = Stager(staging_dir, limits or IntakeLimits())
    with stager.guard():
        n = 0
        for n, part in enumerate(parts, 1):
            _stage_part(part, n, stager)
        if n == 0:
            raise IntakeError(
                "the upload holds no files",
                status_code=MALFORMED,
                code="no_files",
                fix="send the DICOM files (or one zip of them) as form fields named 'files'",
            )
        return finish_study(stager)


def _seekable(stream: BinaryIO) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _stage_part(part: UploadLike, index: int, stager: Stager) -> None:
    label = display_name(part.filename, f"file {index}")
    stream = part.file
    seekable = _seekable(stream)
    start = stream.tell() if seekable else 0
    head = read_head(stream.read)
    kind = sniff(head)
    if kind == "zip":
        if seekable:
            stream.seek(start)
            stage_zip(stream, label, stager)
            return
        copy = spool(head, stream, stager, index)
        try:
            stage_zip(copy, label, stager)
        finally:
            remove_spool(copy, stager)
    elif kind == "dicom":
        sink = ItemSink(stager, label, zip_reason="")
        try:
            sink.write(head)
            while chunk := stream.read(CHUNK_BYTES):
                sink.write(chunk)
        except BaseException:
            sink.discard()
            raise
        sink.close()
    else:
        stager.skip(label, junk_reason(head))


def finish_study(stager: Stager) -> StagedStudy:
    """Judge what ``stager`` staged: one study, a CT series, a usable CT series.  See the module docstring.

    Raises:
        IntakeError: 415 nothing DICOM in an upload without zips; 422 otherwise (no DICOM image, several
            studies, no CT, no usable CT series).
    """
    if not stager.instances and not stager.damaged:
        raise _nothing_staged(stager)
    found = discover(stager.dir)
    studies = sorted({i.study_uid for i in stager.instances})
    if len(studies) > 1:
        shown = ", ".join(studies[:3]) + (", ..." if len(studies) > 3 else "")
        raise IntakeError(
            f"the upload holds {len(studies)} studies (StudyInstanceUIDs {shown}); one upload is one study",
            status_code=UNPROCESSABLE,
            code="several_studies",
            fix="upload each study in its own request",
        )
    if not found.series:  # every DICOM file is damaged
        path, why = found.damaged[0]
        raise IntakeError(
            f"no readable DICOM image in the upload: {len(found.damaged)} damaged file(s), e.g. "
            f"{stager.source_of(path)}: {why}",
            status_code=UNPROCESSABLE,
            code="damaged",
            fix="export the study again from the PACS and upload the files whole",
        )
    series = [_assess(s, found, stager) for s in found.series]
    if not found.ct_series():
        modalities = ", ".join(sorted({s.modality or "none" for s in found.series}))
        raise IntakeError(
            f"no CT series in the upload (Modality found: {modalities}); lungcad analyses chest CT only",
            status_code=UNPROCESSABLE,
            code="not_ct",
            fix="upload the CT study (Modality CT); MR, CR/DX, SEG, SR and other objects are not analysed",
        )
    usable_uids = {s.series_uid for s in series if s.usable}
    if not usable_uids:
        why = "; ".join(f"series {s.series_uid}: {s.reason}" for s in series if s.modality == "CT")
        raise IntakeError(
            f"no usable CT series in the upload ({why})",
            status_code=UNPROCESSABLE,
            code="no_usable_series",
            fix="upload the complete CT series, every slice as the PACS exported it",
        )
    usable = [s for s in found.series if s.series_uid in usable_uids]
    primary = choose_series(Discovery(found.root, usable, found.skipped, found.damaged))
    header = _study_header(sorted(primary.files)[0])
    skipped = list(stager.skipped)
    skipped += [SkippedItem(stager.source_of(p), f"damaged DICOM file ({why})") for p, why in found.damaged]
    return StagedStudy(
        study_uid=studies[0],
        patient_id=header["PatientID"],
        patient_name=header["PatientName"],
        patient_birth_date=dicom_date(header["PatientBirthDate"]),
        study_date=dicom_date(header["StudyDate"]),
        accession=header["AccessionNumber"],
        modality=primary.modality,
        primary_series_uid=primary.series_uid,
        series=series,
        instances=list(stager.instances),
        skipped=skipped,
        total_bytes=sum(i.size_bytes for i in stager.instances),
    )


def _nothing_staged(stager: Stager) -> IntakeError:
    counts = Counter(s.reason for s in stager.skipped)
    summary = ", ".join(f"{n} x {reason}" for reason, n in counts.most_common(3))
    if stager.saw_zip or stager.saw_dicom:
        return IntakeError(
            f"no DICOM image in the upload: {len(stager.skipped)} file(s) skipped ({summary})",
            status_code=UNPROCESSABLE,
            code="no_dicom",
            fix="zip the folder that holds the study's DICOM files (the .dcm images the PACS exported)",
        )
    first = stager.skipped[0].name if stager.skipped else "the upload"
    return IntakeError(
        f"not DICOM: {first} is {stager.skipped[0].reason if stager.skipped else 'empty'}"
        + (f" (and {len(stager.skipped) - 1} more file(s) like it)" if len(stager.skipped) > 1 else ""),
        status_code=UNSUPPORTED_MEDIA,
        code="not_dicom",
        fix="upload DICOM Part-10 files (.dcm, as exported by a PACS) or one zip archive of them",
    )


def _reason(exc: InputError, stager: Stager) -> str:
    """The loader's message with staging paths replaced by the uploaded names."""
    text = str(exc)
    if exc.path:
        p = Path(exc.path)
        text = text.replace(f" [{exc.path}]", "" if p == stager.dir else f" [{stager.source_of(p)}]")
    return text


def _assess(info: SeriesInfo, found: Discovery, stager: Stager) -> StagedSeries:
    limits = stager.limits
    reason: str | None = None
    if not info.is_ct:
        reason = f"Modality {info.modality or '(none)'} is not CT"
    else:
        need = max(limits.min_slices, 2)
        try:
            found.check_not_damaged(info)
            if limits.load_check:
                load_dicom_series(info, gap_factor=limits.gap_factor, min_slices=limits.min_slices)
            elif info.n_frames < need:
                reason = f"series has {info.n_frames} slice(s); a CT volume needs at least {need}"
        except InputError as exc:
            reason = _reason(exc, stager)
    return StagedSeries(
        series_uid=info.series_uid,
        modality=info.modality,
        n_instances=len(info.files),
        description=info.description,
        usable=reason is None,
        reason=reason,
        n_frames=info.n_frames,
    )


def _study_header(path: Path) -> dict[str, str | None]:
    """Patient/study fields of one staged file (headers only); None for an absent or empty value."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
            values = {k: ds.get(k) for k in _HEADER_TAGS}
    except DICOM_PARSE_ERRORS:  # the series loaded, so this is unlikely; the fields are optional
        values = {}
    out: dict[str, str | None] = {}
    for key in _HEADER_TAGS:
        text = str(values.get(key) or "").strip()
        out[key] = text or None
    return out


def dicom_date(value: str | None) -> date | None:
    """A DA value (``YYYYMMDD``; the old ``YYYY.MM.DD`` too) as a date; None when absent or not a date."""
    digits = (value or "").replace(".", "").strip()
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return None
