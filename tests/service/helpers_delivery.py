"""Test helpers of the result delivery tests: small real DICOM objects of the three delivered SOP classes, a
done analysis holding them, a pynetdicom Storage SCP standing in for a PACS (answering the C-STORE statuses
a test asks for), and a STOW-RS HTTP endpoint on loopback answering the HTTP statuses a test asks for."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from lungcad.service.context import ServiceContext, open_context
from lungcad.service.settings import load_settings
from tests.service.helpers_analyses import add_done, add_study

SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.34"
PDF_CLASS = "1.2.840.10008.5.1.4.1.1.104.1"
CT_CLASS = "1.2.840.10008.5.1.4.1.1.2"
CLASSES = {"seg": SEG_CLASS, "sr": SR_CLASS, "pdf": PDF_CLASS}
FILES = {"seg": "dicom/seg.dcm", "sr": "dicom/sr.dcm", "pdf": "dicom/report_pdf.dcm"}


def dicom_object(sop_class: str, study_uid: str = "1.2.826.0.1.3680043.10.1138.1") -> tuple[str, bytes]:
    """(SOPInstanceUID, Part-10 bytes) of a minimal dataset of ``sop_class``."""
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, generate_uid()
    ds.Modality = {SEG_CLASS: "SEG", SR_CLASS: "SR", PDF_CLASS: "DOC"}.get(sop_class, "OT")
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = (
        sop_class,
        ds.SOPInstanceUID,
    )
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return str(ds.SOPInstanceUID), buf.getvalue()


def open_with(tmp_path: Path, destinations: list[dict[str, Any]], **overrides: Any) -> ServiceContext:
    env = {"LUNGCAD_DELIVERY_DESTINATIONS": json.dumps(destinations)}
    return open_context(load_settings(tmp_path / "data", environ=env, **overrides))


def done_analysis(
    ctx: ServiceContext, kinds: tuple[str, ...] = ("seg", "sr", "pdf"), *, report: bool = True
) -> tuple[str, dict[str, str]]:
    """A done analysis whose result folder holds the objects ``kinds``; (its id, kind -> SOPInstanceUID)."""
    made = {k: dicom_object(CLASSES[k]) for k in kinds}
    aid = add_done(
        ctx, add_study(ctx), report=report, extra_files={FILES[k]: b for k, (_, b) in made.items()}
    )
    return aid, {k: uid for k, (uid, _) in made.items()}


@dataclass
class FakePacs:
    """A Storage SCP on loopback: answers each C-STORE with the next of ``statuses`` (then 0x0000)."""

    port: int
    ae_title: str = "PACS"
    statuses: list[int] = field(default_factory=list)
    classes: tuple[str, ...] = (SEG_CLASS, SR_CLASS, PDF_CLASS)
    check_called_aet: bool = False
    received: list[str] = field(default_factory=list)  # SOPInstanceUIDs answered with success
    calls: int = 0

    def _on_store(self, event: Any) -> int:
        self.calls += 1
        status = self.statuses.pop(0) if self.statuses else 0x0000
        if status == 0x0000 or 0xB000 <= status <= 0xBFFF:
            self.received.append(str(event.dataset.SOPInstanceUID))
        return status

    @contextmanager
    def running(self) -> Iterator[FakePacs]:
        from pynetdicom import AE, evt

        ae = AE(ae_title=self.ae_title)
        for uid in self.classes:
            ae.add_supported_context(uid, [ExplicitVRLittleEndian, "1.2.840.10008.1.2"])
        ae.require_called_aet = self.check_called_aet
        server = ae.start_server(
            ("127.0.0.1", self.port), block=False, evt_handlers=[(evt.EVT_C_STORE, self._on_store)]
        )
        try:
            yield self
        finally:
            server.shutdown()


@dataclass
class FakeStow:
    """A STOW-RS endpoint on loopback: answers each POST with the next of ``answers`` ((code, JSON body));
    then 200.  ``requests`` keeps (path, headers, body) of each."""

    answers: list[tuple[int, Any]] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    port: int = 0

    @contextmanager
    def running(self) -> Iterator[FakeStow]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append((self.path, dict(self.headers), body))
                code, doc = outer.answers.pop(0) if outer.answers else (200, {})
                data = json.dumps(doc).encode() if doc is not None else b""
                self.send_response(code)
                self.send_header("Content-Type", "application/dicom+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = int(server.server_address[1])
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()


def read_part(body: bytes, content_type: str) -> bytes:
    """The one part of a ``multipart/related`` body (its bytes between the header block and the boundary)."""
    boundary = content_type.split("boundary=")[1].strip('"')
    first = body.split(f"--{boundary}\r\n".encode(), 1)[1]
    head, rest = first.split(b"\r\n\r\n", 1)
    assert b"Content-Type: application/dicom" in head
    return rest.rsplit(f"\r\n--{boundary}--".encode(), 1)[0]


def parse(data: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(data))
