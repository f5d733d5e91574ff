"""kill -9 of a worker in the middle of a job: the next worker re-runs it, no partial result is visible.

Two real worker processes on one SQLite data folder (database + Huey queue file), with a short lease so the
second worker's reaper notices the dead one within seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lungcad.service.context import open_context
from lungcad.service.db.models import AnalysisStatus
from lungcad.service.jobs.queue import enqueue_analysis
from lungcad.service.settings import load_settings
from tests.service.conftest import SLAB
from tests.service.helpers_store import add_analysis, row, store_series
from tests.service.helpers_worker import wait_for, workers

ENV = {"LUNGCAD_LEASE_S": "3", "LUNGCAD_HEARTBEAT_S": "0.5", "LUNGCAD_JOB_RETRY_DELAY_S": "0"}
START_S = 180  # a cold worker imports torch and warms the model: tens of seconds on a busy 2-core machine


@pytest.mark.slow
def test_kill_9_mid_job_is_rerun_by_the_next_worker(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ctx = open_context(load_settings(data, environ=ENV))
    try:
        study_id, series_uid = store_series(ctx, SLAB)
        aid = add_analysis(ctx, study_id, series_uid)
        enqueue_analysis(ctx, aid)  # into D/queue.db
        results = ctx.storage.results

        def status() -> AnalysisStatus | None:
            r = row(ctx, aid)
            return r.status if r is not None else None

        with workers(data, ENV, tmp_path) as (first,):
            wait_for(
                "the first worker to claim the job",
                lambda: status() is AnalysisStatus.RUNNING,
                START_S,
                [first],
            )
            first.kill()
            assert first.events("job_done") == []  # it really died mid-job
        r = row(ctx, aid)
        assert r is not None and (r.status, r.attempts) == (AnalysisStatus.RUNNING, 1)
        assert list(results.iterdir()) == []  # nothing of the killed attempt is visible

        (tmp_path / "second").mkdir()
        with workers(data, ENV, tmp_path / "second") as (second,):
            wait_for(
                "the second worker to finish the job",
                lambda: status() is AnalysisStatus.DONE,
                START_S,
                [second],
            )
            assert second.stop() == 0  # SIGTERM: a graceful exit
            assert second.events("worker_started") and second.events("worker_stopped")
            reaped = second.events("job_reaped")
            done = second.events("job_done")
        r = row(ctx, aid)
        assert r is not None
        assert (r.status, r.attempts, r.result_dir, r.cached) == (AnalysisStatus.DONE, 2, aid, False)
        assert [p.name for p in results.iterdir()] == [aid]  # exactly one result folder
        doc = json.loads((results / aid / "result.json").read_text())
        assert doc["series_uid"] == series_uid and r.n_findings > 0
        assert [e["job"] for e in reaped] == [aid] and reaped[0]["action"] == "requeued"
        assert [e["job"] for e in done] == [aid]
        # the killed attempt's staging folder may remain under D/tmp (removed after a day), the second's not
        assert len(list(ctx.storage.tmp.glob("job-*"))) <= 1
        # no patient data in the logs (the slab's PatientID is LIDC-IDRI-0001)
        log_text = "".join(p.read_text() for p in tmp_path.rglob("worker-*.log"))
        assert "LIDC-IDRI" not in log_text and '"event": "job_stage"' in log_text
    finally:
        ctx.close()
