"""Routes: ``/training-jobs`` -- start, list, follow (state, logs, Server-Sent Events), pause, resume and
stop training jobs (``lungcad.service.training``; the processes are the session manager's)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import PlainTextResponse, StreamingResponse

from lungcad.service import training as lib
from lungcad.service.db.models import TrainingJob, TrainingJobState
from lungcad.service.deps import CtxDep, SessionDep, require
from lungcad.service.errors import ApiError
from lungcad.service.schemas import DEFAULT_LIMIT, LimitQuery, OffsetQuery, Page, errors
from lungcad.service.schemas.training import StartTraining, TrainingJobDetail, TrainingJobOut
from lungcad.service.security import Action, Principal
from lungcad.service.training_events import event_stream

router = APIRouter(prefix="/training-jobs", tags=["training"])

READ = [Depends(require(Action.TRAINING_READ))]
WRITE = [Depends(require(Action.TRAINING_WRITE))]


@router.post(
    "",
    response_model=TrainingJobDetail,
    status_code=201,
    responses=errors(422),
    summary="Start a training job (queued; a worker's session manager spawns `lungcad train`)",
)
def start_training(
    body: StartTraining, ctx: CtxDep, principal: Annotated[Principal, Depends(require(Action.TRAINING_WRITE))]
) -> TrainingJobDetail:
    row = lib.create_job(
        ctx,
        created_by=principal.prefix,
        config=body.config,
        data=body.data,
        init_from=body.init_from,
        max_steps=body.max_steps,
    )
    return TrainingJobDetail.from_row(row)


@router.get(
    "",
    response_model=Page[TrainingJobOut],
    responses=errors(422),
    dependencies=READ,
    summary="Training jobs, newest first",
)
def list_training_jobs(
    s: SessionDep,
    state: TrainingJobState | None = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    offset: OffsetQuery = 0,
) -> Page[TrainingJobOut]:
    rows, total = lib.list_jobs(s, state=state, limit=limit, offset=offset)
    items = [TrainingJobOut.from_row(r) for r in rows]
    return Page[TrainingJobOut](items=items, total=total, limit=limit, offset=offset)


@router.get(
    "/{job_id}",
    response_model=TrainingJobDetail,
    responses=errors(404),
    dependencies=READ,
    summary="One job: state, epoch, step, losses, lr, samples/s, data-wait share, ETA, best / last CPM",
)
def get_training_job(job_id: str, s: SessionDep) -> TrainingJobDetail:
    return TrainingJobDetail.from_row(lib.get_job(s, job_id))


@router.get(
    "/{job_id}/logs",
    response_class=Response,
    response_model=None,
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "the last lines of train.log",
        }
    }
    | errors(404, 422),
    dependencies=READ,
    summary="The last lines of the training process's output (train.log)",
)
def training_logs(
    job_id: str,
    ctx: CtxDep,
    tail: Annotated[int, Query(ge=1, le=lib.MAX_LOG_LINES, description="lines")] = 200,
) -> PlainTextResponse:
    return PlainTextResponse(lib.log_tail(ctx, job_id, tail))


@router.get(
    "/{job_id}/events",
    response_class=Response,
    response_model=None,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "Server-Sent Events (`state`, `step`), `id:` increasing; resumable with "
            "Last-Event-ID; the stream ends once the job is finished, failed or stopped",
        }
    }
    | errors(404, 422),
    dependencies=READ,
    summary="Follow a job: its state changes and step snapshots as Server-Sent Events",
)
def training_events(
    job_id: str,
    request: Request,
    ctx: CtxDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    with ctx.sessions() as s:
        job = lib.get_job(s, job_id)
        run = lib.run_folder(ctx.settings, job)
    try:
        after = int(last_event_id) if last_event_id else 0
    except ValueError:
        raise ApiError(
            422,
            "invalid_request",
            "Last-Event-ID must be an event id (an integer)",
            fix="send the last id: seen",
        ) from None

    async def finished() -> bool:
        with ctx.sessions() as s:
            row = s.get(TrainingJob, job_id)
            return row is None or row.state in lib.TERMINAL

    stream = event_stream(run, after, finished, request.is_disconnected)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream, media_type="text/event-stream", headers=headers)


def _control(path: str, summary: str) -> None:
    def route(job_id: str, ctx: CtxDep) -> TrainingJobDetail:
        if path == "resume":
            return TrainingJobDetail.from_row(lib.resume_job(ctx, job_id))
        return TrainingJobDetail.from_row(lib.request_command(ctx, job_id, path))

    route.__name__ = f"{path}_training_job"
    router.post(
        f"/{{job_id}}/{path}",
        response_model=TrainingJobDetail,
        responses=errors(404, 409),
        dependencies=WRITE,
        summary=summary,
    )(route)


_control("pause", "Pause after the current step (consistent last.ckpt; status paused)")
_control("resume", "Resume a paused, stopped or failed job from its last checkpoint (a new process)")
_control(
    "stop", "Stop after the current step (consistent last.ckpt; status stopped), or a queued job at once"
)
