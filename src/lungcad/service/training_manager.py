"""The session manager: spawns and watches the training processes of ``training_jobs`` (a thread of every
``lungcad worker``, started by ``lungcad.service.jobs.training``).

* **Claim.** A queued job is taken with one conditional UPDATE (``queued -> starting``, a fresh claim token,
  this host), so of two managers exactly one spawns it; at most ``slots`` processes per manager
  (``settings.training_slots``; 0: one per GPU, each process seeing only its own GPU, else 1 on CPU).
* **Spawn.** ``python -m``-style ``lungcad --config D/runs/<id>/job.yaml train --run-dir D/runs/<id> --json
  --tracking-uri <MLflow> [--data C ...] [--max-steps N] [--init-from M] [--resume]`` in a session of its own
  (``start_new_session``: a signal to the worker's process group does not reach it), stdout and stderr
  appended to ``train.log``; the row records pid and the process's start time (psutil ``create_time``).
* **Watch.** Every ``poll_s`` the manager reads ``status.json`` (``TrainingState``) into the row's snapshot
  and appends a ``step`` event when it changed; when the process has exited, the final ``status.json``
  decides the state (finished / paused / stopped / failed with the trainer's message), or, without a final
  status, "training process died (exit code N; last step S)".
* **Restarts.** On start the manager re-discovers this host's starting / running jobs: a process with the
  recorded pid *and* start time is alive -> watched again (re-attached; a reused pid has another start
  time); otherwise it is judged from ``status.json`` as above (exit code unknown).  A per-job ``flock`` on
  ``D/runs/<id>/manager.lock`` (held while watching, released by the kernel when the manager dies) keeps
  two managers of one host from watching one job.  A job is never spawned twice: only a claim spawns, and
  only a manager holding the job's lock judges it.
"""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import psutil
from sqlalchemy import select, update

from lungcad.log import get_logger
from lungcad.service import webhooks
from lungcad.service.db.models import TrainingJob, TrainingJobState
from lungcad.service.db.session import transaction, utcnow
from lungcad.service.training import JOB_CONFIG, LOG_FILE, run_folder, runs_root, transition
from lungcad.service.training_events import append_event

if TYPE_CHECKING:
    from lungcad.service.context import ServiceContext
    from lungcad.service.settings import ServiceSettings

S = TrainingJobState
LOCK_FILE = "manager.lock"
CLI_ENTRY = "import sys; from lungcad.cli import main; sys.exit(main(sys.argv[1:]))"
# status.json's final status -> the job's state (anything else at exit: the process died)
FINAL = {"finished": S.FINISHED, "paused": S.PAUSED, "interrupted": S.PAUSED, "stopped": S.STOPPED}
RECOVER_EVERY = 30  # rounds between re-discoveries after the start-up one
SNAPSHOT_KEYS = ("status", "epoch", "step", "best_cpm", "last_cpm")
log = get_logger("lungcad.service.training")


def default_slots(settings: ServiceSettings) -> tuple[int, list[int]]:
    """(slots, GPU indices): ``training_slots`` or one per GPU, or 1 on CPU."""
    try:
        import torch

        gpus = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    except ImportError:  # pragma: no cover - torch is a dependency
        gpus = []
    return settings.training_slots or max(1, len(gpus)), gpus


@dataclass
class Watched:
    """A job whose process this manager watches."""

    job_id: str
    run: Path
    pid: int
    created: float
    lock: IO[bytes]
    popen: subprocess.Popen[bytes] | None = None  # None: re-attached (not our child)
    gpu: int | None = None
    last: dict[str, Any] = field(default_factory=dict)
    mtime: float = -1.0


def _lock(run: Path) -> IO[bytes] | None:
    """The job's manager lock, or None when another live manager holds it."""
    run.mkdir(parents=True, exist_ok=True)
    fh = open(run / LOCK_FILE, "ab")  # noqa: SIM115 - held open while watching; not inherited by children
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        return None
    return fh


def same_process(pid: int | None, created: float | None) -> bool:
    """The process ``pid`` is alive (not a zombie) and started at ``created`` (not a reused pid)."""
    if not pid or created is None:
        return False
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and abs(proc.create_time() - created) < 0.01
    except psutil.Error:
        return False


def _read_state(run: Path) -> dict[str, Any] | None:
    from dataclasses import asdict

    from lungcad.train.state import STATUS_FILE, TrainingState

    if not (run / STATUS_FILE).exists():
        return None
    try:
        return asdict(TrainingState.read(run))
    except (OSError, ValueError, TypeError):  # pragma: no cover - status.json is written atomically
        return None


def _last_log_line(run: Path) -> str:
    try:
        with open(run / LOG_FILE, "rb") as fh:
            fh.seek(max(0, fh.seek(0, 2) - 4096))
            lines = [ln.strip() for ln in fh.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


class TrainingManager:
    """Spawns, watches and judges training processes; ``run(stop)`` until ``stop`` is set."""

    def __init__(self, ctx: ServiceContext, *, slots: int | None = None, poll_s: float = 1.0) -> None:
        self.ctx = ctx
        self.poll_s = poll_s
        self.host = socket.gethostname()
        n, self.gpus = default_slots(ctx.settings)
        self.slots = slots or n
        self.watched: dict[str, Watched] = {}

    # -- start-up -------------------------------------------------------------------------------------
    def recover(self) -> int:
        """Re-attach or judge this host's starting / running jobs; returns how many were re-attached."""
        with self.ctx.sessions() as s:
            rows = s.scalars(
                select(TrainingJob).where(
                    TrainingJob.state.in_([S.STARTING, S.RUNNING]), TrainingJob.host == self.host
                )
            ).all()
        attached = 0
        for job in rows:
            if job.id in self.watched:
                continue
            run = run_folder(self.ctx.settings, job)
            lock = _lock(run)
            if lock is None:  # another manager of this host watches it
                continue
            if same_process(job.pid, job.pid_created):
                assert job.pid is not None and job.pid_created is not None
                self.watched[job.id] = Watched(job.id, run, job.pid, job.pid_created, lock, gpu=job.gpu)
                log.info("training_reattached", job=job.id, pid=job.pid)
                attached += 1
                continue
            w = Watched(job.id, run, job.pid or 0, job.pid_created or 0.0, lock)
            if job.pid is None:
                self._end(w, None, leaving=[S.STARTING], died="the session manager stopped while starting it")
            else:
                self._end(w, None)
        return attached

    # -- one round ------------------------------------------------------------------------------------
    def run_once(self) -> None:
        for w in list(self.watched.values()):
            self._poll(w)
        self._mirror_commands()
        while len(self.watched) < self.slots and self._claim_next():
            pass

    def run(self, stop: threading.Event) -> None:
        self.recover()
        log.info("training_manager_started", slots=self.slots, gpus=len(self.gpus), watched=len(self.watched))
        rounds = 0
        while not stop.is_set():
            try:
                rounds += 1
                if rounds % RECOVER_EVERY == 0:  # jobs of another manager of this host that died since
                    self.recover()
                self.run_once()
            except Exception as exc:  # noqa: BLE001 - the database is down: try again next round
                log.warning(
                    "training_manager_round_failed", error_type=type(exc).__name__, error=str(exc)[:200]
                )
            stop.wait(self.poll_s)
        for w in self.watched.values():  # the processes keep running; the next manager re-attaches
            w.lock.close()
        log.info("training_manager_stopped", left_running=len(self.watched))

    def _claim_next(self) -> bool:
        with self.ctx.sessions() as s:
            found = s.execute(
                select(TrainingJob.id, TrainingJob.run_dir)
                .where(TrainingJob.state == S.QUEUED)
                .order_by(TrainingJob.updated_at, TrainingJob.created_at)
                .limit(1)
            ).first()
        if found is None:
            return False
        job_id, run_dir = found
        # the job's lock before the claim: from the claim on, no other manager of this host may judge the
        # job (a "starting" row without a pid would look like one whose manager died)
        lock = _lock(runs_root(self.ctx.settings) / run_dir)
        if lock is None:
            return False  # another manager of this host is claiming it right now: next round
        token = uuid.uuid4().hex
        values = {"claim": token, "host": self.host, "pid": None, "pid_created": None, "exit_code": None}
        if not transition(
            self.ctx, job_id, [S.QUEUED], S.STARTING, attempts=TrainingJob.attempts + 1, **values
        ):
            lock.close()
            return True  # another manager took it: look for the next one
        with self.ctx.sessions() as s:
            job = s.get(TrainingJob, job_id)
            assert job is not None
            s.expunge(job)
        try:
            self._spawn(job, token, lock)
        except Exception as exc:  # noqa: BLE001 - e.g. the run folder is not writable: the job fails, not us
            lock.close()
            if transition(
                self.ctx,
                job_id,
                [S.STARTING],
                S.FAILED,
                message=f"could not start: {exc}",
                finished_at=utcnow(),
            ):
                webhooks.emit_training(self.ctx, job_id, S.FAILED)
        return True

    def _argv(self, job: TrainingJob, run: Path) -> list[str]:
        from lungcad.service.cohorts import cohort_folders
        from lungcad.service.experiments import tracking_uri
        from lungcad.train.state import STATUS_FILE

        argv = [sys.executable, "-c", CLI_ENTRY, "--config", str(run / JOB_CONFIG), "train"]
        argv += ["--run-dir", str(run), "--json", "--tracking-uri", tracking_uri(self.ctx.settings)]
        argv += ["--cache-dir", str(Path(self.ctx.settings.data_dir) / "cache" / "training")]
        if (run / STATUS_FILE).exists():  # a run that started before: continue it (from last.ckpt)
            return [*argv, "--resume"]
        with self.ctx.sessions() as s:
            for folder in cohort_folders(s, job.data):
                argv += ["--data", str(folder)]
        if job.max_steps:
            argv += ["--max-steps", str(job.max_steps)]
        if job.init_from:
            from lungcad.service.models_registry import model_path

            link = run / "init_from.pt"  # the blob has no suffix; the trainer tells models from .ckpt by it
            link.unlink(missing_ok=True)
            link.symlink_to(model_path(self.ctx, job.init_from))
            argv += ["--init-from", str(link)]
        return argv

    def _spawn(self, job: TrainingJob, token: str, lock: IO[bytes]) -> None:
        run = run_folder(self.ctx.settings, job)
        gpu = next((g for g in self.gpus if g not in {w.gpu for w in self.watched.values()}), None)
        env = {k: v for k, v in os.environ.items() if not k.startswith("LUNGCAD_")}
        env["PYTHONUNBUFFERED"] = "1"
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(gpu)
        argv = self._argv(job, run)
        with open(run / LOG_FILE, "ab") as out:
            popen = subprocess.Popen(  # noqa: S603 - our own interpreter and CLI
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=run,
                start_new_session=True,
            )
        created = psutil.Process(popen.pid).create_time()
        w = Watched(job.id, run, popen.pid, created, lock, popen=popen, gpu=gpu)
        self.watched[job.id] = w
        moved = transition(
            self.ctx,
            job.id,
            [S.STARTING],
            S.RUNNING,
            where=TrainingJob.claim == token,
            pid=popen.pid,
            pid_created=created,
            gpu=gpu,
            started_at=utcnow(),
            finished_at=None,
            message=None,
        )
        log.info("training_spawned", job=job.id, pid=popen.pid, attempt=job.attempts, recorded=moved)

    # -- watching -------------------------------------------------------------------------------------
    def _poll(self, w: Watched) -> None:
        self._snapshot(w)
        if w.popen is not None:
            code = w.popen.poll()
            if code is None:
                return
            self._end(w, code)
        elif not same_process(w.pid, w.created):
            self._end(w, None)

    def _snapshot(self, w: Watched) -> dict[str, Any] | None:
        from lungcad.train.state import STATUS_FILE

        try:
            mtime = (w.run / STATUS_FILE).stat().st_mtime
        except FileNotFoundError:
            return None
        if mtime == w.mtime:
            return w.last or None
        state = _read_state(w.run)
        if state is None:
            return None
        w.mtime = mtime
        if {k: state.get(k) for k in SNAPSHOT_KEYS} != {k: w.last.get(k) for k in SNAPSHOT_KEYS}:
            with transaction(self.ctx.sessions) as s:
                s.execute(
                    update(TrainingJob)
                    .where(TrainingJob.id == w.job_id)
                    .values(snapshot=state, updated_at=utcnow())
                    .execution_options(synchronize_session=False)
                )
                append_event(w.run, "step", state)
        w.last = state
        return state

    def _mirror_commands(self) -> None:
        """Write a pending pause / stop into control.json once the trainer runs (it consumed older ones)."""
        from lungcad.train.control import ControlFile, write_command

        if not self.watched:
            return
        with self.ctx.sessions() as s:
            rows = s.execute(
                select(TrainingJob.id, TrainingJob.command).where(TrainingJob.id.in_(list(self.watched)))
            ).all()
        for job_id, command in rows:
            w = self.watched[job_id]
            if command in ("pause", "stop") and w.last.get("status") == "running":
                if ControlFile(w.run).read().value != command:
                    write_command(w.run, command, f"{command} requested through the API")

    def _end(
        self,
        w: Watched,
        exit_code: int | None,
        *,
        leaving: Sequence[TrainingJobState] = (S.STARTING, S.RUNNING),
        died: str | None = None,
    ) -> None:
        """Judge an exited process from its final ``status.json`` and record the job's state."""
        state = _read_state(w.run) or {}
        if state:
            self._snapshot(w)
        final = FINAL.get(str(state.get("status")))
        step = int(state.get("step", 0))
        code = "unknown" if exit_code is None else str(exit_code)
        if final is not None:
            message = state.get("message") or None
        elif state.get("status") == "failed":
            final, message = S.FAILED, f"training failed: {state.get('message') or 'no reason given'}"
        else:
            final = S.FAILED
            message = died or f"training process died (exit code {code}; last step {step})"
            if not state and exit_code is not None and died is None:  # e.g. the CLI refused its input
                message = f"training process exited with code {code} before training started"
            if line := _last_log_line(w.run):
                message += f": {line}"
        moved = transition(
            self.ctx,
            w.job_id,
            leaving,
            final,
            exit_code=exit_code,
            message=message,
            command="run",
            finished_at=utcnow(),
        )
        if moved:  # committed: notify the webhooks of a finished / failed job (never raises)
            webhooks.emit_training(self.ctx, w.job_id, final)
        log.info("training_ended", job=w.job_id, state=final.value, exit_code=code, step=step)
        self.watched.pop(w.job_id, None)
        w.lock.close()
