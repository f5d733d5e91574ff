"""The DICOM listener: a C-STORE SCP (PS3.4 B) with C-ECHO (PS3.4 A) that feeds received CT studies into
the service exactly as an upload does, and queues an analysis once a study is complete.

A PACS (or a modality) pushes a study instance by instance, often over several associations, and never
says "the study is complete".  So:

1. Each received instance is written, as the Part-10 file the SCU sent (``Event.encoded_dataset``: file meta
   + dataset, no re-encoding), into an inbox folder of its study, ``D/dicom_inbox/<StudyInstanceUID>/``
   (temp file, then rename), before the C-STORE response says Success (0x0000): an instance acknowledged
   to the PACS is on disk.
2. A study is *stable* when no instance of it arrived for ``dicom_stable_s`` seconds.  Then its inbox files
   go through ``lungcad.service.studies.ingest_upload`` -- the function ``POST /studies`` calls (the same
   sniff / stage / judge of ``lungcad.service.intake`` and the same ``store_staged``: content-addressed
   blobs, one transaction, dedup by SOPInstanceUID) -- and, when anything new was stored, one analysis is
   queued with ``lungcad.service.analyses.create_analysis`` (what ``POST /analyses`` calls).  An instance
   arriving later re-arms the study; re-sent instances are duplicates (stored once, no new analysis).

Why not store each instance as it arrives: the intake judges a *series* (a CT volume needs at least two
slices, consistent spacing), so a study taken one instance at a time would be refused slice by slice.  When
a study is already stored, its stored instances are judged together with the new ones (they come back as
duplicates and stay as they are), so a late slice is judged as part of the whole series.

Presentation contexts: CT Image Storage (1.2.840.10008.5.1.4.1.1.2) and Verification (1.2.840.10008.1.1),
Implicit and Explicit VR Little Endian; any other SOP class is refused at association (the context is
rejected, PS3.8 9.3.2.2).  A calling AE title not in ``dicom_allowed_aets`` (when it is not empty) is
rejected at association (A-ASSOCIATE-RJ, reason "calling AE title not recognised").

Logs name UID tails and counts only: never PatientName / PatientID (they are in the files, not the logs).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lungcad.errors import InputError
from lungcad.log import get_logger

if TYPE_CHECKING:
    from lungcad.service.context import ServiceContext


def _log() -> Any:
    """The logger, fetched per line: this module may be imported before logging is configured (and
    ``get_logger`` is silent until then)."""
    return get_logger("lungcad.service.dicom_listener")


CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
VERIFICATION = "1.2.840.10008.1.1"
TRANSFER_SYNTAXES = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")  # implicit, explicit VR little endian
INBOX = "dicom_inbox"
# C-STORE response statuses (PS3.4 B.2.3): success; "cannot understand" for a dataset without usable UIDs;
# "out of resources" when the inbox cannot be written
SUCCESS, CANNOT_UNDERSTAND, OUT_OF_RESOURCES = 0x0000, 0xC000, 0xA700
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")  # PS3.5 9.1; also makes it a safe file name
_MAX_UID = 64


def uid_tail(uid: str, n: int = 8) -> str:
    """The last ``n`` characters of a UID, for logs (enough to tell studies apart, not a full identifier)."""
    return "..." + uid[-n:] if len(uid) > n else uid


def _valid_uid(value: Any) -> str | None:
    text = str(value or "").strip()
    return text if text and len(text) <= _MAX_UID and _UID.match(text) else None


@dataclass
class StudyOutcome:
    """What happened to one stable study (returned by :meth:`DicomInbox.process`, for tests and logs)."""

    study_uid: str
    study_id: str | None = None
    n_files: int = 0
    n_stored: int = 0
    n_duplicates: int = 0
    analysis_id: str | None = None
    refused: str | None = None  # the intake's error code when the study could not be stored
    error: str | None = None  # the exception type when queueing the analysis failed


@dataclass
class DicomInbox:
    """Received instances waiting for their study to be stable; thread-safe (handlers run per association).

    Args:
        ctx: the service context (storage, database, queue).
        stable_s: quiet seconds after which a study is ingested.
    """

    ctx: ServiceContext
    stable_s: float
    root: Path = field(init=False)
    outcomes: deque[StudyOutcome] = field(default_factory=lambda: deque(maxlen=1000))  # the latest ones
    _last: dict[str, float] = field(default_factory=dict)  # study UID -> monotonic time of the last arrival
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.root = Path(self.ctx.storage.root) / INBOX
        self.root.mkdir(parents=True, exist_ok=True)
        now = time.monotonic()
        # instances acknowledged before a restart: their studies are armed again
        for folder in self.root.iterdir():
            if folder.is_dir() and _valid_uid(folder.name) and any(folder.glob("*.dcm")):
                self._last[folder.name] = now

    def put(self, study_uid: str, sop_uid: str, data: bytes) -> None:
        """Write one received instance (Part-10 bytes) into its study's inbox and re-arm the study."""
        folder = self.root / study_uid
        final = folder / f"{sop_uid}.dcm"
        tmp = folder / f".{sop_uid}.{threading.get_ident()}.part"
        for attempt in (1, 2):  # the folder may be removed (emptied study) between mkdir and open: once more
            folder.mkdir(parents=True, exist_ok=True)
            try:
                fh = open(tmp, "wb")  # noqa: SIM115 - closed below
            except FileNotFoundError:
                if attempt == 2:
                    raise
                continue
            with fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            break
        os.replace(tmp, final)  # a re-sent instance replaces its copy: one file per SOPInstanceUID
        with self._lock:
            self._last[study_uid] = time.monotonic()

    def pending(self) -> list[str]:
        with self._lock:
            return sorted(self._last)

    def due(self, now: float | None = None) -> list[str]:
        """Studies quiet for ``stable_s`` seconds (taken off the armed list)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            ready = [uid for uid, t in self._last.items() if now - t >= self.stable_s]
            for uid in ready:
                del self._last[uid]
        return ready

    def process(self, study_uid: str) -> StudyOutcome:
        """Ingest a stable study's inbox files as one upload, then queue one analysis if anything was new.

        An unexpected error (the database or the disk failing) re-arms the study, so it is tried again
        ``stable_s`` later, and propagates; its files stay in the inbox.
        """
        try:
            return self._process(study_uid)
        except Exception:
            with self._lock:
                self._last.setdefault(study_uid, time.monotonic())
            raise

    def _process(self, study_uid: str) -> StudyOutcome:
        from lungcad.service.analyses import create_analysis
        from lungcad.service.errors import ApiError
        from lungcad.service.intake import UploadPart
        from lungcad.service.studies import ingest_upload

        folder = self.root / study_uid
        files = sorted(folder.glob("*.dcm"))  # a snapshot: later arrivals stay for the next round
        out = StudyOutcome(study_uid=study_uid, n_files=len(files))
        if not files:
            return self._done(out)
        before = self._stored(study_uid)  # SOPInstanceUID -> blob file
        with ExitStack() as stack:
            parts = [
                UploadPart(f.name, "application/dicom", stack.enter_context(open(f, "rb")))
                for f in [*before.values(), *files]
            ]
            try:
                _, stored = ingest_upload(self.ctx, parts)
            except (InputError, ApiError) as exc:  # the intake's 4xx: not a CT study, no usable series...
                out.refused = getattr(exc, "code", None) or type(exc).__name__
                _log().warning(
                    "dicom_study_refused", study=uid_tail(study_uid), files=len(files), code=out.refused
                )
                self._discard(files, folder)  # the same bytes would be refused again
                return self._done(out)
        self._discard(files, folder)
        out.study_id = stored.study.id
        # the stored instances come back as duplicates by design: only a re-sent one counts as one
        out.n_stored, out.n_duplicates = len(stored.stored), len({f.stem for f in files} & before.keys())
        if stored.stored:
            try:
                report = bool(self.ctx.settings.delivery_targets)  # to deliver, make the SEG / SR / PDF
                out.analysis_id = create_analysis(self.ctx, study_id=stored.study.id, report=report).id
            except ApiError as exc:  # 409 no active model, 503 queue down (the row stays queued)
                out.error = exc.code
                _log().error("dicom_analysis_not_queued", study=uid_tail(study_uid), code=exc.code)
        return self._done(out)

    def _stored(self, study_uid: str) -> dict[str, Path]:
        """SOPInstanceUID -> blob file of the instances of this study already stored (judged with the new
        ones: the intake sees the whole series)."""
        from sqlalchemy import select

        from lungcad.service.db.models import Instance, Series, Study

        with self.ctx.sessions() as s:
            rows = s.execute(
                select(Instance.sop_uid, Instance.blob)
                .join(Series)
                .join(Study)
                .where(Study.study_uid == study_uid)
            ).all()
        return {sop: self.ctx.storage.blob_path(blob) for sop, blob in rows}

    def _discard(self, files: list[Path], folder: Path) -> None:
        # an instance re-sent while its study was being stored replaced its file, which goes too: it is
        # a duplicate of the one just stored (the first stored copy of a SOPInstanceUID is kept anyway)
        for f in files:
            f.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # not empty: an instance arrived meanwhile, it stays
            folder.rmdir()

    def _done(self, out: StudyOutcome) -> StudyOutcome:
        _log().info(
            "dicom_study_processed",
            study=uid_tail(out.study_uid),
            files=out.n_files,
            stored=out.n_stored,
            duplicates=out.n_duplicates,
            analysis=out.analysis_id,
            refused=out.refused,
        )
        self.outcomes.append(out)  # after the log line: a reader of ``outcomes`` sees it written
        return out


# -- the SCP --------------------------------------------------------------------------------------------
class DicomListener:
    """A pynetdicom AE serving C-STORE (CT Image Storage) and C-ECHO, feeding a :class:`DicomInbox`.

    ``start()`` binds the port and returns (the server runs in pynetdicom's threads; port 0 picks a free
    one, read it from ``port``); ``poll()`` ingests the stable studies; ``serve_forever()`` polls until
    ``stop()``.  Use it as a context manager in tests.
    """

    def __init__(
        self,
        ctx: ServiceContext,
        *,
        ae_title: str | None = None,
        host: str | None = None,
        port: int | None = None,
        allowed_aets: tuple[str, ...] | None = None,
        stable_s: float | None = None,
    ) -> None:
        st = ctx.settings
        self.ctx = ctx
        self.ae_title = ae_title if ae_title is not None else st.dicom_ae_title
        self.host = host if host is not None else st.dicom_host
        self.port = port if port is not None else st.dicom_port
        self.allowed_aets = tuple(allowed_aets if allowed_aets is not None else st.dicom_allowed_aets)
        self.inbox = DicomInbox(ctx, stable_s if stable_s is not None else st.dicom_stable_s)
        self._server: Any = None
        self._stop = threading.Event()

    def _make_ae(self) -> Any:
        from pynetdicom import AE

        ae = AE(ae_title=self.ae_title)
        ae.add_supported_context(CT_IMAGE_STORAGE, list(TRANSFER_SYNTAXES))
        ae.add_supported_context(VERIFICATION, list(TRANSFER_SYNTAXES))
        # pynetdicom rejects other calling AE titles at association (A-ASSOCIATE-RJ, permanent, reason 3)
        ae.require_calling_aet = [a.strip() for a in self.allowed_aets]
        return ae

    def start(self) -> DicomListener:
        from pynetdicom import evt

        handlers = [
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_REJECTED, self._on_rejected),
        ]
        try:
            self._server = self._make_ae().start_server(
                (self.host, self.port), block=False, evt_handlers=handlers
            )
        except OSError as exc:
            raise InputError(
                f"the DICOM listener cannot listen on {self.host}:{self.port} ({exc.strerror or exc})",
                fix="pick a free port with --port (LUNGCAD_DICOM_PORT); ports below 1024 need root",
            ) from exc
        self.port = int(self._server.server_address[1])
        _log().info(
            "dicom_listener_started", ae_title=self.ae_title, port=self.port, allowed=len(self.allowed_aets)
        )
        return self

    def poll(self) -> list[StudyOutcome]:
        """Ingest every study that is stable now; returns what happened to each."""
        return [self.inbox.process(uid) for uid in self.inbox.due()]

    def serve_forever(self, tick_s: float | None = None) -> None:
        """Poll for stable studies until :meth:`stop` (or SIGTERM / Ctrl-C in the CLI)."""
        tick = tick_s if tick_s is not None else min(1.0, self.inbox.stable_s / 4)
        while not self._stop.wait(tick):
            try:
                self.poll()
            except Exception as exc:  # noqa: BLE001 - the database is down: keep listening, try again
                _log().error("dicom_poll_failed", error_type=type(exc).__name__)

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def __enter__(self) -> DicomListener:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @contextmanager
    def polling(self, tick_s: float = 0.05) -> Iterator[None]:
        """Run :meth:`serve_forever` in a thread for the duration of the block (tests, embedding)."""
        thread = threading.Thread(target=self.serve_forever, args=(tick_s,), daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join(timeout=30)

    # -- handlers (pynetdicom's association threads) ---------------------------------------------------
    def _on_echo(self, event: Any) -> int:
        _log().info("dicom_echo", calling=_calling(event))
        return SUCCESS

    def _on_rejected(self, event: Any) -> None:
        _log().warning("dicom_association_rejected", calling=_calling(event))

    def _on_store(self, event: Any) -> int:
        try:
            ds = event.dataset
            study = _valid_uid(ds.get("StudyInstanceUID"))
            sop = _valid_uid(ds.get("SOPInstanceUID"))
        except Exception as exc:  # noqa: BLE001 - a dataset pydicom cannot decode
            _log().warning("dicom_store_unreadable", error_type=type(exc).__name__)
            return CANNOT_UNDERSTAND
        if study is None or sop is None:
            _log().warning("dicom_store_no_uids", calling=_calling(event))
            return CANNOT_UNDERSTAND
        try:
            self.inbox.put(study, sop, bytes(event.encoded_dataset()))
        except OSError as exc:  # disk full, permissions: the SCU keeps the instance and may retry
            _log().error("dicom_store_failed", study=uid_tail(study), error_type=type(exc).__name__)
            return OUT_OF_RESOURCES
        return SUCCESS


def _calling(event: Any) -> str:
    try:
        return str(event.assoc.requestor.ae_title).strip()
    except AttributeError:
        return "?"


def run_listener(settings: Any, *, on_start: Any = None) -> None:
    """``lungcad dicom-listener``: open the data folder (migrating the database, as ``serve`` and
    ``worker`` do), listen, and ingest stable studies until SIGTERM or Ctrl-C.

    Args:
        settings: ``ServiceSettings`` (``dicom_*`` fields).
        on_start: called with the started listener (the CLI prints where it listens).
    """
    import signal

    from lungcad.service.context import open_context

    ctx = open_context(settings)
    listener = DicomListener(ctx)
    previous = signal.signal(signal.SIGTERM, lambda *_: listener.stop())
    try:
        listener.start()
        if on_start is not None:
            on_start(listener)
        listener.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        listener.stop()
        signal.signal(signal.SIGTERM, previous)
        ctx.close()
