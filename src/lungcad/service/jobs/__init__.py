"""Background analyses: a Huey queue carries "run analysis X", the ``analyses`` row is the job's state.

* :mod:`~lungcad.service.jobs.queue`: ``make_queue(ctx)`` (SQLite or Redis Huey, the task registered on
  it) and ``enqueue_analysis(ctx, analysis_id)``.
* :mod:`~lungcad.service.jobs.state`: the conditional UPDATEs that claim a row, report progress, beat the
  heartbeat and finish it -- each only for the attempt holding the claim token.
* :mod:`~lungcad.service.jobs.runner`: ``run_analysis``: one attempt of one analysis, from claim to
  published result folder; failure kinds (permanent, transient, timeout, cancelled).
* :mod:`~lungcad.service.jobs.cache`: ``find_cached`` (same series, model, configuration and report flag
  done before) and the worklist fields of a ``ScanResult``.
* :mod:`~lungcad.service.jobs.detectors`: ``DetectorPool``: a worker loads a model once, warms it, keeps 2.
* :mod:`~lungcad.service.jobs.reaper`: ``reap(ctx)``: re-runs the jobs of dead workers and lost messages.
* :mod:`~lungcad.service.jobs.worker`: ``run_worker(settings)`` (``lungcad worker``).

Nothing here runs at import time; the modules import each other lazily where the API process (which only
enqueues) would otherwise load the detector's dependencies.
"""
