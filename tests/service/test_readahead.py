"""The worker's read-ahead (``lungcad.service.jobs.readahead``): the next queued scan is read while the
current one runs, used only when its key matches, never a failure of its own, never a staging leftover.

Real pieces: the bundled slab (and renamed copies of it) stored as blobs + rows, the shipped model, SQLite,
a real SQLite Huey queue file whose messages the test delivers (``huey.dequeue`` + ``huey.execute``, what
the consumer does).  Most tests stop every job right after its load stage (a 1 ms time limit: the job's
first progress call fails it), so they read volumes but run no network; one test runs the network three
times to compare results with and without the read-ahead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, update
from structlog.testing import capture_logs

from lungcad.service.context import ServiceContext, open_context
from lungcad.service.db.models import Analysis, AnalysisStatus, Instance, Series
from lungcad.service.db.session import transaction
from lungcad.service.jobs.queue import enqueue_analysis, jobs_of
from lungcad.service.jobs.readahead import ReadAhead
from lungcad.service.settings import load_settings
from tests.service.conftest import SLAB
from tests.service.helpers_store import add_analysis, renamed_copy, row, store_series


@contextmanager
def _ctx(tmp_path: Path, **overrides: object) -> Iterator[ServiceContext]:
    settings = load_settings(tmp_path / "data", environ={}, job_retry_delay_s=30, **overrides)
    ctx = open_context(settings)
    try:
        yield ctx
    finally:
        ra = jobs_of(ctx.queue).readahead
        if ra is not None:
            ra.close()
        ctx.close()


@pytest.fixture
def fast(tmp_path: Path) -> Iterator[ServiceContext]:
    """Jobs fail ("timed out") right after their load stage: volumes are read, no network runs."""
    with _ctx(tmp_path, job_timeout_s=0.001) as ctx:
        yield ctx


def _ra(ctx: ServiceContext) -> ReadAhead:
    ra = jobs_of(ctx.queue).readahead
    assert ra is not None
    return ra


def _series(ctx: ServiceContext, tmp_path: Path, n: int) -> tuple[str, str]:
    """Copy ``n`` of the slab stored (its own UIDs: the result cache does not merge copies)."""
    return store_series(ctx, renamed_copy(SLAB, tmp_path / f"copy{n}", n))


def _queued(ctx: ServiceContext, tmp_path: Path, n: int) -> list[str]:
    """``n`` analyses of ``n`` copies, queued in that order (rows and messages)."""
    ids = []
    for k in range(n):
        aid = add_analysis(ctx, *_series(ctx, tmp_path, k + 1))
        enqueue_analysis(ctx, aid)
        ids.append(aid)
    return ids


def _deliver(ctx: ServiceContext, expect: str | None = None) -> str:
    """Deliver the queue's next message to this process, as the consumer does; returns its analysis id."""
    huey = ctx.queue
    task = huey.dequeue()
    assert task is not None
    if expect is not None:
        assert task.args == (expect,)
    huey.execute(task)
    ra = jobs_of(huey).readahead
    if ra is not None:
        ra.wait(60)  # a settled state to look at: the read of the job after it done
    return str(task.args[0])


def _staging(ctx: ServiceContext) -> list[Path]:
    return sorted(ctx.storage.tmp.glob("job-*"))


def _events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == name]


def _result(ctx: ServiceContext, name: str) -> dict[str, Any]:
    doc = json.loads((ctx.storage.result_dir(name) / "result.json").read_text())
    doc.pop("timings_s")  # wall-clock seconds: the only field that differs run to run
    return doc


# -- the hit, identical results ------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_second_of_two_queued_analyses_is_read_ahead_with_an_identical_result(tmp_path: Path) -> None:
    with _ctx(tmp_path) as ctx:
        a1, a2 = _queued(ctx, tmp_path, 2)
        with capture_logs() as logs:
            _deliver(ctx, a1)  # a1 read normally; a2 read while a1's network ran
            assert _ra(ctx).counts["read"] == 1 and _ra(ctx).counts["hit"] == 0
            assert len(_staging(ctx)) == 1  # the read-ahead's folder, held for a2
            _deliver(ctx, a2)
        ra = _ra(ctx)
        assert ra.counts["hit"] == 1 and ra.counts["dropped"] == 0 and ra.counts["failed"] == 0
        (hit,) = _events(logs, "job_read_ahead")
        assert (
            hit["job"] == a2
            and hit["instances"] > 0
            and set(hit) <= {"event", "log_level", "logger", "job", "instances"}  # ids and counts only
        )
        (read,) = _events(logs, "job_read_ahead_read")
        assert (read["job"], read["after"]) == (a2, a1)
        assert [row(ctx, a).status for a in (a1, a2)] == [AnalysisStatus.DONE] * 2  # type: ignore[union-attr]
        assert _staging(ctx) == []
        with_ahead = _result(ctx, a2)

        # the same series again, read by the job itself: the result folder removed, so no cache hit
        ctx.storage.delete_result(a2)
        a3 = add_analysis(ctx, *_store_again(ctx, a2))
        enqueue_analysis(ctx, a3)
        _deliver(ctx, a3)
        assert ra.counts["hit"] == 1 and row(ctx, a3).status is AnalysisStatus.DONE  # type: ignore[union-attr]
        assert _result(ctx, a3) == with_ahead
        assert with_ahead["findings"]  # a result with findings, not two empty ones
        assert _staging(ctx) == []


def _store_again(ctx: ServiceContext, analysis_id: str) -> tuple[str, str]:
    r = row(ctx, analysis_id)
    assert r is not None
    return r.study_id, r.series_uid


# -- stale keys, other jobs, failures, cancels: the job reads by itself --------------------------------------
def test_a_series_changed_after_its_read_ahead_is_read_again(fast: ServiceContext, tmp_path: Path) -> None:
    a1, a2 = _queued(fast, tmp_path, 2)
    _deliver(fast, a1)
    ra = _ra(fast)
    assert ra.counts["read"] == 1 and len(_staging(fast)) == 1
    series_uid = row(fast, a2).series_uid  # type: ignore[union-attr]
    with transaction(fast.sessions) as s:  # the PACS replaced the series meanwhile: one instance less
        sop = s.query(Instance.sop_uid).join(Series).filter(Series.series_uid == series_uid).first()[0]
        s.execute(delete(Instance).where(Instance.sop_uid == sop))
    with capture_logs() as logs:
        _deliver(fast, a2)
    assert ra.counts["hit"] == 0 and ra.counts["dropped"] == 1
    assert [e["reason"] for e in _events(logs, "job_read_ahead_dropped")] == ["stale"]
    assert not _events(logs, "job_read_ahead")
    r = row(fast, a2)
    assert r is not None and r.status is AnalysisStatus.FAILED and "timed out" in (r.error or "")
    assert _staging(fast) == []


def test_another_job_first_drops_the_volume_and_the_next_read_is_used(
    fast: ServiceContext, tmp_path: Path
) -> None:
    a1, a2, a3 = _queued(fast, tmp_path, 3)
    ra = _ra(fast)
    _deliver(fast, a1)  # reads a2 ahead
    # a3's message reaches this worker before a2's (another worker took a2's, a redelivery, ...)
    jobs_of(fast.queue).analyse.call_local(a3)
    ra.wait(60)
    assert ra.counts["hit"] == 0 and ra.counts["dropped"] == 1  # a2's volume: never used for a3
    assert ra.counts["read"] == 2  # a3's job read a2 ahead again (a2 is still queued)
    _deliver(fast, a2)
    assert ra.counts["hit"] == 1
    assert _staging(fast) == []
    assert all(row(fast, a).status is AnalysisStatus.FAILED for a in (a1, a2, a3))  # type: ignore[union-attr]


def test_a_failing_read_ahead_fails_nothing(fast: ServiceContext, tmp_path: Path) -> None:
    a1, a2 = _queued(fast, tmp_path, 2)
    series_uid = row(fast, a2).series_uid  # type: ignore[union-attr]
    with fast.sessions() as s:
        digest = s.query(Instance.blob).join(Series).filter(Series.series_uid == series_uid).first()[0]
    blob = fast.storage.blob_path(digest)
    hidden = tmp_path / "hidden-blob"
    blob.rename(hidden)  # the read-ahead's link fails (FileNotFoundError)
    with capture_logs() as logs:
        _deliver(fast, a1)
    ra = _ra(fast)
    assert ra.counts["failed"] == 1 and ra.counts["read"] == 0
    (failed,) = _events(logs, "job_read_ahead_failed")
    assert failed["job"] == a2 and failed["error_type"] == "FileNotFoundError"
    assert row(fast, a2).status is AnalysisStatus.QUEUED  # type: ignore[union-attr] - untouched
    hidden.rename(blob)  # back before a2's turn: a2 reads its series itself
    _deliver(fast, a2)
    r = row(fast, a2)
    assert r is not None and r.status is AnalysisStatus.FAILED and r.attempts == 1
    assert "timed out" in (r.error or "")  # its own read worked: it stopped at its time limit
    assert ra.counts["hit"] == 0 and _staging(fast) == []


def test_a_cancelled_next_job_wastes_its_read_and_leaves_no_folder(
    fast: ServiceContext, tmp_path: Path
) -> None:
    a1, a2 = _queued(fast, tmp_path, 2)
    _deliver(fast, a1)
    assert len(_staging(fast)) == 1
    with transaction(fast.sessions) as s:
        s.execute(update(Analysis).where(Analysis.id == a2).values(status=AnalysisStatus.CANCELLED))
    _deliver(fast, a2)  # not claimable: skipped, its read-ahead dropped
    ra = _ra(fast)
    assert ra.counts["hit"] == 0 and ra.counts["dropped"] == 1
    assert _staging(fast) == []


def test_a_volume_nobody_takes_is_dropped_when_the_worker_stops(fast: ServiceContext, tmp_path: Path) -> None:
    a1, a2 = _queued(fast, tmp_path, 2)
    _deliver(fast, a1)
    assert len(_staging(fast)) == 1  # a2 was claimed by another worker: its message never comes here
    _ra(fast).close()
    assert _staging(fast) == []
    _ra(fast).start_next(a1)  # closed: nothing more is read
    _ra(fast).wait(10)
    assert _ra(fast).counts["read"] == 1 and _staging(fast) == []


def test_a_retry_waiting_for_its_delay_is_not_read_ahead(fast: ServiceContext, tmp_path: Path) -> None:
    a1, a2 = _queued(fast, tmp_path, 2)
    a1_task = fast.queue.dequeue()  # a1 first; a2's message is then re-sent with a delay
    assert fast.queue.dequeue().args == (a2,)
    from lungcad.service.jobs.queue import send_analysis

    send_analysis(fast.queue, a2, 30.0)
    fast.queue.execute(a1_task)
    _ra(fast).wait(60)
    assert _ra(fast).counts["read"] == 0 and _staging(fast) == []


# -- the setting -------------------------------------------------------------------------------------------
def test_the_setting_off_disables_the_read_ahead(tmp_path: Path) -> None:
    assert (
        load_settings(tmp_path / "d", environ={"LUNGCAD_WORKER_READ_AHEAD": "false"}).worker_read_ahead
        is False
    )
    assert load_settings(tmp_path / "d", environ={}).worker_read_ahead is True
    with _ctx(tmp_path, job_timeout_s=0.001, worker_read_ahead=False) as ctx:
        assert jobs_of(ctx.queue).readahead is None
        a1, a2 = _queued(ctx, tmp_path, 2)
        with capture_logs() as logs:
            _deliver(ctx, a1)
            assert _staging(ctx) == []  # nothing read ahead
            _deliver(ctx, a2)
        assert not [e for e in logs if str(e["event"]).startswith("job_read_ahead")]
        assert all("timed out" in (row(ctx, a).error or "") for a in (a1, a2))  # type: ignore[union-attr]
    with _ctx(tmp_path / "imm", queue_immediate=True) as ictx:  # jobs run at enqueue: nothing comes next
        assert jobs_of(ictx.queue).readahead is None
