"""The job system in one process: claim, run, cache, cancel, timeout, failure kinds, retries, reaper.

Real pieces throughout: the bundled slab stored as blobs + rows, the shipped model, SQLite, Huey (immediate
mode or a real SQLite queue file).  Detector runs are few (each costs seconds on CPU): the tests that need
none stop before the network (a series with two slices, a missing blob, a time limit of 1 ms).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, update

from lungcad.service.context import ServiceContext, open_context
from lungcad.service.db.models import Analysis, AnalysisStatus, Instance
from lungcad.service.db.session import transaction, utcnow
from lungcad.service.jobs import state
from lungcad.service.jobs.cache import find_cached
from lungcad.service.jobs.detectors import DetectorPool
from lungcad.service.jobs.queue import enqueue_analysis, jobs_of, make_queue
from lungcad.service.jobs.reaper import reap
from lungcad.service.jobs.runner import run_analysis
from lungcad.service.settings import load_settings
from tests.service.conftest import SLAB
from tests.service.helpers_store import add_analysis, renamed_copy, row, store_series

LUNG_RADS_ORDER = ["1", "2", "3", "4A", "4B", "4X"]


@contextmanager
def _ctx(tmp_path: Path, **overrides: object) -> Iterator[ServiceContext]:
    settings = load_settings(tmp_path / "data", environ={}, **overrides)
    ctx = open_context(settings)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def ictx(tmp_path: Path) -> Iterator[ServiceContext]:
    """Immediate mode (jobs run in the caller), retries without delay."""
    with _ctx(tmp_path, queue_immediate=True, job_retry_delay_s=0) as ctx:
        yield ctx


@pytest.fixture
def qctx(tmp_path: Path) -> Iterator[ServiceContext]:
    """A real SQLite Huey queue file that nothing consumes (the test delivers messages itself)."""
    with _ctx(tmp_path, job_retry_delay_s=30) as ctx:
        yield ctx


def _staging(ctx: ServiceContext) -> list[Path]:
    return sorted(ctx.storage.tmp.glob("job-*"))


def _results(ctx: ServiceContext) -> list[str]:
    return sorted(p.name for p in ctx.storage.results.iterdir())


# -- immediate mode, worklist fields, cache -----------------------------------------------------------------
@pytest.mark.slow
def test_immediate_run_is_done_with_result_and_worklist_fields(ictx: ServiceContext) -> None:
    study_id, series_uid = store_series(ictx, SLAB)
    aid = add_analysis(ictx, study_id, series_uid)
    enqueue_analysis(ictx, aid)  # immediate mode: runs here
    r = row(ictx, aid)
    assert r is not None
    assert (r.status, r.attempts, r.result_dir, r.cached, r.error) == (
        AnalysisStatus.DONE,
        1,
        aid,
        False,
        None,
    )
    assert r.progress == 1.0 and r.stage == "done" and r.finished_at is not None
    doc = json.loads((ictx.storage.result_dir(aid) / "result.json").read_text())
    assert doc["series_uid"] == series_uid
    threshold = ictx.config.infer.report_threshold
    shown = [f for f in doc["findings"] if f["probability"] >= threshold]
    assert r.scan_status == doc["status"]
    assert r.lung_rads == doc["priority"]
    assert r.priority_rank == LUNG_RADS_ORDER.index(doc["priority"])
    assert r.n_findings == len(shown) and r.n_findings < len(doc["findings"])  # candidates are not shown
    assert r.triage_probability == pytest.approx(max(f["triage_probability"] for f in shown))
    assert _staging(ictx) == [] and _results(ictx) == [aid]

    # the same key again: finished from the first one's folder, no second detector load
    with ictx.sessions() as s:
        hit = find_cached(s, series_uid, r.model_sha256, r.config_hash, False, storage=ictx.storage)
        miss = find_cached(s, series_uid, r.model_sha256, r.config_hash, True, storage=ictx.storage)
    assert hit is not None and hit.id == aid and miss is None
    again = add_analysis(ictx, study_id, series_uid)
    enqueue_analysis(ictx, again)
    r2 = row(ictx, again)
    assert r2 is not None
    assert (r2.status, r2.cached, r2.result_dir, r2.attempts) == (AnalysisStatus.DONE, True, aid, 1)
    assert (r2.lung_rads, r2.n_findings, r2.triage_probability) == (
        r.lung_rads,
        r.n_findings,
        r.triage_probability,
    )
    assert jobs_of(ictx.queue).detectors.loads == 1
    assert _results(ictx) == [aid]

    # a folder removed by hand is no cache
    ictx.storage.delete_result(aid)
    with ictx.sessions() as s:
        assert find_cached(s, series_uid, r.model_sha256, r.config_hash, False, storage=ictx.storage) is None


# -- claim -------------------------------------------------------------------------------------------------
def test_claim_is_atomic_and_a_second_claim_is_a_noop(qctx: ServiceContext) -> None:
    study_id, series_uid = store_series(qctx, SLAB)
    aid = add_analysis(qctx, study_id, series_uid)
    token = state.claim(qctx, aid, "w1")
    assert token is not None
    assert state.claim(qctx, aid, "w2") is None  # running with a fresh heartbeat
    r = row(qctx, aid)
    assert r is not None and (r.status, r.attempts, r.worker, r.claim) == (
        AnalysisStatus.RUNNING,
        1,
        "w1",
        token,
    )
    # a duplicate message does nothing (no detector is touched: the pool stays empty)
    pool = DetectorPool(qctx)
    assert run_analysis(qctx, aid, pool).status == "skipped" and pool.loads == 0
    assert row(qctx, aid).attempts == 1  # type: ignore[union-attr]

    # the heartbeat lapses: another worker takes over, the first attempt's writes match nothing
    with transaction(qctx.sessions) as s:
        s.execute(
            update(Analysis).where(Analysis.id == aid).values(heartbeat_at=utcnow() - timedelta(hours=1))
        )
    token2 = state.claim(qctx, aid, "w2")
    assert token2 is not None and token2 != token
    assert not state.set_progress(qctx, aid, token, "load", 0.1)
    assert not state.heartbeat(qctx, aid, token)
    assert isinstance(state.why_lost(qctx, aid), state.JobGone)
    assert state.set_progress(qctx, aid, token2, "load", 0.1)
    assert row(qctx, aid).attempts == 2  # type: ignore[union-attr]

    for status in (AnalysisStatus.DONE, AnalysisStatus.CANCELLED, AnalysisStatus.FAILED):
        with transaction(qctx.sessions) as s:
            s.execute(update(Analysis).where(Analysis.id == aid).values(status=status))
        assert state.claim(qctx, aid, "w3") is None
    assert state.claim(qctx, "no-such-analysis", "w3") is None


# -- stopping a running job ------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("how", ["cancel", "delete"])
def test_cancel_or_delete_mid_run_stops_without_a_result(qctx: ServiceContext, how: str) -> None:
    study_id, series_uid = store_series(qctx, SLAB)
    aid = add_analysis(qctx, study_id, series_uid)
    outcome: list[str] = []
    worker = threading.Thread(
        target=lambda: outcome.append(run_analysis(qctx, aid, DetectorPool(qctx)).status)
    )
    worker.start()
    deadline = time.monotonic() + 60
    while (r := row(qctx, aid)) is not None and r.status is AnalysisStatus.QUEUED:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with transaction(qctx.sessions) as s:
        if how == "cancel":
            s.execute(update(Analysis).where(Analysis.id == aid).values(status=AnalysisStatus.CANCELLED))
        else:
            s.execute(delete(Analysis).where(Analysis.id == aid))
    worker.join(60)
    assert outcome == ["cancelled" if how == "cancel" else "gone"]
    r = row(qctx, aid)
    if how == "cancel":
        assert r is not None and r.status is AnalysisStatus.CANCELLED and r.result_dir is None
        assert r.stage != "done"  # stopped at a stage boundary before the end
    else:
        assert r is None
    assert _results(qctx) == [] and _staging(qctx) == []


def test_timeout_fails_the_job(tmp_path: Path) -> None:
    with _ctx(tmp_path, queue_immediate=True, job_timeout_s=0.001) as ctx:
        study_id, series_uid = store_series(ctx, SLAB)
        aid = add_analysis(ctx, study_id, series_uid)
        enqueue_analysis(ctx, aid)
        r = row(ctx, aid)
        assert r is not None
        assert (r.status, r.error, r.attempts) == (AnalysisStatus.FAILED, "timed out after 0.001 s", 1)
        assert _results(ctx) == [] and _staging(ctx) == []


# -- failure kinds -----------------------------------------------------------------------------------------
def test_bad_input_fails_at_once_without_retry(ictx: ServiceContext, tmp_path: Path) -> None:
    study_id, series_uid = store_series(ictx, renamed_copy(SLAB, tmp_path / "short", 1, limit=2))
    aid = add_analysis(ictx, study_id, series_uid)
    enqueue_analysis(ictx, aid)
    r = row(ictx, aid)
    assert r is not None and r.status is AnalysisStatus.FAILED and r.attempts == 1
    assert ictx.settings.job_retries >= 1  # it could have been retried, and was not
    error = r.error or ""
    assert "too small to analyse" in error and "Fix: send the whole chest series" in error
    assert "[the stored series]" in error and "/tmp/" not in error  # no staging path shown to users
    assert _results(ictx) == [] and _staging(ictx) == []


def _hide_blob(ctx: ServiceContext, series_uid: str, tmp_path: Path) -> tuple[Path, Path]:
    with ctx.sessions() as s:
        digest = s.query(Instance.blob).filter(Instance.sop_uid.is_not(None)).first()[0]
    blob = ctx.storage.blob_path(digest)
    hidden = tmp_path / "hidden-blob"
    blob.rename(hidden)
    return blob, hidden


def test_transient_errors_are_retried_then_fail(ictx: ServiceContext, tmp_path: Path) -> None:
    study_id, series_uid = store_series(ictx, SLAB)
    _hide_blob(ictx, series_uid, tmp_path)  # the storage lost a file: OSError on every attempt
    aid = add_analysis(ictx, study_id, series_uid)
    enqueue_analysis(ictx, aid)
    r = row(ictx, aid)
    assert r is not None and r.status is AnalysisStatus.FAILED
    assert r.attempts == ictx.settings.job_retries + 1 == 3
    assert (r.error or "").startswith("failed after 3 attempts: FileNotFoundError")
    assert "<data>/blobs/" in (r.error or "") and str(ictx.storage.root) not in (r.error or "")
    assert _staging(ictx) == []


@pytest.mark.slow
def test_transient_error_requeues_with_delay_and_the_retry_succeeds(
    qctx: ServiceContext, tmp_path: Path
) -> None:
    study_id, series_uid = store_series(qctx, SLAB)
    blob, hidden = _hide_blob(qctx, series_uid, tmp_path)
    aid = add_analysis(qctx, study_id, series_uid)
    task = jobs_of(qctx.queue).analyse
    task.call_local(aid)  # the message delivered to this process
    r = row(qctx, aid)
    assert r is not None and (r.status, r.attempts, r.claim) == (AnalysisStatus.QUEUED, 1, None)
    assert "FileNotFoundError" in (r.error or "") and "retrying" in (r.error or "")
    (retry,) = qctx.queue.pending()  # a message with an ETA job_retry_delay_s ahead (the consumer holds it)
    assert retry.args == (aid,) and retry.eta > utcnow().replace(tzinfo=None) + timedelta(seconds=20)
    hidden.rename(blob)  # the file system is back
    task.call_local(aid)  # the retry's message
    r = row(qctx, aid)
    assert r is not None and (r.status, r.attempts, r.error) == (AnalysisStatus.DONE, 2, None)
    assert _results(qctx) == [aid] and _staging(qctx) == []


# -- reaper ------------------------------------------------------------------------------------------------
def test_reaper_requeues_dead_workers_jobs_and_resends_lost_messages(qctx: ServiceContext) -> None:
    study_id, series_uid = store_series(qctx, SLAB)
    old = utcnow() - timedelta(seconds=qctx.settings.lease_s * 3)
    ids = {k: add_analysis(qctx, study_id, series_uid) for k in ("dead", "dead_often", "alive", "lost")}
    values = {
        "dead": {"status": AnalysisStatus.RUNNING, "attempts": 1, "claim": "t1", "heartbeat_at": old},
        "dead_often": {"status": AnalysisStatus.RUNNING, "attempts": 3, "claim": "t2", "heartbeat_at": old},
        "alive": {"status": AnalysisStatus.RUNNING, "attempts": 1, "claim": "t3", "heartbeat_at": utcnow()},
        "lost": {"created_at": old},
    }
    with transaction(qctx.sessions) as s:
        for key, vals in values.items():
            s.execute(update(Analysis).where(Analysis.id == ids[key]).values(**vals))
    huey = qctx.queue
    assert reap(qctx) == 3  # dead: re-queued and re-sent; dead_often: failed; lost: re-sent
    assert huey.pending_count() == 2
    dead, often, alive = (row(qctx, ids[k]) for k in ("dead", "dead_often", "alive"))
    assert dead.status is AnalysisStatus.QUEUED and dead.claim is None and "died" in dead.error  # type: ignore[union-attr]
    assert often.status is AnalysisStatus.FAILED and often.error.startswith("worker died 3 times")  # type: ignore[union-attr]
    assert alive.status is AnalysisStatus.RUNNING and alive.claim == "t3"  # type: ignore[union-attr]
    huey.flush()  # the queue loses its messages (a crash): both queued rows need one
    with transaction(qctx.sessions) as s:
        s.execute(update(Analysis).where(Analysis.id == ids["dead"]).values(heartbeat_at=old))
    assert reap(qctx) == 2 and huey.pending_count() == 2
    assert reap(qctx) == 0  # messages pending: nothing to repair


# -- queue and detectors -------------------------------------------------------------------------------------
def test_make_queue_kinds_and_no_instance_at_import(tmp_path: Path) -> None:
    import huey

    import lungcad.service.jobs.queue as queue_module

    assert not [v for v in vars(queue_module).values() if isinstance(v, huey.Huey)]
    with _ctx(tmp_path / "a") as ctx:
        q = make_queue(ctx)
        assert isinstance(q, huey.SqliteHuey) and not q.immediate
        assert Path(q.storage.filename) == ctx.settings.queue_file
        assert make_queue(ctx) is not q  # a fresh instance each call
    with _ctx(tmp_path / "b", queue_url="redis://127.0.0.1:1/0") as ctx:
        assert isinstance(make_queue(ctx), huey.RedisHuey)  # connects on first use, not here
    from lungcad.errors import ConfigError

    with _ctx(tmp_path / "c", queue_url="amqp://x") as ctx:
        with pytest.raises(ConfigError, match="Redis URL"):
            make_queue(ctx)


def test_detector_pool_keeps_the_two_used_last(qctx: ServiceContext) -> None:
    from lungcad.service.models_registry import active_model, effective_config, record_config

    with qctx.sessions() as s:
        model = active_model(s)
    assert model is not None
    base = effective_config(qctx, model)
    hashes = [
        record_config(qctx, base.model_copy(update={"infer": base.infer.model_copy(update={"overlap": o})}))
        for o in (0.25, 0.3, 0.4)
    ]
    pool = DetectorPool(qctx)
    first = pool.get(model.sha256, hashes[0])
    assert pool.get(model.sha256, hashes[0]) is first and pool.loads == 1
    assert first.cfg.infer.overlap == 0.25
    pool.get(model.sha256, hashes[1])
    pool.get(model.sha256, hashes[0])  # used again: now the newest
    third = pool.get(model.sha256, hashes[2])
    assert third.cfg.infer.overlap == 0.4
    assert pool.keys() == [(model.sha256, hashes[0]), (model.sha256, hashes[2])] and pool.loads == 3
    from lungcad.errors import InputError

    with pytest.raises(InputError, match="not registered"):
        pool.get("0" * 64, hashes[0])


def test_run_worker_in_a_thread_consumes_the_sqlite_queue_and_stops(tmp_path: Path) -> None:
    from lungcad.service.jobs.worker import run_worker

    with _ctx(tmp_path, lease_s=4, heartbeat_s=1) as ctx:
        study_id, series_uid = store_series(ctx, renamed_copy(SLAB, tmp_path / "short", 2, limit=2))
        aid = add_analysis(ctx, study_id, series_uid)  # fails at the load stage: no network run
        enqueue_analysis(ctx, aid)
        stop = threading.Event()
        errors: list[BaseException] = []

        def target() -> None:
            try:
                run_worker(ctx.settings, threads=2, stop_event=stop)
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)

        thread = threading.Thread(target=target)
        thread.start()
        deadline = time.monotonic() + 120
        while row(ctx, aid).status is AnalysisStatus.QUEUED and not errors:  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        while row(ctx, aid).status is AnalysisStatus.RUNNING:  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        stop.set()
        thread.join(60)
        assert not thread.is_alive() and errors == []
        r = row(ctx, aid)
        assert r is not None and r.status is AnalysisStatus.FAILED and r.attempts == 1
        assert ctx.queue.pending_count() == 0


def test_a_worker_refuses_an_immediate_queue(ictx: ServiceContext) -> None:
    from lungcad.errors import ConfigError
    from lungcad.service.jobs.worker import run_worker

    with pytest.raises(ConfigError, match="immediate"):
        run_worker(ictx.settings)
