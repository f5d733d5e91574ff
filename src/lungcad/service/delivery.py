"""Result delivery: push the DICOM SEG, the TID 1500 SR and the Encapsulated PDF of a done analysis to the
configured destinations (``settings.delivery_destinations``: C-STORE or DICOMweb STOW-RS), with bounded
retries, every attempt recorded in the delivery log (``result_deliveries``, ``GET
/api/v1/analyses/{id}/deliveries``).

* **Queue.** :func:`queue_after_analysis` (called by ``jobs.state.finish_done`` once the row is committed
  done) writes one ``pending`` row per enabled destination and object kind it wants; an object the analysis
  did not make (no SEG without a finding) gets a ``skipped`` row saying why; an analysis run without a
  report (``report: false``: no DICOM objects at all) gets no rows.  It never raises into the job: an
  analysis is not failed because its delivery could not be queued (``delivery_queue_failed`` is logged).
* **Send.** :func:`deliver_due` (a thread of every worker, each second: :func:`start_delivery_thread`) claims
  due rows with a conditional UPDATE (a fresh token, ``next_attempt_at`` pushed past the attempt's longest
  duration), so two workers never send one attempt twice, and a slow PACS never holds an analysis: sending
  runs beside the analysis threads, not in them.  Delivery is at-least-once (a worker dying mid-send leaves
  the row to be claimed again); a PACS stores a re-sent SOP instance once.
* **Retry.** A transient failure (the destination down, busy or slow: see ``delivery_cstore`` and
  ``delivery_stow`` for which C-STORE statuses and HTTP answers count) waits ``backoff_s * 2**(n-1)`` seconds
  (at most ``backoff_cap_s``) after the n-th attempt; the row is ``failed`` after ``max_attempts`` attempts
  or at the first permanent failure (a refusal that would repeat), never retried endlessly.
  A destination that gave no answer at all (down, unreachable) is not tried again in the same round: its
  other objects wait for the next round instead of each waiting out the timeout.
* A pending row of a destination later disabled waits (it is sent once the destination is enabled again);
  one whose destination was removed from the settings fails with that reason.

Log lines hold delivery / analysis ids, destination names and statuses; never a UID, a URL or PHI.
"""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session

from lungcad.log import get_logger
from lungcad.service.db.claims import claim_due, start_rounds
from lungcad.service.db.models import Analysis, AnalysisStatus, ResultDelivery, ResultDeliveryStatus
from lungcad.service.db.session import transaction, utcnow
from lungcad.service.delivery_attempt import Attempt

if TYPE_CHECKING:
    from lungcad.service.context import ServiceContext
    from lungcad.service.settings import DeliveryDestination

# where render_report writes each object, relative to the result folder (lungcad.report.render._dicom)
OBJECT_FILES = {"seg": "dicom/seg.dcm", "sr": "dicom/sr.dcm", "pdf": "dicom/report_pdf.dcm"}
_MISSING = {"seg": "no finding to segment (a DICOM SEG needs one)"}
BATCH = 50  # rows claimed per round
CLAIM_MARGIN_S = 60.0  # a claim outlives the attempt's longest duration by this much
P = ResultDeliveryStatus
log = get_logger("lungcad.service.delivery")


def backoff_s(dest: DeliveryDestination, attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: ``backoff_s``, twice that, ... capped."""
    return min(dest.backoff_s * 2 ** max(attempts - 1, 0), dest.backoff_cap_s)


def _claim_s(dest: DeliveryDestination) -> float:
    # C-STORE: connect + associate + store + release may each wait up to timeout_s
    return 4 * dest.timeout_s + CLAIM_MARGIN_S


# -- queueing --------------------------------------------------------------------------------------------
def _sop_uid(path: Path) -> str | None:
    import pydicom

    try:
        return str(
            pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"]).SOPInstanceUID
        )
    except Exception:  # noqa: BLE001 - an unreadable file is sent anyway; the destination judges it
        return None


def queue_deliveries(ctx: ServiceContext, analysis_id: str, *, now: datetime | None = None) -> list[str]:
    """Write the delivery rows of a done analysis (see the module docstring); the new row ids.  An object
    already queued for a destination is not queued again.  Raises what the database raises."""
    targets = ctx.settings.delivery_targets
    if not targets:
        return []
    now = now or utcnow()
    with ctx.sessions() as s:
        row = s.get(Analysis, analysis_id)
        if row is None or row.status is not AnalysisStatus.DONE or not row.report or not row.result_dir:
            return []
        root = ctx.storage.result_dir(row.result_dir)
        have = set(
            s.execute(
                select(ResultDelivery.destination, ResultDelivery.object_kind).where(
                    ResultDelivery.analysis_id == analysis_id
                )
            ).all()
        )
    rows: list[ResultDelivery] = []
    uids: dict[str, str | None] = {}
    for dest in targets:
        for kind in dest.objects:
            if (dest.name, kind) in have:
                continue
            path = root / OBJECT_FILES[kind]
            present = path.is_file()
            if present and kind not in uids:
                uids[kind] = _sop_uid(path)
            rows.append(
                ResultDelivery(
                    id=uuid.uuid4().hex,
                    analysis_id=analysis_id,
                    destination=dest.name,
                    kind=dest.kind,
                    object_kind=kind,
                    file=OBJECT_FILES[kind] if present else None,
                    sop_instance_uid=uids.get(kind) if present else None,
                    status=P.PENDING if present else P.SKIPPED,
                    attempts=0,
                    max_attempts=dest.max_attempts,
                    created_at=now,
                    next_attempt_at=now,
                    last_error=None
                    if present
                    else _MISSING.get(kind, f"the analysis wrote no {kind} object"),
                )
            )
    with transaction(ctx.sessions) as s:
        s.add_all(rows)
    return [r.id for r in rows if r.status is P.PENDING]


def queue_after_analysis(ctx: ServiceContext, analysis_id: str) -> int:
    """:func:`queue_deliveries` for the hook of a finished analysis: never raises; the rows queued."""
    try:
        queued = queue_deliveries(ctx, analysis_id)
    except Exception as exc:  # noqa: BLE001 - a delivery must never fail the analysis that made it
        log.warning("delivery_queue_failed", job=analysis_id, error_type=type(exc).__name__)
        return 0
    if queued:
        log.info("delivery_queued", job=analysis_id, objects=len(queued))
    return len(queued)


def list_deliveries(s: Session, analysis_id: str) -> list[ResultDelivery]:
    """The delivery log of one analysis (``get_analysis`` answers 404 for an unknown id), oldest first."""
    from lungcad.service.analyses import get_analysis

    get_analysis(s, analysis_id)
    q = select(ResultDelivery).where(ResultDelivery.analysis_id == analysis_id)
    return list(s.scalars(q.order_by(ResultDelivery.destination, ResultDelivery.object_kind)))


def redeliver(ctx: ServiceContext, analysis_id: str) -> list[ResultDelivery]:
    """Send an analysis's failed deliveries again (after a PACS outage outlasted the retries): each becomes
    ``pending`` with its attempts counted afresh, and objects of destinations added since are queued.  404
    for an unknown analysis, 409 while it is not done; the analysis's delivery log after the change."""
    from lungcad.service.analyses import get_analysis
    from lungcad.service.errors import conflict

    with ctx.sessions() as s:
        row, _ = get_analysis(s, analysis_id)
        if row.status is not AnalysisStatus.DONE:
            raise conflict(
                f"analysis {analysis_id} is {row.status.value}, not done: nothing to deliver",
                fix="wait until the analysis is done; its results are delivered then",
            )
    now = utcnow()
    stmt = (
        update(ResultDelivery)
        .where(
            ResultDelivery.analysis_id == analysis_id,
            ResultDelivery.status == P.FAILED,
            ResultDelivery.destination.in_([d.name for d in ctx.settings.delivery_targets]),
        )
        .values(status=P.PENDING, attempts=0, next_attempt_at=now, claim=None)
        .execution_options(synchronize_session=False)
    )
    with transaction(ctx.sessions) as s:
        s.execute(stmt)
    queue_deliveries(ctx, analysis_id, now=now)
    with ctx.sessions() as s:
        return list_deliveries(s, analysis_id)


# -- sending ---------------------------------------------------------------------------------------------
def send_object(dest: DeliveryDestination, path: Path) -> Attempt:
    """One attempt to store the DICOM file ``path`` at ``dest`` (C-STORE or STOW-RS)."""
    if dest.kind == "cstore":
        from lungcad.service.delivery_cstore import send
    else:
        from lungcad.service.delivery_stow import send
    return send(dest, path)


def _claim(ctx: ServiceContext, delivery_id: str, now: datetime, hold_s: float) -> str | None:
    return claim_due(ctx.sessions, ResultDelivery, delivery_id, P.PENDING, now, hold_s)


def _record(
    ctx: ServiceContext,
    row: ResultDelivery,
    token: str,
    dest: DeliveryDestination | None,
    out: Attempt,
    now: datetime,
) -> ResultDeliveryStatus:
    """Write the attempt's outcome while the claim is still this attempt's; the row's new status."""
    attempts = row.attempts + 1
    values: dict[str, Any] = {
        "attempts": attempts,
        "last_attempt_at": now,
        "last_status": out.status,
        "last_error": out.error_text,
        "claim": None,
    }
    if out.ok:
        values |= {"status": P.DELIVERED, "delivered_at": now}
    elif not out.transient or dest is None or attempts >= row.max_attempts:
        values |= {"status": P.FAILED}
    else:
        values |= {"next_attempt_at": now + timedelta(seconds=backoff_s(dest, attempts))}
    stmt = (
        update(ResultDelivery)
        .where(and_(ResultDelivery.id == row.id, ResultDelivery.claim == token))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    with transaction(ctx.sessions) as s:
        s.execute(stmt)
    return values.get("status", P.PENDING)


def _fail_unconfigured(ctx: ServiceContext, now: datetime) -> None:
    """Pending rows of destinations no longer in the settings cannot be sent: fail them with the reason."""
    names = [d.name for d in ctx.settings.delivery_destinations]
    where = (ResultDelivery.status == P.PENDING, ResultDelivery.destination.not_in(names))
    with ctx.sessions() as s:  # a read first: an UPDATE would take SQLite's write lock every second
        if s.scalars(select(ResultDelivery.id).where(*where).limit(1)).first() is None:
            return
    stmt = (
        update(ResultDelivery)
        .where(*where)
        .values(status=P.FAILED, last_error="the destination is no longer configured", last_attempt_at=now)
        .execution_options(synchronize_session=False)
    )
    with transaction(ctx.sessions) as s:
        s.execute(stmt)


def deliver_due(ctx: ServiceContext, *, now: datetime | None = None) -> int:
    """Attempt every delivery due at ``now`` (default: the clock; tests step a fake one), at most ``BATCH``;
    the number of attempts made.  Without ``now`` each attempt reads the clock afresh (a round spent waiting
    on a slow destination must not date later attempts, or their backoff, in the past)."""
    fixed = now
    now = now or utcnow()
    _fail_unconfigured(ctx, now)
    dests = {d.name: d for d in ctx.settings.delivery_targets}
    if not dests:
        return 0
    with ctx.sessions() as s:
        due = s.execute(
            select(ResultDelivery.id, ResultDelivery.destination)
            .where(
                ResultDelivery.status == P.PENDING,
                ResultDelivery.next_attempt_at <= now,
                ResultDelivery.destination.in_(list(dests)),
            )
            .order_by(ResultDelivery.next_attempt_at)
            .limit(BATCH)
        ).all()
    sent = 0
    down: set[str] = set()  # destinations that could not be reached this round: their other rows wait
    for delivery_id, name in due:
        if name in down:
            continue  # one unreachable PACS costs one timeout per round, not one per object
        dest = dests[name]
        now = fixed or utcnow()
        token = _claim(ctx, delivery_id, now, _claim_s(dest))
        if token is None:
            continue  # another worker took it
        with ctx.sessions() as s:
            row = s.get(ResultDelivery, delivery_id)
            analysis = s.get(Analysis, row.analysis_id) if row is not None else None
            if row is not None:
                s.expunge(row)
            result_dir = analysis.result_dir if analysis is not None else None
        if row is None:
            continue  # the analysis was deleted meanwhile (with its deliveries)
        path = ctx.storage.result_dir(result_dir) / row.file if result_dir and row.file else None
        if path is None or not path.is_file():
            out = Attempt(ok=False, error="the result file is gone (the analysis's results were removed)")
        else:
            try:
                out = send_object(dest, path)
            except Exception as exc:  # noqa: BLE001 - a bug or an unreadable file: recorded, not retried
                out = Attempt(ok=False, error=f"internal error ({type(exc).__name__}: {exc})")
        status = _record(ctx, row, token, dest, out, fixed or utcnow())
        sent += 1
        if not out.ok and out.transient and out.status is None:  # no answer at all: down or unreachable
            down.add(name)
        log.info(
            "delivery_attempt", delivery=delivery_id, job=row.analysis_id, destination=name,
            object=row.object_kind, attempt=row.attempts + 1, status_code=out.status, outcome=status.value,
            transient=out.transient if not out.ok else None,
        )  # fmt: skip
    return sent


def start_delivery_thread(
    ctx: ServiceContext, stop: threading.Event, interval_s: float = 1.0
) -> threading.Thread:
    """Run :func:`deliver_due` every ``interval_s`` seconds in a daemon thread until ``stop`` is set."""
    return start_rounds(
        "result-delivery", lambda: deliver_due(ctx), stop, interval_s, "delivery_round_failed"
    )
