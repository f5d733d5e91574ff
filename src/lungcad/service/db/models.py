"""SQLAlchemy 2 tables of the service.  The database holds metadata and state; pixel data and results are
files under the data folder (``lungcad.service.storage``), referenced by content hash or folder name.

A study is stored in one transaction after all of its files are in the blob store, so a reader never sees
a study (or an instance) whose files are missing.  An analysis row is the single source of truth of a job:
the queue only carries "look at analysis X"; a worker claims it with a conditional UPDATE, so a message
delivered twice (a retry, a re-queue after a dead worker) runs the job once.
"""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class AnalysisStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in {AnalysisStatus.DONE, AnalysisStatus.FAILED, AnalysisStatus.CANCELLED}


def _enum(cls: type[enum.Enum]) -> Enum:
    # stored as the value text ("queued"), checked by a CHECK constraint rather than a native enum type:
    # the same schema on SQLite and PostgreSQL, and a new member needs no ALTER TYPE
    return Enum(cls, values_callable=lambda c: [m.value for m in c], native_enum=False, length=16)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True, index=True)
    key_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Study(Base):
    __tablename__ = "studies"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    study_uid: Mapped[str] = mapped_column(String(64), unique=True)
    # PHI columns: only roles allowed to see PHI get them back (lungcad.service.security)
    patient_id: Mapped[str | None] = mapped_column(String(64))
    patient_name: Mapped[str | None] = mapped_column(String(200))
    patient_birth_date: Mapped[str | None] = mapped_column(String(8))
    accession_number: Mapped[str | None] = mapped_column(String(64))
    # HMAC of the patient id under the service secret: lets clients group and filter by patient without it
    patient_id_hash: Mapped[str | None] = mapped_column(String(32), index=True)
    study_date: Mapped[date | None] = mapped_column(Date, index=True)
    description: Mapped[str | None] = mapped_column(String(200))
    n_instances: Mapped[int] = mapped_column(Integer, default=0)
    total_bytes: Mapped[int] = mapped_column(BigInteger, default=0)  # a study may pass 2 GiB
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    series: Mapped[list[Series]] = relationship(
        back_populates="study", cascade="all, delete-orphan", order_by="Series.series_uid"
    )


class Series(Base):
    __tablename__ = "series"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    series_uid: Mapped[str] = mapped_column(String(64), unique=True)
    modality: Mapped[str | None] = mapped_column(String(16))
    description: Mapped[str | None] = mapped_column(String(200))
    n_instances: Mapped[int] = mapped_column(Integer, default=0)
    usable: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(Text)

    study: Mapped[Study] = relationship(back_populates="series")
    instances: Mapped[list[Instance]] = relationship(back_populates="series", cascade="all, delete-orphan")


class Instance(Base):
    __tablename__ = "instances"

    sop_uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    series_id: Mapped[str] = mapped_column(ForeignKey("series.id", ondelete="CASCADE"), index=True)
    sop_class_uid: Mapped[str | None] = mapped_column(String(64))
    blob: Mapped[str] = mapped_column(String(64), index=True)  # sha256 hex of the file's bytes
    size: Mapped[int] = mapped_column(Integer)

    series: Mapped[Series] = relationship(back_populates="instances")


class ModelFile(Base):
    __tablename__ = "models"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(64))
    bundle_config_hash: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict] = mapped_column(JSON)  # the bundle's configuration (model + preprocessing)
    card: Mapped[dict] = mapped_column(JSON)
    size: Mapped[int] = mapped_column(BigInteger)
    filename: Mapped[str] = mapped_column(String(255))  # the name it was uploaded as (display only)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    active: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    # where an exported model came from: training run, cohorts, config hash, metrics (None: uploaded)
    lineage: Mapped[dict | None] = mapped_column(JSON)


class ModelActivation(Base):
    """One change of the active model, append-only: ``POST /models/rollback`` replays them to find the
    model active before the current one (``lungcad.service.model_history``)."""

    __tablename__ = "model_activations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    sha256: Mapped[str] = mapped_column(ForeignKey("models.sha256"))
    by_key: Mapped[str | None] = mapped_column(String(16))  # API key prefix; None: the service itself
    kind: Mapped[str] = mapped_column(String(16))  # initial | activate | rollback


class ConfigVersion(Base):
    __tablename__ = "configs"

    hash: Mapped[str] = mapped_column(String(32), primary_key=True)
    config: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Batch(Base):
    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    analyses: Mapped[list[Analysis]] = relationship(back_populates="batch")


class Analysis(Base):
    __tablename__ = "analyses"
    __table_args__ = (
        # the cache look-up: the same series, model and configuration (and report flag) done before
        Index("ix_analyses_cache", "series_uid", "model_sha256", "config_hash", "report", "status"),
        # the worklist: per study the newest finished analysis, ordered by priority
        Index("ix_analyses_worklist", "status", "priority_rank", "triage_probability"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    series_uid: Mapped[str] = mapped_column(String(64))
    model_sha256: Mapped[str] = mapped_column(ForeignKey("models.sha256"))
    config_hash: Mapped[str] = mapped_column(ForeignKey("configs.hash"))
    report: Mapped[bool] = mapped_column(Boolean, default=False)
    # the Brock risk options of the request as canonical JSON (lungcad.infer.risk.RiskOptions); part of
    # the cache key; NULL: none given
    risk_options: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[AnalysisStatus] = mapped_column(_enum(AnalysisStatus), index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    stage: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claim: Mapped[str | None] = mapped_column(String(32))  # token of the worker attempt that owns it
    worker: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    batch_id: Mapped[str | None] = mapped_column(ForeignKey("batches.id", ondelete="SET NULL"), index=True)
    # the result folder under data_dir/results (shared by cached analyses of the same inputs)
    result_dir: Mapped[str | None] = mapped_column(String(64))
    cached: Mapped[bool] = mapped_column(Boolean, default=False)
    # worklist fields, copied from the ScanResult when done
    scan_status: Mapped[str | None] = mapped_column(String(16))
    lung_rads: Mapped[str | None] = mapped_column(String(4))
    priority_rank: Mapped[int] = mapped_column(Integer, default=-1)
    triage_probability: Mapped[float] = mapped_column(Float, default=0.0)
    n_findings: Mapped[int] = mapped_column(Integer, default=0)

    batch: Mapped[Batch | None] = relationship(back_populates="analyses")
    study: Mapped[Study] = relationship()


class AuditEvent(Base):
    """Who did what to which resource, one row per authorised (or refused) API request -- append-only.

    Holds ids only (key prefix, study / analysis id), never PHI.  Migration 0002 adds triggers that make
    UPDATE and DELETE of rows fail on SQLite and PostgreSQL; the code has no path that changes a row.
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    key_prefix: Mapped[str] = mapped_column(String(16), index=True)
    role: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(32))  # a lungcad.service.security.Action value
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_id: Mapped[str | None] = mapped_column(String(200))
    # the study the request concerned, when known (a study, or an analysis / result / file of it)
    study_id: Mapped[str | None] = mapped_column(String(32), index=True)
    outcome: Mapped[str] = mapped_column(String(16))  # ok | denied | failed
    request_id: Mapped[str | None] = mapped_column(String(128))
    client_ip: Mapped[str | None] = mapped_column(String(64))


class TrainingJobState(enum.StrEnum):
    QUEUED = "queued"  # waiting for a session manager (new, or resumed)
    STARTING = "starting"  # claimed by a manager, process being spawned
    RUNNING = "running"  # a training process is alive (pid + create_time)
    PAUSED = "paused"  # ended at a step boundary with last.ckpt; resumable
    STOPPED = "stopped"  # like paused, but meant as final (still resumable)
    FINISHED = "finished"
    FAILED = "failed"

    @property
    def live(self) -> bool:
        """A process may exist for the job (a manager watches it)."""
        return self in {TrainingJobState.STARTING, TrainingJobState.RUNNING}


class TrainingJob(Base):
    """One training run spawned by the service: ``lungcad train`` in ``D/runs/<run_dir>`` as a process of
    its own (``lungcad.service.training_manager``).  ``pid`` + ``pid_created`` (the process's start time)
    identify the process: a pid reused by another process after a reboot has another start time."""

    __tablename__ = "training_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(16))  # API key prefix
    config: Mapped[dict] = mapped_column(JSON)  # the validated LungcadConfig dump
    config_hash: Mapped[str] = mapped_column(ForeignKey("configs.hash"))
    data: Mapped[list] = mapped_column(JSON)  # cohort ids
    init_from: Mapped[str | None] = mapped_column(String(64))  # sha256 of a registered model
    max_steps: Mapped[int | None] = mapped_column(Integer)
    run_dir: Mapped[str] = mapped_column(String(64))  # folder name under data_dir/runs
    state: Mapped[TrainingJobState] = mapped_column(_enum(TrainingJobState), index=True)
    # the command asked for through the API (run | pause | stop), mirrored into the run's control.json
    command: Mapped[str] = mapped_column(String(8), default="run")
    claim: Mapped[str | None] = mapped_column(String(32))  # token of the manager attempt that owns it
    pid: Mapped[int | None] = mapped_column(Integer)
    pid_created: Mapped[float | None] = mapped_column(Float)  # psutil create_time, seconds since epoch
    host: Mapped[str | None] = mapped_column(String(200))
    gpu: Mapped[int | None] = mapped_column(Integer)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    message: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    snapshot: Mapped[dict | None] = mapped_column(JSON)  # the last status.json (TrainingState) read
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Cohort(Base):
    """A cohort folder on the server, registered (validated by ``lungcad.data.cohort.read_cohort``) or
    generated by ``lungcad.synth``; training jobs name cohorts by id."""

    __tablename__ = "cohorts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    path: Mapped[str] = mapped_column(String(1000), unique=True)  # resolved absolute folder
    kind: Mapped[str] = mapped_column(String(16))  # synthetic | luna16 | lidc
    n_scans: Mapped[int] = mapped_column(Integer)
    n_nodules: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    manifest: Mapped[dict] = mapped_column(JSON)  # summary: patients, scan ids (capped), generator settings


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its (next) attempt
    DELIVERED = "delivered"  # a 2xx came back
    FAILED = "failed"  # every attempt failed; not tried again


class Webhook(Base):
    """A receiver of event notifications (``lungcad.service.webhooks``): a URL and the events it wants."""

    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list] = mapped_column(JSON)  # event names, e.g. ["analysis.done", "training.failed"]
    # stored as is, not hashed: the service signs every delivery with it (an HMAC needs the key itself);
    # shown to the client once, when the webhook is created, and never listed
    secret: Mapped[str] = mapped_column(String(128))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class WebhookDelivery(Base):
    """One event for one webhook, and how its attempts went: the delivery log (ids and statuses only)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict] = mapped_column(JSON)  # ids and statuses, never patient data
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[DeliveryStatus] = mapped_column(_enum(DeliveryStatus))
    claim: Mapped[str | None] = mapped_column(String(32))  # token of the sender attempt that owns it
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ResultDeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its (next) attempt
    DELIVERED = "delivered"  # the destination stored it (C-STORE success / warning, STOW-RS 200)
    FAILED = "failed"  # a permanent refusal, or every attempt failed: not tried again
    SKIPPED = "skipped"  # the destination wants the object but the analysis made none (no SEG: no finding)


class ResultDelivery(Base):
    """One DICOM object of one analysis pushed to one configured destination (``lungcad.service.delivery``),
    and how its attempts went: the result delivery log (UIDs, statuses and error texts, never PHI)."""

    __tablename__ = "result_deliveries"
    __table_args__ = (
        Index("ix_result_deliveries_due", "status", "next_attempt_at"),
        Index("ix_result_deliveries_object", "analysis_id", "destination", "object_kind", unique=True),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    analysis_id: Mapped[str] = mapped_column(ForeignKey("analyses.id", ondelete="CASCADE"), index=True)
    destination: Mapped[str] = mapped_column(String(32))  # DeliveryDestination.name
    kind: Mapped[str] = mapped_column(String(8))  # cstore | stowrs
    object_kind: Mapped[str] = mapped_column(String(8))  # seg | sr | pdf
    file: Mapped[str | None] = mapped_column(String(200))  # relative to the analysis's result folder
    sop_instance_uid: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[ResultDeliveryStatus] = mapped_column(_enum(ResultDeliveryStatus))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claim: Mapped[str | None] = mapped_column(String(32))  # token of the sender attempt that owns it
    last_status: Mapped[int | None] = mapped_column(Integer)  # the DICOM status or HTTP status code
    last_error: Mapped[str | None] = mapped_column(Text)


class ComparisonRow(Base):
    """One comparison of a done analysis with a prior one (issue 17, ``lungcad.longitudinal``): the
    ``comparison.json`` document as written, the ids it compares (deleted with either analysis) and the
    folder of the current study's report rendered with the comparison."""

    __tablename__ = "comparisons"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    analysis_id: Mapped[str] = mapped_column(ForeignKey("analyses.id", ondelete="CASCADE"), index=True)
    prior_analysis_id: Mapped[str] = mapped_column(ForeignKey("analyses.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    created_by: Mapped[str | None] = mapped_column(String(16))  # API key prefix
    document: Mapped[str] = mapped_column(Text)  # comparison.json (schema docs/schema/comparison-1.0.json)
    # the folder under D/results of the report rendered with the comparison (``comparison-<id>``: report,
    # SEG / SR / PDF); NULL when none was rendered (report=false, or the current analysis had no report)
    result_dir: Mapped[str | None] = mapped_column(String(64))
