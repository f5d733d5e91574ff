"""DICOMweb STOW-RS (PS3.18 10.5): stage a ``multipart/related`` body of DICOM instances; build the response.

The request::

    POST /api/v1/dicomweb/studies
    Content-Type: multipart/related; type="application/dicom"; boundary=XYZ

    --XYZ
    Content-Type: application/dicom

    <a DICOM Part-10 file>
    --XYZ
    Content-Type: application/dicom

    <another>
    --XYZ--

The body is parsed as it streams (python-multipart's ``MultipartParser``: the field's parser, not a
hand-written boundary scanner); each part goes through the same sniff/stage/probe as a form upload
(``lungcad.service.intake_stage``) and the staged set is judged by ``finish_study``.  A part without a
Content-Type is taken as the ``type`` of the body (RFC 2387 makes it the root's type; some senders omit the
per-part header); a part of any other type (``application/dicom+json`` metadata, a JPEG) is refused with 415,
because this endpoint stores instances only.  A preamble before the first delimiter (RFC 2046 5.1.1) is
skipped; a body with no delimiter, no closing delimiter, or no part is malformed (400).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

from python_multipart.multipart import parse_options_header

from lungcad.service.intake import StagedStudy, finish_study
from lungcad.service.intake_stage import (
    CHUNK_BYTES,
    MALFORMED,
    TOO_LARGE,
    UNSUPPORTED_MEDIA,
    IntakeError,
    IntakeLimits,
    ItemSink,
    Stager,
)
from lungcad.service.multipart import PartStream

DICOM_MEDIA = b"application/dicom"
MAX_PREAMBLE_BYTES = 64 * 1024
_STOW_FIX = 'send Content-Type: multipart/related; type="application/dicom"; boundary=<token>, then the parts'


def _malformed(message: str, fix: str = _STOW_FIX) -> IntakeError:
    return IntakeError(message, status_code=MALFORMED, code="malformed_stow", fix=fix)


def stow_boundary(content_type_header: str) -> bytes:
    """The boundary of a STOW-RS request's Content-Type, after checking the media type and ``type``.

    Raises:
        IntakeError: not ``multipart/related`` or a ``type`` other than application/dicom (415); no
            boundary, or one longer than RFC 2046's 70 characters (400).
    """
    try:
        media, params = parse_options_header(content_type_header or "")
    except (UnicodeError, ValueError) as exc:
        raise _malformed(f"unreadable Content-Type header ({exc})") from exc
    if media.lower() != b"multipart/related":
        raise IntakeError(
            f"STOW-RS takes a multipart/related body, got Content-Type {media.decode('latin-1')!r}",
            status_code=UNSUPPORTED_MEDIA,
            code="unsupported_media_type",
            fix=_STOW_FIX,
        )
    kind = params.get(b"type")
    if kind is not None and kind.lower() != DICOM_MEDIA:
        raise IntakeError(
            f"STOW-RS here stores DICOM instances: type={kind.decode('latin-1')!r} is not supported",
            status_code=UNSUPPORTED_MEDIA,
            code="unsupported_media_type",
            fix='send Part-10 instances with type="application/dicom" (metadata + bulk data is not accepted)',
        )
    boundary = params.get(b"boundary")
    if not boundary:
        raise _malformed("the multipart/related Content-Type has no boundary parameter")
    if len(boundary) > 70:
        raise _malformed(f"boundary is {len(boundary)} characters long; RFC 2046 allows at most 70")
    return boundary


class StowReceiver(PartStream):
    """Push-style STOW-RS parsing: ``feed`` body chunks as they arrive, then ``finish``.

    For an async route: ``async for chunk in request.stream(): receiver.feed(chunk)``.  Any error leaves the
    staging folder empty (so does ``abort``, for a client that disconnects).
    """

    def __init__(
        self, content_type_header: str, staging_dir: Any, limits: IntakeLimits | None = None
    ) -> None:
        self.boundary = stow_boundary(content_type_header)
        self.stager = Stager(staging_dir, limits or IntakeLimits())
        self.n_bytes = 0
        self.n_parts = 0
        self._started = False
        self._preamble = b""
        self._sink: ItemSink | None = None
        self._spent = False
        self._init_parser(self.boundary, max_header_count=16, malformed=_malformed)

    # -- feeding ---------------------------------------------------------------------------------------
    def feed(self, chunk: bytes) -> None:
        """Parse the next bytes of the body."""
        with self.stager.guard(), self._discard_on_error():
            self.n_bytes += len(chunk)
            if self.n_bytes > self.stager.limits.max_body_bytes:
                raise IntakeError(
                    f"STOW-RS body too large: more than {self.stager.limits.max_body_bytes} bytes",
                    status_code=TOO_LARGE,
                    code="too_large",
                    fix="send one study per request; split a very large study into several requests",
                )
            if not self._started:
                chunk = self._skip_preamble(chunk)
                if not chunk:
                    return
            self._write(chunk)

    def finish(self) -> StagedStudy:
        """The body is complete: check it was well formed, then judge the staged study (``finish_study``)."""
        with self.stager.guard(), self._discard_on_error():
            if not self._started:
                raise _malformed(
                    "STOW-RS body is empty"
                    if self.n_bytes == 0
                    else "STOW-RS body holds no boundary delimiter"
                )
            self._finalize()
            if not self.ended:
                raise _malformed(
                    f"STOW-RS body ends without the closing delimiter --{self.boundary.decode('latin-1')}--",
                    fix="send the whole body; it may have been cut off in transfer",
                )
            if self.n_parts == 0:
                raise _malformed("STOW-RS body holds no parts", fix="send one part per DICOM instance")
            self._spent = True
            return finish_study(self.stager)

    def abort(self) -> None:
        """Give up (the client went away): close the open part and empty the staging folder."""
        if self._sink is not None:
            self._sink.discard()
            self._sink = None
        self.stager.clear()

    @contextmanager
    def _discard_on_error(self) -> Iterator[None]:
        """On an error, close the part being written; the receiver is then spent."""
        if self._spent:
            raise ValueError("this StowReceiver has failed or finished; start a new one")
        try:
            yield
        except BaseException:
            self._spent = True
            if self._sink is not None:
                self._sink.discard()
                self._sink = None
            raise

    def _skip_preamble(self, chunk: bytes) -> bytes:
        """Drop bytes before the first ``--boundary`` (python-multipart wants the body to start with it)."""
        self._preamble += chunk
        at = self._preamble.find(b"--" + self.boundary)
        if at < 0:
            if len(self._preamble) > MAX_PREAMBLE_BYTES:
                raise _malformed(f"no boundary delimiter in the first {MAX_PREAMBLE_BYTES} bytes of the body")
            return b""
        self._started = True
        rest, self._preamble = self._preamble[at:], b""
        return rest

    # -- parser hooks (lungcad.service.multipart.PartStream) ---------------------------------------------
    def _headers_finished(self) -> None:
        label = f"part {self.n_parts + 1}"
        declared = self._headers.get("content-type")
        if declared is not None:
            media = parse_options_header(declared)[0].lower()
            if media != DICOM_MEDIA:
                raise IntakeError(
                    f"{label} has Content-Type {media.decode('latin-1')!r}; STOW-RS here stores "
                    "application/dicom instances only",
                    status_code=UNSUPPORTED_MEDIA,
                    code="unsupported_part_type",
                    fix="send each instance as a part with Content-Type: application/dicom",
                )
        self._sink = ItemSink(self.stager, label, zip_reason="a zip archive, not a DICOM instance")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._sink is not None and self._sink.wants_more:
            self._sink.write(bytes(data[start:end]))

    def _part_end(self) -> None:
        if self._sink is not None:
            sink, self._sink = self._sink, None
            sink.close()
        self.n_parts += 1


def _chunks(body: BinaryIO | Iterable[bytes]) -> Iterator[bytes]:
    read = getattr(body, "read", None)
    if read is None:
        yield from body  # type: ignore[misc] -- an iterable of chunks
        return
    while chunk := read(CHUNK_BYTES):
        yield chunk


def parse_stow(
    content_type_header: str,
    body_stream: BinaryIO | Iterable[bytes],
    staging_dir: Any,
    limits: IntakeLimits | None = None,
) -> StagedStudy:
    """Stage a STOW-RS request body into ``staging_dir`` and judge it (``finish_study``).

    Args:
        content_type_header: the request's Content-Type (``multipart/related; type=...; boundary=...``).
        body_stream: a readable binary stream, or an iterable of byte chunks.
        staging_dir: a fresh, empty folder; left empty on any error.
        limits: caps (``IntakeLimits.from_settings``).

    Raises:
        IntakeError: 400 malformed body, 413 caps, 415 media types, 422 content (see ``finish_study``).
    """
    receiver = StowReceiver(content_type_header, staging_dir, limits)
    for chunk in _chunks(body_stream):
        receiver.feed(chunk)
    return receiver.finish()


# -- the response ---------------------------------------------------------------------------------------
def _element(vr: str, *values: Any) -> dict[str, Any]:
    return {"vr": vr, "Value": list(values)} if values else {"vr": vr}


def stow_response(staged: StagedStudy, base_url: str) -> dict[str, Any]:
    """The STOW-RS response body, a DICOM JSON dataset (PS3.18 Table I.1-1, PS3.18 F.2 for the encoding).

    * Retrieve URL (0008,1190): ``{base_url}/studies/{study}``.
    * Referenced SOP Sequence (0008,1199): each stored instance, with Referenced SOP Class / Instance UID
      (0008,1150) / (0008,1155) and its Retrieve URL ``.../series/{series}/instances/{sop}``.
    * Failed SOP Sequence (0008,1198): each skipped DICOM instance whose UIDs are known, with Failure
      Reason (0008,1197) from PS3.18 Table I.2-2 (0xC000 cannot understand, 0xA900 not an image instance,
      0x0122 SOP class not supported (DICOMDIR), 0x0111 duplicate).
    * Other Failures Sequence (0008,119A): skipped parts with no UIDs to name (not DICOM at all), reason
      0xC000.

    Args:
        staged: what ``parse_stow`` returned.
        base_url: the DICOMweb root, e.g. ``https://host/api/v1/dicomweb`` (no trailing slash needed).
    """
    root = base_url.rstrip("/")
    study_url = f"{root}/studies/{staged.study_uid}"
    out: dict[str, Any] = {"00081190": _element("UR", study_url)}
    referenced = [
        {
            "00081150": _element("UI", i.sop_class_uid),
            "00081155": _element("UI", i.sop_instance_uid),
            "00081190": _element("UR", f"{study_url}/series/{i.series_uid}/instances/{i.sop_instance_uid}"),
        }
        for i in staged.instances
    ]
    failed = [
        {
            "00081150": _element("UI", s.sop_class_uid),
            "00081155": _element("UI", s.sop_instance_uid),
            "00081197": _element("US", s.failure_code),
        }
        for s in staged.skipped
        if s.sop_class_uid and s.sop_instance_uid
    ]
    other = [
        {"00081197": _element("US", s.failure_code)}
        for s in staged.skipped
        if not (s.sop_class_uid and s.sop_instance_uid)
    ]
    if referenced:
        out["00081199"] = _element("SQ", *referenced)
    if failed:
        out["00081198"] = _element("SQ", *failed)
    if other:
        out["0008119A"] = _element("SQ", *other)
    return out


def stow_status(staged: StagedStudy) -> int:
    """HTTP status of a successful STOW-RS (PS3.18 10.5.3): 200 all stored, 202 stored with failures."""
    return 202 if staged.skipped else 200
