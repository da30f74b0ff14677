"""the pipeline: import profiles per classifier, inboxes (watched folders or S3 prefixes) and
the files seen in them, notification channels (webhooks, e-mail) and their delivery log; the Comprehend API's
ClientRequestTokens (a retried create answers as the first did); an endpoint's pool watermark
on its own row (no longer an event per sampling pass)

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "import_profiles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("classifier_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("spec", JSON_TYPE, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["classifier_id"], ["classifiers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("classifier_id", "name", name="uq_import_profiles_name"),
    )
    op.create_table(
        "inboxes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("classifier_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("profile_id", sa.Integer(), nullable=True),
        sa.Column("settings", JSON_TYPE, nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scanned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["classifier_id"], ["classifiers.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["import_profiles.id"], ondelete="SET NULL", name="fk_inboxes_profile_id"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", name="uq_inboxes_name"),
        sa.UniqueConstraint("url", name="uq_inboxes_url"),
    )
    with op.batch_alter_table("inboxes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_inboxes_classifier_id"), ["classifier_id"], unique=False)
    op.create_table(
        "inbox_files",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("inbox_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=128), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stable_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("job_id", sa.String(length=36), nullable=True),
        sa.Column("version_id", sa.Integer(), nullable=True),
        sa.Column("endpoint", sa.String(length=63), nullable=True),
        sa.Column("moved_to", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("report", JSON_TYPE, nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["inbox_id"], ["inboxes.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["version_id"], ["model_versions.id"], ondelete="SET NULL", name="fk_inbox_files_version_id"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("inbox_id", "name", "fingerprint", name="uq_inbox_files_seen"),
    )
    with op.batch_alter_table("inbox_files", schema=None) as batch_op:
        batch_op.create_index("ix_inbox_files_inbox_state", ["inbox_id", "state"], unique=False)
    op.create_table(
        "channels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=True),
        sa.Column("events", JSON_TYPE, nullable=False),
        sa.Column("classifier_id", sa.Integer(), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("after_event_id", BIG_ID, server_default=sa.text("0"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["classifier_id"], ["classifiers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", name="uq_channels_name"),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("event_id", BIG_ID, nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("payload", JSON_TYPE, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["channel_id"], ["channels.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], ondelete="CASCADE", name="fk_deliveries_event_id"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("channel_id", "event_id", name="uq_deliveries_event"),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_deliveries_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index("ix_deliveries_channel_created", ["channel_id", "created_at"], unique=False)
    op.create_table(
        "request_tokens",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("caller", sa.String(length=128), nullable=False),
        sa.Column("operation", sa.String(length=64), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("response", JSON_TYPE, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("caller", "operation", "token", name="uq_request_tokens"),
    )
    with op.batch_alter_table("request_tokens", schema=None) as batch_op:
        batch_op.create_index("ix_request_tokens_created", ["created_at"], unique=False)

    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pool_through_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("pool_through_id", sa.String(length=36), nullable=True))
    _move_pool_watermarks()


def _move_pool_watermarks() -> None:
    """Each endpoint's newest ``pool.fed`` / ``pool.rate`` event's ``through`` onto its row;
    the ``pool.fed`` events themselves go (they were only the watermark)."""
    connection = op.get_bind()
    events = sa.table(
        "events",
        sa.column("id", sa.Integer()),
        sa.column("kind", sa.String()),
        sa.column("endpoint", sa.String()),
        sa.column("payload", JSON_TYPE),
    )
    endpoints = sa.table(
        "endpoints",
        sa.column("name", sa.String()),
        sa.column("pool_through_at", sa.DateTime(timezone=True)),
        sa.column("pool_through_id", sa.String()),
    )
    newest = (
        sa.select(events.c.endpoint, events.c.payload)
        .where(events.c.kind.in_(("pool.fed", "pool.rate")), events.c.endpoint.is_not(None))
        .order_by(events.c.id)
    )
    marks: dict[str, dict] = {}
    for endpoint, payload in connection.execute(newest):
        if isinstance(payload, dict) and payload.get("through"):
            marks[endpoint] = payload  # the last one read is the newest
    for endpoint, payload in marks.items():
        through = datetime.fromisoformat(payload["through"])
        if through.tzinfo is None:
            through = through.replace(tzinfo=UTC)
        if connection.dialect.name == "sqlite":
            through = through.astimezone(UTC).replace(tzinfo=None)
        connection.execute(
            endpoints.update()
            .where(endpoints.c.name == endpoint)
            .values(pool_through_at=through, pool_through_id=str(payload.get("through_id") or ""))
        )
    connection.execute(events.delete().where(events.c.kind == "pool.fed"))


def downgrade() -> None:
    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.drop_column("pool_through_id")
        batch_op.drop_column("pool_through_at")
    with op.batch_alter_table("request_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_request_tokens_created")
    op.drop_table("request_tokens")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_channel_created")
        batch_op.drop_index("ix_deliveries_due")
    op.drop_table("deliveries")
    op.drop_table("channels")
    with op.batch_alter_table("inbox_files", schema=None) as batch_op:
        batch_op.drop_index("ix_inbox_files_inbox_state")
    op.drop_table("inbox_files")
    with op.batch_alter_table("inboxes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inboxes_classifier_id"))
    op.drop_table("inboxes")
    op.drop_table("import_profiles")
