"""Two workers on one real Redis queue process a batch: every analysis done exactly once.

The database is the data folder's SQLite (shared by the two processes on this machine); the queue is a
Redis server started for the session (``redis_url``, skipped with the reason when it cannot start).  Four
copies of the slab with their own UIDs, so that the cache cannot finish one from another.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from lungcad.service.context import open_context
from lungcad.service.db.models import AnalysisStatus
from lungcad.service.jobs.queue import enqueue_analysis
from lungcad.service.settings import load_settings
from tests.service.conftest import SLAB
from tests.service.helpers_store import add_analysis, renamed_copy, row, store_series
from tests.service.helpers_worker import wait_for, workers

N_JOBS = 4
START_S = 240  # two cold workers import torch and warm the model at once on a 2-core machine


@pytest.mark.slow
def test_two_workers_on_redis_do_each_job_exactly_once(tmp_path: Path, redis_url: str) -> None:
    data = tmp_path / "data"
    env = {
        "LUNGCAD_QUEUE_URL": redis_url,
        "LUNGCAD_QUEUE_NAME": f"test-{uuid.uuid4().hex[:8]}",  # one queue per test on the shared server
        "LUNGCAD_LEASE_S": "30",
        "LUNGCAD_HEARTBEAT_S": "1",
    }
    ctx = open_context(load_settings(data, environ=env))
    try:
        assert ctx.queue.__class__.__name__ == "RedisHuey"
        series = [store_series(ctx, renamed_copy(SLAB, tmp_path / f"copy{i}", i)) for i in range(N_JOBS)]
        with workers(data, env, tmp_path, n=2) as procs:
            # both consume before the batch is sent, so the jobs are shared out between them
            wait_for(
                "both workers to start",
                lambda: all(w.events("worker_started") for w in procs),
                START_S,
                procs,
            )
            ids = [add_analysis(ctx, study_id, uid) for study_id, uid in series]
            for aid in ids:
                enqueue_analysis(ctx, aid)
            enqueue_analysis(ctx, ids[0])  # a duplicate message: harmless
            wait_for(
                "every job to finish",
                lambda: all(row(ctx, a).status.finished for a in ids),  # type: ignore[union-attr]
                START_S,
                procs,
            )
            assert [w.stop() for w in procs] == [0, 0]
            done_events = [e["job"] for w in procs for e in w.events("job_done")]
        rows = [row(ctx, a) for a in ids]
        assert [(r.status, r.attempts, r.cached) for r in rows] == [(AnalysisStatus.DONE, 1, False)] * N_JOBS  # type: ignore[union-attr]
        assert sorted(done_events) == sorted(ids)  # each done once, by one worker
        assert sorted(p.name for p in ctx.storage.results.iterdir()) == sorted(ids)
        assert sorted(r.result_dir for r in rows) == sorted(ids)  # type: ignore[union-attr, type-var]
        assert len({r.worker.rsplit(":", 1)[0] for r in rows}) == 2  # type: ignore[union-attr]  # both worked
        assert ctx.queue.pending_count() == 0
    finally:
        ctx.close()
