"""the learning loop: a loop (Comprehend's flywheel) per classifier with its champion and
settings, its iterations and datasets; events for notifications; pool documents (text hashes,
the task a pool document was picked into); endpoints that follow their classifier's champion
and feed its pool

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _text_hash(text: str) -> str:
    """``domain.loop.text_hash`` as it was when this revision was written."""
    return hashlib.blake2b(" ".join(text.split()).casefold().encode("utf-8"), digest_size=16).hexdigest()


def upgrade() -> None:
    op.create_table(
        "loops",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("classifier_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=True),
        sa.Column("active_version_id", sa.Integer(), nullable=True),
        sa.Column("settings", JSON_TYPE, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("data_lake_uri", sa.Text(), nullable=True),
        sa.Column("role_arn", sa.Text(), nullable=True),
        sa.Column("model_type", sa.String(length=32), nullable=True),
        sa.Column("task_config", JSON_TYPE, nullable=True),
        sa.Column("tags", JSON_TYPE, nullable=False),
        sa.Column("verified_mark", sa.Integer(), nullable=False),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ticked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["classifier_id"], ["classifiers.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["active_version_id"],
            ["model_versions.id"],
            name="fk_loops_active_version_id",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("classifier_id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "iterations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("loop_id", sa.Integer(), nullable=False),
        sa.Column("classifier_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=True),
        sa.Column("champion_version_id", sa.Integer(), nullable=True),
        sa.Column("challenger_version_id", sa.Integer(), nullable=True),
        sa.Column("rule", JSON_TYPE, nullable=False),
        sa.Column("champion_metrics", JSON_TYPE, nullable=True),
        sa.Column("challenger_metrics", JSON_TYPE, nullable=True),
        sa.Column("per_label", JSON_TYPE, nullable=True),
        sa.Column("documents", JSON_TYPE, nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["loop_id"], ["loops.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["classifier_id"], ["classifiers.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["champion_version_id"],
            ["model_versions.id"],
            name="fk_iterations_champion_version_id",
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["challenger_version_id"],
            ["model_versions.id"],
            name="fk_iterations_challenger_version_id",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("loop_id", "name", name="uq_iterations_name"),
        sa.UniqueConstraint("loop_id", "number", name="uq_iterations_number"),
    )
    with op.batch_alter_table("iterations", schema=None) as batch_op:
        batch_op.create_index("ix_iterations_loop_created", ["loop_id", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_iterations_classifier_id"), ["classifier_id"], unique=False)

    op.create_table(
        "loop_datasets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("loop_id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("documents", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["loop_id"], ["loops.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("loop_id", "name", name="uq_loop_datasets_name"),
    )
    op.create_table(
        "events",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("classifier_id", sa.Integer(), nullable=True),
        sa.Column("endpoint", sa.String(length=63), nullable=True),
        sa.Column("payload", JSON_TYPE, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["classifier_id"], ["classifiers.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_created", ["created_at"], unique=False)
        batch_op.create_index("ix_events_kind_created", ["kind", "created_at"], unique=False)

    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("text_hash", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("pool_task_id", sa.String(length=36), nullable=True))
        batch_op.create_index("ix_documents_classifier_hash", ["classifier_id", "text_hash"], unique=False)
        batch_op.create_index("ix_documents_pool_task", ["pool_task_id"], unique=False)
        batch_op.create_foreign_key(
            "fk_documents_pool_task_id", "review_tasks", ["pool_task_id"], ["id"], ondelete="SET NULL"
        )
    # the documents outside any version's dataset (verified ones) get their hash now
    documents = sa.table(
        "documents",
        sa.column("id", sa.Integer()),
        sa.column("text", sa.Text()),
        sa.column("dataset_id", sa.Integer()),
        sa.column("text_hash", sa.String()),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(documents.c.id, documents.c.text).where(documents.c.dataset_id.is_(None))
    ).all()
    for start in range(0, len(rows), 1_000):
        connection.execute(
            documents.update()
            .where(documents.c.id == sa.bindparam("doc_id"))
            .values(text_hash=sa.bindparam("hash")),
            [{"doc_id": id_, "hash": _text_hash(text)} for id_, text in rows[start : start + 1_000]],
        )

    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("follows", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("pool_rate", sa.Double(), server_default=sa.text("0"), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.drop_column("pool_rate")
        batch_op.drop_column("follows")

    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_constraint("fk_documents_pool_task_id", type_="foreignkey")
        batch_op.drop_index("ix_documents_pool_task")
        batch_op.drop_index("ix_documents_classifier_hash")
        batch_op.drop_column("pool_task_id")
        batch_op.drop_column("text_hash")

    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_kind_created")
        batch_op.drop_index("ix_events_created")
    op.drop_table("events")
    op.drop_table("loop_datasets")
    with op.batch_alter_table("iterations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_iterations_classifier_id"))
        batch_op.drop_index("ix_iterations_loop_created")
    op.drop_table("iterations")
    op.drop_table("loops")
