"""Training jobs: what the API does with them (create, list, pause / resume / stop, logs, events).

A job is a row of ``training_jobs`` plus its run folder ``D/runs/<id>`` (``lungcad train``'s own layout,
and ``train.log``, ``job.yaml``, ``events.jsonl``).  The processes are spawned and watched by the session
manager (``lungcad.service.training_manager``, a thread of every ``lungcad worker``); the API only writes
rows, commands and events.  States::

    queued -> starting -> running -> finished | failed | paused | stopped
    paused | stopped | failed --resume--> queued          queued --stop--> stopped

Every state change is one conditional UPDATE (its WHERE clause names the states it may leave) whose event
is appended to ``events.jsonl`` before the transaction commits, so two writers (the API and a manager, or
two managers) never both make the same change, and no change goes without its event.

Pause and stop go through ``lungcad.train.control``: the command is stored on the row and written to the
run's ``control.json``; the trainer ends after its current step with a consistent ``last.ckpt`` and
``status.json`` says ``paused`` / ``stopped``, which the manager then records.  Resume spawns ``lungcad
train --resume`` (a new process; ``attempts`` + 1), which continues from ``last.ckpt``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from sqlalchemy import func, select, update

from lungcad.errors import ConfigError
from lungcad.service.cohorts import cohort_folders
from lungcad.service.db.models import ModelFile, TrainingJob, TrainingJobState
from lungcad.service.db.session import transaction, utcnow
from lungcad.service.errors import ApiError, conflict, not_found
from lungcad.service.training_events import append_event

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from lungcad.config import LungcadConfig
    from lungcad.service.context import ServiceContext
    from lungcad.service.settings import ServiceSettings

S = TrainingJobState
RUNS_FOLDER = "runs"
LOG_FILE = "train.log"
JOB_CONFIG = "job.yaml"  # the job's validated configuration, passed to `lungcad --config`
TERMINAL = frozenset({S.FINISHED, S.FAILED, S.STOPPED})  # an event stream ends in these
RESUMABLE = frozenset({S.PAUSED, S.STOPPED, S.FAILED})
MAX_LOG_LINES = 10_000


def runs_root(settings: ServiceSettings) -> Path:
    return Path(settings.data_dir) / RUNS_FOLDER


def run_folder(settings: ServiceSettings, job: TrainingJob) -> Path:
    return runs_root(settings) / job.run_dir


def parse_config(config: str | dict[str, Any] | None) -> LungcadConfig:
    """The job's configuration: ``config`` (YAML text or a JSON object) merged over the defaults, validated.

    Raises:
        ConfigError: (422) not a mapping, or an unknown key / bad value (the message names it).
    """
    from lungcad.config import load_config

    doc: Any = config
    if isinstance(config, str):
        try:
            doc = yaml.safe_load(config) if config.strip() else {}
        except yaml.YAMLError as exc:
            raise ConfigError(
                f"config: not valid YAML ({exc})", fix="send YAML text or a JSON object"
            ) from exc
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(
            "config: must be a mapping of sections (train, model, ...)", fix="e.g. {train: {epochs: 2}}"
        )
    # environ={}: the job's configuration is what the caller sent, not the server's LUNGCAD_* variables
    return load_config(overrides=doc, environ={})


def create_job(
    ctx: ServiceContext,
    *,
    created_by: str,
    config: str | dict[str, Any] | None,
    data: list[str],
    init_from: str | None = None,
    max_steps: int | None = None,
) -> TrainingJob:
    """Validate a training request and queue it (a session manager picks it up).

    Raises:
        ConfigError / ApiError: (422) a bad configuration, unknown cohort or model.
    """
    from lungcad.service.models_registry import record_config

    cfg = parse_config(config)
    with ctx.sessions() as s:
        cohort_folders(s, data)  # 422 for unknown or vanished cohorts, before anything is stored
        if init_from is not None and s.get(ModelFile, init_from) is None:
            raise ApiError(
                422,
                "invalid_request",
                f"init_from: no model with sha256 {init_from!r}",
                fix="pass a sha256 from GET /api/v1/models",
            )
    digest = record_config(ctx, cfg)
    now = utcnow()
    ident = uuid.uuid4().hex
    row = TrainingJob(
        id=ident,
        created_at=now,
        updated_at=now,
        created_by=created_by,
        config=cfg.model_dump(mode="json"),
        config_hash=digest,
        data=list(data),
        init_from=init_from,
        max_steps=max_steps,
        run_dir=ident,
        state=S.QUEUED,
        command="run",
        attempts=0,
    )
    run = runs_root(ctx.settings) / ident
    run.mkdir(parents=True)
    (run / JOB_CONFIG).write_text(yaml.safe_dump(row.config, sort_keys=True))
    with transaction(ctx.sessions) as s:
        s.add(row)
        append_event(run, "state", {"state": S.QUEUED.value, "message": None, "attempts": 0, "step": 0})
    return row


def transition(
    ctx: ServiceContext,
    job_id: str,
    leaving: Iterable[TrainingJobState],
    to: TrainingJobState,
    *,
    where: Any = None,
    **values: Any,
) -> bool:
    """Move the job from one of ``leaving`` to ``to`` (and set ``values``); False when it was not in one.

    The ``state`` event is appended inside the transaction, so a change never goes without its event.
    """
    rule = [TrainingJob.id == job_id, TrainingJob.state.in_(list(leaving))]
    if where is not None:
        rule.append(where)
    stmt = update(TrainingJob).where(*rule).values(state=to, updated_at=utcnow(), **values)
    with transaction(ctx.sessions) as s:
        if not s.execute(stmt.execution_options(synchronize_session=False)).rowcount:
            return False
        job = s.get(TrainingJob, job_id)
        assert job is not None
        step = int((job.snapshot or {}).get("step", 0))
        data = {"state": to.value, "message": job.message, "attempts": job.attempts, "step": step}
        append_event(run_folder(ctx.settings, job), "state", data)
    return True


def list_jobs(
    s: Session, *, state: TrainingJobState | None = None, limit: int, offset: int
) -> tuple[list[TrainingJob], int]:
    query = select(TrainingJob)
    if state is not None:
        query = query.where(TrainingJob.state == state)
    total = int(s.scalar(select(func.count()).select_from(query.subquery())) or 0)
    rows = s.scalars(query.order_by(TrainingJob.created_at.desc()).limit(limit).offset(offset)).all()
    return list(rows), total


def get_job(s: Session, job_id: str) -> TrainingJob:
    job = s.get(TrainingJob, job_id)
    if job is None:
        raise not_found("training-job", job_id)
    return job


def _load(ctx: ServiceContext, job_id: str) -> TrainingJob:
    with ctx.sessions() as s:
        return get_job(s, job_id)


def request_command(ctx: ServiceContext, job_id: str, command: str) -> TrainingJob:
    """``pause`` or ``stop`` a job: stored on the row and written to its ``control.json``.

    A queued job is stopped at once (it has no process); a starting or running one ends after its current
    step.  The session manager writes the command again once the trainer started (a trainer consumes a
    pending command when it starts, so a command sent before that would otherwise be lost).

    Raises:
        ApiError: 409 when the job is in a state without a process to pause or stop.
    """
    from lungcad.train.control import write_command

    job = _load(ctx, job_id)
    if command == "stop" and transition(
        ctx, job_id, [S.QUEUED], S.STOPPED, command="run", message="stopped before it started"
    ):
        return _load(ctx, job_id)
    if job.state not in (S.STARTING, S.RUNNING):
        raise conflict(
            f"the job is {job.state.value}: only a starting or running job can be {command}d"
            + (" (a queued one can be stopped)" if job.state is S.QUEUED else ""),
            fix="resume a paused or stopped job with POST .../resume",
        )
    with transaction(ctx.sessions) as s:
        matched = s.execute(
            update(TrainingJob)
            .where(TrainingJob.id == job_id, TrainingJob.state.in_([S.STARTING, S.RUNNING]))
            .values(command=command, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount
    if not matched:
        raise conflict("the job ended meanwhile", fix="GET the job for its state")
    run = run_folder(ctx.settings, job)
    if run.is_dir():
        write_command(run, command, f"{command} requested through the API")
    return _load(ctx, job_id)


def resume_job(ctx: ServiceContext, job_id: str) -> TrainingJob:
    """Queue a paused, stopped or failed job again; the manager spawns ``lungcad train --resume``.

    Raises:
        ApiError: 409 when the job is queued, starting, running or finished.
    """
    if not transition(ctx, job_id, RESUMABLE, S.QUEUED, command="run", message=None, exit_code=None):
        job = _load(ctx, job_id)
        raise conflict(
            f"the job is {job.state.value}: only a paused, stopped or failed job can be resumed",
            fix="pause it first" if job.state.live else None,
        )
    return _load(ctx, job_id)


def log_tail(ctx: ServiceContext, job_id: str, lines: int) -> str:
    """The last ``lines`` lines of the job's ``train.log`` (empty before its process started)."""
    job = _load(ctx, job_id)
    path = run_folder(ctx.settings, job) / LOG_FILE
    if not path.exists():
        return ""
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        block, data = 1 << 16, b""
        while size > 0 and data.count(b"\n") <= lines:
            start = max(0, size - block)
            fh.seek(start)
            data = fh.read(size - start) + data
            size = start
    text = data.decode("utf-8", errors="replace")
    out = text.splitlines()[-lines:]
    return "\n".join(out) + ("\n" if out else "")
