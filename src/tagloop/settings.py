"""Settings from ``TAGLOOP_*`` environment variables (pydantic-settings); CLI flags go on top."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Everything tagloop can be told from its environment."""

    model_config = SettingsConfigDict(env_prefix="TAGLOOP_", extra="ignore")

    data_dir: Path = Field(
        Path("tagloop-data"), description="Folder for the embedded database and artifacts."
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the metadata DB; default: SQLite file in the data dir."
    )
    artifacts_url: str | None = Field(
        None, description="fsspec URL for model files and outputs; default: a folder in the data dir."
    )
    allowed_data_urls: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="Where the network APIs may read training data and batch input and write batch "
        "output, besides the artifact store: comma-separated folders and URL prefixes, e.g. "
        "`s3://bucket/inbox/,file:///srv/tagloop/inbox/` (a plain path is a file:// folder). Any other "
        "local path and any protocol not named here is refused; the CLI reads any path it is given.",
    )

    max_text_bytes: int = Field(1_000_000, gt=0, description="Largest document (UTF-8 bytes) accepted.")
    max_label_chars: int = Field(5_000, gt=0, description="Longest label name accepted.")
    max_labels_multi_class: int = Field(1_000, gt=1, description="Most distinct labels in multi-class mode.")
    max_labels_multi_label: int = Field(100, gt=0, description="Most distinct labels in multi-label mode.")
    min_docs_per_label: int = Field(
        10, ge=1, description="Labels with fewer training documents get a warning (never a refusal)."
    )
    test_fraction: float = Field(0.1, gt=0, lt=1, description="Share held out as test set when no test file.")
    split_seed: int = Field(0, description="Seed of the stratified test split.")
    secret_key: str | None = Field(
        None, description="Encrypts API secrets at rest; default: a 0600 key file in the data dir."
    )
    auth: bool = Field(
        True,
        description="Require API keys. Off (`false`, or `tagloop serve --no-auth`) is for development: "
        "the server then listens on loopback hosts only and answers only same-origin requests to "
        "127.0.0.1, localhost or [::1].",
    )
    metrics_token: str | None = Field(
        None,
        description="Bearer token that opens /metrics (what Prometheus sends); unset: /metrics needs "
        "an admin API key (open when auth is off).",
    )
    admin_password: SecretStr | None = Field(
        None,
        description="Password of the first web UI user `admin`, created by `tagloop serve` when there "
        "is no user; unset: generated and shown once (embedded database only).",
    )
    api_docs: bool = Field(
        True,
        description="Serve /docs, /redoc and /openapi.json without credentials (they describe the "
        "API and hold no data); false: not served.",
    )
    aws_account_id: str = Field("123456789012", description="Account id in the ARNs of the Comprehend API.")
    aws_region: str = Field(
        "us-east-1", description="Region in the ARNs of the Comprehend API and in its SigV4 signatures."
    )
    aws_any_region: bool = Field(
        False, description="Accept SigV4 signatures scoped to any region, not only TAGLOOP_AWS_REGION."
    )
    routing_wait_for_commit: bool = Field(
        False,
        description="Routed classify answers wait for their review task's database commit (a few ms; "
        "costs throughput) instead of its write-ahead journal record in the data dir, which survives "
        "the server process being killed but not a crash of the machine.",
    )
    log_predictions: bool = Field(True, description="Keep every classify result with an id for feedback.")
    log_prediction_text: bool = Field(
        True,
        description="Keep the classified text with each logged prediction; false: only its id, "
        "endpoint, version, labels and scores.",
    )
    prediction_retention_days: int = Field(
        0,
        ge=0,
        description="Delete logged predictions older than this many days (checked when a server starts "
        "and every hour); 0: keep them forever.",
    )
    request_token_hours: float = Field(
        24.0,
        ge=0,
        description="How long the Comprehend API remembers a create or start request's "
        "ClientRequestToken, so that a retry gets the first answer instead of a second resource; "
        "0: tokens ignored.",
    )
    max_classify_bytes: int = Field(
        100_000, gt=0, description="Largest text (UTF-8 bytes) per classify call."
    )
    max_classify_documents: int = Field(1_000, gt=0, description="Most texts in one classify call.")
    classify_top_classes: int = Field(
        3,
        ge=0,
        description="Classes per document in real-time answers and batch-job output of a multi-class "
        "model, best first (Amazon Comprehend lists 3); 0: all. /v1 classify's `top` overrides it.",
    )
    max_body_bytes: int = Field(16_000_000, gt=0, description="Largest HTTP request body.")
    endpoint_refresh_seconds: float = Field(
        0.5, gt=0, description="How often a server re-reads where an endpoint points."
    )
    model_cache_size: int = Field(4, ge=1, description="Trained models kept loaded per process.")
    loop_tick_seconds: float = Field(
        30.0,
        ge=0,
        description="How often `serve` and `worker` run the learning loop's periodic work "
        "(iteration triggers, refills); 0: never.",
    )
    jobs: Literal["local", "procrastinate"] = Field(
        "local",
        description="Job queue: worker threads in this process (local), or Procrastinate on PostgreSQL.",
    )
    job_workers: int = Field(2, ge=1, description="Job worker threads in `tagloop serve` / `tagloop worker`.")
    job_lease_seconds: float = Field(
        30.0, gt=0, description="A job whose worker stops renewing its lease this long is run again."
    )
    pool_score_limit: int = Field(
        20_000,
        ge=100,
        description="Most pool documents one fill of the review queue scores (a random sample of them "
        "when the pool is bigger), and most labelled documents a batch-aware strategy compares them with.",
    )
    review_order: Literal["uncertain", "oldest"] = Field(
        "uncertain",
        description="Review queue order after priority: the most uncertain prediction first "
        "(`uncertain`), or the oldest task first (`oldest`).",
    )
    review_consolidation: Literal["majority", "dawid-skene"] = Field(
        "majority",
        description="How a multi-class task's answers are consolidated: majority vote, a tie to a "
        "moderator (`majority`); or, once the classifier has enough answered history, by the "
        "reviewers' reliabilities estimated with Dawid-Skene (`dawid-skene`): a tie it settles, or a "
        "majority it overrules, with a posterior of at least `TAGLOOP_REVIEW_RELIABILITY_THRESHOLD` "
        "is decided so (consolidation `dawid_skene`), anything else as with `majority`.",
    )
    review_reliability_min_answers: int = Field(
        50,
        ge=1,
        description="Tasks with two or more answers a classifier needs before reviewer reliabilities "
        "are estimated (`dawid-skene` consolidation).",
    )
    review_reliability_threshold: float = Field(
        0.9, gt=0.5, le=1, description="Least Dawid-Skene posterior that decides a task."
    )
    review_reliability_refresh_answers: int = Field(
        200, ge=1, description="Reviewer reliabilities are estimated again after this many new answers..."
    )
    review_reliability_refresh_seconds: float = Field(
        600.0, gt=0, description="...or after this many seconds, whichever comes first."
    )
    train_jobs: int = Field(2, ge=1, description="Threads used to fit the linear models.")
    drift_psi_threshold: float = Field(
        0.2,
        gt=0,
        description="Population stability index (labels or best scores of a day's predictions against "
        "the serving version's training data) from which an endpoint's day counts as drifted and a "
        "`drift.detected` event is recorded (0.1-0.2: a moderate shift, above 0.2: a significant one).",
    )
    drift_min_count: int = Field(
        100, ge=1, description="Fewest predictions of an endpoint in a day before its drift is flagged."
    )
    monitor_seconds: float = Field(
        300.0,
        gt=0,
        description="How often a process computes the monitoring figures (the loop ticker's part, "
        "and the Prometheus gauges of /metrics).",
    )

    # ---- notifications (issue 15, notify): services/notify.py ----
    notify_allowed_targets: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="Webhook URL prefixes and e-mail `@domain`s a notification channel created over "
        "`/v1` may use, comma-separated, e.g. `https://hooks.example.com/tagloop/,@example.com`; "
        "empty: `/v1` creates none (the CLI creates any).",
    )
    notify_attempts: int = Field(
        6, ge=1, le=50, description="Attempts of a notification before it is failed."
    )
    notify_backoff_seconds: float = Field(
        30.0,
        ge=0,
        description="Wait after a notification's first failed attempt; doubled after each further one "
        "(at most an hour). Deliveries are sent by the loop ticker (TAGLOOP_LOOP_TICK_SECONDS).",
    )
    notify_timeout_seconds: float = Field(
        10.0, gt=0, le=120, description="Connect/read timeout of one webhook or SMTP attempt."
    )
    notify_keep_days: int = Field(
        30,
        ge=0,
        description="Delete delivered and failed notification deliveries this many days after their "
        "last attempt (the loop ticker checks every hour; pending ones are never deleted); 0: keep "
        "them forever.",
    )
    smtp_host: str | None = Field(None, description="SMTP server of e-mail notifications; unset: no e-mail.")
    smtp_port: int = Field(
        587, ge=1, le=65535, description="SMTP port (587 submission, 465 with SMTP_SSL, 25)."
    )
    smtp_user: str | None = Field(None, description="SMTP login user; unset: no login.")
    smtp_password: SecretStr | None = Field(None, description="SMTP login password.")
    smtp_starttls: bool = Field(
        True, description="Upgrade the SMTP connection with STARTTLS (certificate checked)."
    )
    smtp_ssl: bool = Field(
        False, description="Connect with TLS from the start (port 465) instead of STARTTLS."
    )
    smtp_from: str = Field("tagloop@localhost", description="Sender address of notification e-mails.")

    @field_validator("notify_allowed_targets", mode="before")
    @classmethod
    def _split_targets(cls, value: object) -> object:
        """``TAGLOOP_NOTIFY_ALLOWED_TARGETS`` is a comma-separated list; blanks are ignored."""
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    inbox_poll_seconds: float = Field(
        5.0,
        ge=0,
        description="How often `serve` and `worker` look for new files in the enabled inboxes "
        "(watched folders and S3 prefixes); 0: never (`tagloop inbox scan` still does).",
    )
    inbox_stable_seconds: float = Field(
        10.0,
        ge=0,
        description="An inbox file is picked up once its size and modification time (S3: ETag) stayed "
        "the same for this long across two looks, or at once when a `<name>.ready` marker is beside it.",
    )

    # ---- import profiles (issue 15) ----
    archive_max_ratio: float = Field(
        200.0,
        gt=1,
        description="An archive member (or a compressed file) that unpacks to more than this many times "
        "its compressed size is refused as a possible archive bomb (judged from 1 MiB of output on).",
    )
    archive_max_members: int = Field(
        10_000, ge=1, description="Most files in one archive read by an import profile."
    )
    archive_max_total_bytes: int = Field(
        10_000_000_000, gt=0, description="Most bytes unpacked from one archive (or compressed file)."
    )
    import_max_rows: int = Field(
        10_000_000,
        gt=0,
        description="Most rows one SQL query of an import profile may return (more: refused, never cut).",
    )
    import_query_timeout_seconds: float = Field(
        300.0, gt=0, description="Longest run of one SQL query of an import profile."
    )
    allowed_database_urls: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="Databases an import profile given over the network API may read, comma-separated "
        "URLs without password (e.g. `postgresql://reader@db.internal:5432/issues`): a profile's URL must "
        "match one's backend, host, port, database and (if given) user. SQLite files are checked against "
        "TAGLOOP_ALLOWED_DATA_URLS instead. The CLI may name any database.",
    )

    @field_validator("allowed_data_urls", "allowed_database_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        """``TAGLOOP_ALLOWED_DATA_URLS`` is a comma-separated list; blanks are ignored."""
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'tagloop.db').resolve()}"

    @cached_property
    def resolved_artifacts_url(self) -> str:
        if self.artifacts_url:
            return self.artifacts_url.rstrip("/")
        return str((self.data_dir / "artifacts").resolve())
