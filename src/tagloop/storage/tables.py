"""SQLAlchemy 2 table mappings. Schemas the API exposes are kept apart from these."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JsonType = JSON().with_variant(JSONB(), "postgresql")
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use datetime.now(UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class ClassifierRow(Base):
    __tablename__ = "classifiers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    mode: Mapped[str] = mapped_column(String(16))
    label_delimiter: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class DatasetRow(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    classifier_id: Mapped[int] = mapped_column(ForeignKey("classifiers.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(32))
    documents: Mapped[int] = mapped_column(Integer, default=0)
    label_counts: Mapped[dict[str, int]] = mapped_column(JsonType, default=dict)
    fingerprint: Mapped[str] = mapped_column(String(64))
    warnings: Mapped[list[str]] = mapped_column(JsonType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DocumentRow(Base):
    __tablename__ = "documents"
    __table_args__ = (
        Index("ix_documents_dataset_split", "dataset_id", "split", "id"),
        Index("ix_documents_classifier_split", "classifier_id", "split"),
        Index("ix_documents_classifier_origin", "classifier_id", "origin"),
        UniqueConstraint("review_task_id", name="uq_documents_review_task_id"),
        Index("ix_documents_classifier_hash", "classifier_id", "text_hash"),
        Index("ix_documents_pool_task", "pool_task_id"),  # a deleted task's ON DELETE SET NULL
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    classifier_id: Mapped[int] = mapped_column(ForeignKey("classifiers.id", ondelete="CASCADE"))
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)
    labels: Mapped[list[str]] = mapped_column(JsonType)
    origin: Mapped[str] = mapped_column(String(16))
    split: Mapped[str] = mapped_column(String(8))
    line: Mapped[int | None] = mapped_column(Integer)
    review_task_id: Mapped[str | None] = mapped_column(
        ForeignKey("review_tasks.id", ondelete="SET NULL", name="fk_documents_review_task_id")
    )
    """A verified document (origin ``review`` or ``feedback``): the task it was consolidated from."""
    text_hash: Mapped[str | None] = mapped_column(String(32))
    """``domain.loop.text_hash`` of the text, for the documents outside any version's dataset
    (verified and pooled ones): the same text is not pooled twice, nor pooled once verified."""
    pool_task_id: Mapped[str | None] = mapped_column(
        ForeignKey("review_tasks.id", ondelete="SET NULL", name="fk_documents_pool_task_id")
    )
    """A pool document (split ``pool``) picked for review: the task it went into (None: still
    in the pool, or back in it once that task is deleted)."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ModelVersionRow(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("classifier_id", "number", name="uq_model_versions_number"),
        UniqueConstraint("classifier_id", "name", name="uq_model_versions_name"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    classifier_id: Mapped[int] = mapped_column(ForeignKey("classifiers.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(63))
    status: Mapped[str] = mapped_column(String(16))
    message: Mapped[str | None] = mapped_column(Text)
    recipe: Mapped[str] = mapped_column(String(63))
    parameters: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    train_dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    test_dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    data_fingerprint: Mapped[str | None] = mapped_column(String(64))
    labels: Mapped[list[str]] = mapped_column(JsonType, default=list)
    label_counts: Mapped[dict[str, int]] = mapped_column(JsonType, default=dict)
    documents: Mapped[dict[str, int]] = mapped_column(JsonType, default=dict)
    metrics: Mapped[dict[str, float] | None] = mapped_column(JsonType)
    per_label: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    confusion_matrix: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    model_info: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    artifact_path: Mapped[str | None] = mapped_column(Text)
    artifact_sha256: Mapped[str | None] = mapped_column(String(64))
    artifact_bytes: Mapped[int | None] = mapped_column(BigInteger)
    timings: Mapped[dict[str, float]] = mapped_column(JsonType, default=dict)
    library_versions: Mapped[dict[str, str]] = mapped_column(JsonType, default=dict)
    warnings: Mapped[list[str]] = mapped_column(JsonType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class JobRow(Base):
    """A long piece of work and its progress. ``kind`` names the job kind that runs it, as the
    services register them: ``train``, ``deploy`` (an endpoint's new model), ``batch`` (batch
    classification) and ``batch_shard`` (its children)."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status_created", "status", "created_at"),
        # in creation order: a job's children; the top-level jobs (parent_id IS NULL: SQLite uses
        # the first index, PostgreSQL the second); the jobs of a kind; of a version and kind
        Index("ix_jobs_parent_created", "parent_id", "created_at", "id"),
        Index(
            "ix_jobs_top_created",
            "created_at",
            "id",
            postgresql_where=text("parent_id IS NULL"),
            sqlite_where=text("parent_id IS NULL"),
        ),
        Index("ix_jobs_kind_created", "kind", "created_at", "id"),
        Index("ix_jobs_version_created", "version_id", "kind", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    progress: Mapped[float] = mapped_column(default=0.0)
    progress_message: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    classifier_id: Mapped[int | None] = mapped_column(ForeignKey("classifiers.id", ondelete="SET NULL"))
    version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE", name="fk_jobs_parent_id")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EndpointRow(Base):
    """A name that points at one model version; the only thing that says what serves."""

    __tablename__ = "endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    classifier_id: Mapped[int] = mapped_column(ForeignKey("classifiers.id", ondelete="CASCADE"), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="RESTRICT"))
    desired_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="RESTRICT", name="fk_endpoints_desired_version_id")
    )
    """While CREATING or UPDATING: the version being deployed (``version_id`` serves meanwhile)."""
    desired_inference_units: Mapped[int] = mapped_column(Integer, default=1)
    routing: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    """The review routing policy (``domain.routing.RoutingPolicy.to_dict``); None: none routed."""
    follows: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """True: serves its classifier's active version (the loop's champion) and moves when a new
    one is promoted; False: pinned to ``version_id`` (as a Comprehend endpoint on a model ARN)."""
    pool_rate: Mapped[float] = mapped_column(default=0.0, server_default=text("0"))
    """The share of its logged predictions (with their text) that feed its classifier's pool."""
    pool_through_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pool_through_id: Mapped[str | None] = mapped_column(String(36))
    """The pool's watermark: (created_at, id) of the last logged prediction examined for the
    pool (id "" when the rate was set: from that moment on); NULL: never fed."""
    status: Mapped[str] = mapped_column(String(16))
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiKeyRow(Base):
    """An access key: its id, scope, a hash of its secret (Bearer) and the secret encrypted
    with the server key (AWS Signature V4 needs the secret itself to check a signature)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    access_key_id: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    scope: Mapped[str] = mapped_column(String(16))
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PredictionRow(Base):
    """One logged classify result, with the id end-user feedback refers to.

    ``text`` is None when the text is not kept (``TAGLOOP_LOG_PREDICTION_TEXT=false``);
    ``top_label`` and ``top_score`` are the first label of ``result`` (what ``--label`` filters
    on). Listed newest first per endpoint (``ix_predictions_endpoint_created``) or over all of
    them, and deleted by age (``ix_predictions_created``, ``TAGLOOP_PREDICTION_RETENTION_DAYS``).
    """

    __tablename__ = "predictions"
    __table_args__ = (
        Index("ix_predictions_endpoint_created", "endpoint", "created_at"),
        Index("ix_predictions_created", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(63))
    version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    text: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any]] = mapped_column(JsonType)
    top_label: Mapped[str | None] = mapped_column(Text)
    top_score: Mapped[float | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WorkerRow(Base):
    """A process that runs queued jobs (``tagloop serve`` or ``tagloop worker``), as it last
    announced itself: its heartbeat refreshes ``last_seen`` every few seconds, and a clean
    shutdown deletes the row. ``kind`` is its queue adapter (``local`` or ``procrastinate``)."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    concurrency: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class ReviewTaskRow(Base):
    """A document waiting for people (A2I's human loop): the model's prediction, why it was
    routed, how many answers it needs, and what they consolidated into.

    ``queue`` says who picks it up next: ``review`` (reviewers, while answers are missing),
    ``moderate`` (a tie, or end-user feedback: a moderator decides) or NULL (nobody: done,
    stopped or expired). ``holders`` counts the answers given plus the leases not yet expired,
    so a task is handed out while ``holders < required``. ``uncertainty`` (1 − the best score)
    and ``oldness`` (minus the creation time in seconds) let one index serve both queue orders,
    priority first (``ix_review_tasks_uncertain``, ``ix_review_tasks_oldest``).
    A task made for an A2I human loop has a ``loop_name``, its ``flow_definition_id`` and the
    loop's ``input_content`` (any JSON); its ``text`` may be empty.
    """

    __tablename__ = "review_tasks"
    __table_args__ = (
        Index("ix_review_tasks_uncertain", "queue", "priority", "uncertainty"),
        Index("ix_review_tasks_oldest", "queue", "priority", "oldness"),
        Index("ix_review_tasks_classifier_created", "classifier_id", "created_at"),
        Index("ix_review_tasks_prediction", "prediction_id"),
        Index("ix_review_tasks_status_expires", "status", "expires_at"),
        Index("ix_review_tasks_flow_created", "flow_definition_id", "created_at"),  # ListHumanLoops
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    classifier_id: Mapped[int | None] = mapped_column(ForeignKey("classifiers.id", ondelete="CASCADE"))
    endpoint: Mapped[str | None] = mapped_column(String(63))
    version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    prediction_id: Mapped[str | None] = mapped_column(String(36))
    text: Mapped[str] = mapped_column(Text)
    mode: Mapped[str] = mapped_column(String(16))
    choices: Mapped[list[str]] = mapped_column(JsonType, default=list)
    prediction: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    reason: Mapped[str] = mapped_column(String(24))
    priority: Mapped[float] = mapped_column(default=0.0)
    uncertainty: Mapped[float] = mapped_column(default=0.0)
    oldness: Mapped[float] = mapped_column(default=0.0)
    required: Mapped[int] = mapped_column(Integer, default=1)
    answered: Mapped[int] = mapped_column(Integer, default=0)
    holders: Mapped[int] = mapped_column(Integer, default=0)
    lease_seconds: Mapped[int] = mapped_column(Integer, default=300)
    status: Mapped[str] = mapped_column(String(16))
    queue: Mapped[str | None] = mapped_column(String(16))
    feedback: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    final_labels: Mapped[list[str] | None] = mapped_column(JsonType)
    consolidation: Mapped[str | None] = mapped_column(String(24))
    decided_by: Mapped[str | None] = mapped_column(String(128))
    failure_code: Mapped[str | None] = mapped_column(String(64))
    failure_reason: Mapped[str | None] = mapped_column(Text)
    loop_name: Mapped[str | None] = mapped_column(String(63), unique=True)
    flow_definition_id: Mapped[int | None] = mapped_column(
        ForeignKey("flow_definitions.id", ondelete="CASCADE", name="fk_review_tasks_flow_definition_id")
    )
    input_content: Mapped[Any | None] = mapped_column(JsonType)
    output_uri: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ReviewAnswerRow(Base):
    """One reviewer's hold on a task and, once given, their answer: at most one row per task
    and reviewer, so nobody answers a task twice. ``status``: ``leased`` (handed out until
    ``leased_until``), ``answered``, ``skipped`` (back of this reviewer's queue) or
    ``released`` (the lease ran out or was given back). ``answer_content`` is what an A2I task
    template's form submitted; ``labels`` what a tagloop review page did."""

    __tablename__ = "review_answers"
    __table_args__ = (
        UniqueConstraint("task_id", "reviewer", name="uq_review_answers_task_reviewer"),
        Index("ix_review_answers_reviewer_status", "reviewer", "status", "answered_at"),
        Index("ix_review_answers_status_leased_until", "status", "leased_until"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("review_tasks.id", ondelete="CASCADE"))
    reviewer: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16), default="reviewer")
    status: Mapped[str] = mapped_column(String(16))
    labels: Mapped[list[str] | None] = mapped_column(JsonType)
    answer_content: Mapped[Any | None] = mapped_column(JsonType)
    accepted: Mapped[bool | None] = mapped_column()
    time_spent: Mapped[float | None] = mapped_column()
    leased_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class HumanTaskUiRow(Base):
    """An A2I worker task template (SageMaker's HumanTaskUi): a Liquid HTML template."""

    __tablename__ = "human_task_uis"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    content: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="Active")
    tags: Mapped[list[dict[str, str]]] = mapped_column(JsonType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FlowDefinitionRow(Base):
    """An A2I flow definition: who reviews (TaskCount, lifetimes), what they see (a task UI, or
    tagloop's own page) and where a completed loop's ``output.json`` goes. ``classifier_id`` or
    ``labels`` name the labels reviewers choose from when tagloop's page shows the loop."""

    __tablename__ = "flow_definitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    task_ui_id: Mapped[int | None] = mapped_column(ForeignKey("human_task_uis.id", ondelete="RESTRICT"))
    classifier_id: Mapped[int | None] = mapped_column(ForeignKey("classifiers.id", ondelete="SET NULL"))
    labels: Mapped[list[str]] = mapped_column(JsonType, default=list)
    title: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    task_count: Mapped[int] = mapped_column(Integer, default=1)
    availability_seconds: Mapped[int] = mapped_column(Integer, default=864_000)
    time_limit_seconds: Mapped[int] = mapped_column(Integer, default=3_600)
    output_path: Mapped[str] = mapped_column(Text)
    role_arn: Mapped[str | None] = mapped_column(Text)
    config: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="Active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UserRow(Base):
    """A person who signs in to the web UI: ``role`` is reviewer, moderator or admin; the
    password is kept as an argon2 hash; ``disabled_at`` ends every session at once."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(Text)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebSessionRow(Base):
    """A signed-in browser: the cookie holds a random token, the row its SHA-256 (a stolen
    database holds no usable session) and the CSRF token its forms must send back."""

    __tablename__ = "web_sessions"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LoopRow(Base):
    """A classifier's learning loop (Comprehend's flywheel): its champion (the active version
    that every endpoint following the classifier serves), its promotion, trigger and refill
    settings (``domain.loop.LoopSettings``), and, for a flywheel made by Comprehend's
    CreateFlywheel, its name and the fields Comprehend records. At most one per classifier;
    made on first use (an iteration, a promotion, a settings change)."""

    __tablename__ = "loops"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    classifier_id: Mapped[int] = mapped_column(ForeignKey("classifiers.id", ondelete="CASCADE"), unique=True)
    name: Mapped[str | None] = mapped_column(String(63), unique=True)
    """The flywheel's name (CreateFlywheel); None: known by its classifier's name only."""
    active_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL", name="fk_loops_active_version_id")
    )
    settings: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="ACTIVE")
    message: Mapped[str | None] = mapped_column(Text)
    data_lake_uri: Mapped[str | None] = mapped_column(Text)
    role_arn: Mapped[str | None] = mapped_column(Text)
    model_type: Mapped[str | None] = mapped_column(String(32))
    task_config: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    tags: Mapped[list[dict[str, str]]] = mapped_column(JsonType, default=list)
    verified_mark: Mapped[int] = mapped_column(Integer, default=0)
    """How many verified documents the classifier had when its last iteration started (the
    ``after N new verified labels`` trigger counts from here)."""
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """When the schedule trigger starts the next iteration (None: no schedule)."""
    ticked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """When a process last ran this loop's periodic work (one process per tick: compare-and-set)."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class IterationRow(Base):
    """One turn of a loop: a challenger trained on all verified training data with the
    classifier's recipe, it and the champion evaluated on the same frozen test set, and the
    decision. ``name`` is Comprehend's FlywheelIterationId (``20220907T214613Z``); ``status``
    Comprehend's (TRAINING, EVALUATING, COMPLETED, FAILED, STOP_REQUESTED, STOPPED);
    ``decision`` ``promoted`` or ``kept`` once COMPLETED, with its ``reason``."""

    __tablename__ = "iterations"
    __table_args__ = (
        UniqueConstraint("loop_id", "name", name="uq_iterations_name"),
        UniqueConstraint("loop_id", "number", name="uq_iterations_number"),
        Index("ix_iterations_loop_created", "loop_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    loop_id: Mapped[int] = mapped_column(ForeignKey("loops.id", ondelete="CASCADE"))
    classifier_id: Mapped[int] = mapped_column(ForeignKey("classifiers.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(16))
    trigger: Mapped[str] = mapped_column(String(16))
    """``manual`` (CLI, /v1), ``api`` (StartFlywheelIteration), ``verified`` or ``schedule``."""
    job_id: Mapped[str | None] = mapped_column(String(36))
    champion_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL", name="fk_iterations_champion_version_id")
    )
    challenger_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL", name="fk_iterations_challenger_version_id")
    )
    rule: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    """The promotion rule it decided by (metric, minimum gain, per-label guard)."""
    champion_metrics: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    challenger_metrics: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    per_label: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    """Per label: the champion's and the challenger's F1 and their difference."""
    documents: Mapped[dict[str, int]] = mapped_column(JsonType, default=dict)
    """Training documents by origin, and the size of the frozen test set."""
    decision: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LoopDatasetRow(Base):
    """A dataset added to a loop's data (Comprehend's CreateDataset on a flywheel): TRAIN
    documents join every later challenger's training data, TEST documents the frozen test set.
    ``status`` is Comprehend's (CREATING, COMPLETED, FAILED)."""

    __tablename__ = "loop_datasets"
    __table_args__ = (UniqueConstraint("loop_id", "name", name="uq_loop_datasets_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    loop_id: Mapped[int] = mapped_column(ForeignKey("loops.id", ondelete="CASCADE"))
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(63))
    kind: Mapped[str] = mapped_column(String(8))
    description: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    message: Mapped[str | None] = mapped_column(Text)
    documents: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EventRow(Base):
    """Something a person may want to hear about (an iteration's decision, drift crossing its
    threshold, a training done): recorded here when it happens; notifications deliver them."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_created", "created_at"),
        Index("ix_events_kind_created", "kind", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    classifier_id: Mapped[int | None] = mapped_column(ForeignKey("classifiers.id", ondelete="SET NULL"))
    endpoint: Mapped[str | None] = mapped_column(String(63))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ImportProfileRow(Base):
    """How a source becomes ``(text, labels)`` rows for one classifier (services/profiles.py):
    format, column mapping, filters, archive members, an SQL query; ``spec`` is the profile
    as ``domain.profiles`` validates it."""

    __tablename__ = "import_profiles"
    __table_args__ = (UniqueConstraint("classifier_id", "name", name="uq_import_profiles_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    classifier_id: Mapped[int] = mapped_column(ForeignKey("classifiers.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(63))
    spec: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class InboxRow(Base):
    """A watched folder or S3 prefix: a file dropped there is imported with the profile,
    trained, evaluated, deployed by the inbox's policy (``settings``) and notified."""

    __tablename__ = "inboxes"
    __table_args__ = (
        UniqueConstraint("name", name="uq_inboxes_name"),
        UniqueConstraint("url", name="uq_inboxes_url"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63))
    classifier_id: Mapped[int] = mapped_column(ForeignKey("classifiers.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(Text)
    profile_id: Mapped[int | None] = mapped_column(
        ForeignKey("import_profiles.id", ondelete="SET NULL", name="fk_inboxes_profile_id")
    )
    settings: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    scanned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)


class InboxFileRow(Base):
    """A file seen in an inbox, by name and fingerprint (size and modification time, or the
    S3 ETag): ``state`` goes ``seen`` (still growing) → ``claimed`` → ``training`` →
    ``deploying`` → ``processed`` or ``failed``; the unique key makes each file processed once."""

    __tablename__ = "inbox_files"
    __table_args__ = (
        UniqueConstraint("inbox_id", "name", "fingerprint", name="uq_inbox_files_seen"),
        Index("ix_inbox_files_inbox_state", "inbox_id", "state"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    inbox_id: Mapped[int] = mapped_column(ForeignKey("inboxes.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(128))
    size: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16))
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    stable_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    job_id: Mapped[str | None] = mapped_column(String(36))
    version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL", name="fk_inbox_files_version_id")
    )
    endpoint: Mapped[str | None] = mapped_column(String(63))
    moved_to: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    report: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ChannelRow(Base):
    """Where notifications go: a webhook (``target`` its URL, ``secret`` the HMAC key, sealed)
    or e-mail (``target`` the addresses); ``events`` the kinds it hears (empty: all), optionally
    of one classifier. Events after ``after_event_id`` become its deliveries."""

    __tablename__ = "channels"
    __table_args__ = (UniqueConstraint("name", name="uq_channels_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63))
    kind: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(Text)
    secret: Mapped[str | None] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(JsonType, default=list)
    classifier_id: Mapped[int | None] = mapped_column(ForeignKey("classifiers.id", ondelete="CASCADE"))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    after_event_id: Mapped[int] = mapped_column(BigId, default=0, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeliveryRow(Base):
    """One event (or a test message: no event) sent to one channel: its attempts, the
    receiver's answer and when to try again (``status`` pending, sending: claimed for an
    attempt until ``next_attempt_at``, delivered or failed)."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("channel_id", "event_id", name="uq_deliveries_event"),
        Index("ix_deliveries_due", "status", "next_attempt_at"),
        Index("ix_deliveries_channel_created", "channel_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    event_id: Mapped[int | None] = mapped_column(
        ForeignKey("events.id", ondelete="CASCADE", name="fk_deliveries_event_id")
    )
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    response_status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RequestTokenRow(Base):
    """A ClientRequestToken of a Comprehend create or start operation, per caller (access key):
    the digest of the request it came with and, once answered, the answer, which a retry with
    the same token gets again instead of creating a second resource. ``response`` NULL: the
    first request is still being handled (or died; taken over after a while)."""

    __tablename__ = "request_tokens"
    __table_args__ = (
        UniqueConstraint("caller", "operation", "token", name="uq_request_tokens"),
        Index("ix_request_tokens_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    caller: Mapped[str] = mapped_column(String(128))
    operation: Mapped[str] = mapped_column(String(64))
    token: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(64))
    response: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
