"""human review: review tasks and their answers (A2I's human loops), verified documents that
point at their task, a routing policy per endpoint, A2I task templates and flow definitions,
and the web UI's users and sessions

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "human_task_uis",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tags", JSON_TYPE, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "flow_definitions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("task_ui_id", sa.Integer(), nullable=True),
        sa.Column("classifier_id", sa.Integer(), nullable=True),
        sa.Column("labels", JSON_TYPE, nullable=False),
        sa.Column("title", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("task_count", sa.Integer(), nullable=False),
        sa.Column("availability_seconds", sa.Integer(), nullable=False),
        sa.Column("time_limit_seconds", sa.Integer(), nullable=False),
        sa.Column("output_path", sa.Text(), nullable=False),
        sa.Column("role_arn", sa.Text(), nullable=True),
        sa.Column("config", JSON_TYPE, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["classifier_id"], ["classifiers.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["task_ui_id"], ["human_task_uis.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "web_sessions",
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_sha256"),
    )
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_web_sessions_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_web_sessions_user_id"), ["user_id"], unique=False)

    op.create_table(
        "review_tasks",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("classifier_id", sa.Integer(), nullable=True),
        sa.Column("endpoint", sa.String(length=63), nullable=True),
        sa.Column("version_id", sa.Integer(), nullable=True),
        sa.Column("prediction_id", sa.String(length=36), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("choices", JSON_TYPE, nullable=False),
        sa.Column("prediction", JSON_TYPE, nullable=True),
        sa.Column("reason", sa.String(length=24), nullable=False),
        sa.Column("priority", sa.Double(), nullable=False),
        sa.Column("uncertainty", sa.Double(), nullable=False),
        sa.Column("oldness", sa.Double(), nullable=False),
        sa.Column("required", sa.Integer(), nullable=False),
        sa.Column("answered", sa.Integer(), nullable=False),
        sa.Column("holders", sa.Integer(), nullable=False),
        sa.Column("lease_seconds", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("queue", sa.String(length=16), nullable=True),
        sa.Column("feedback", JSON_TYPE, nullable=True),
        sa.Column("final_labels", JSON_TYPE, nullable=True),
        sa.Column("consolidation", sa.String(length=24), nullable=True),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("loop_name", sa.String(length=63), nullable=True),
        sa.Column("flow_definition_id", sa.Integer(), nullable=True),
        sa.Column("input_content", JSON_TYPE, nullable=True),
        sa.Column("output_uri", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["classifier_id"], ["classifiers.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["flow_definition_id"],
            ["flow_definitions.id"],
            name="fk_review_tasks_flow_definition_id",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["version_id"], ["model_versions.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("loop_name"),
    )
    with op.batch_alter_table("review_tasks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_review_tasks_classifier_created", ["classifier_id", "created_at"], unique=False
        )
        batch_op.create_index("ix_review_tasks_oldest", ["queue", "priority", "oldness"], unique=False)
        batch_op.create_index("ix_review_tasks_prediction", ["prediction_id"], unique=False)
        batch_op.create_index("ix_review_tasks_status_expires", ["status", "expires_at"], unique=False)
        batch_op.create_index("ix_review_tasks_uncertain", ["queue", "priority", "uncertainty"], unique=False)

    op.create_table(
        "review_answers",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("reviewer", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("labels", JSON_TYPE, nullable=True),
        sa.Column("answer_content", JSON_TYPE, nullable=True),
        sa.Column("accepted", sa.Boolean(), nullable=True),
        sa.Column("time_spent", sa.Double(), nullable=True),
        sa.Column("leased_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["task_id"], ["review_tasks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("task_id", "reviewer", name="uq_review_answers_task_reviewer"),
    )
    with op.batch_alter_table("review_answers", schema=None) as batch_op:
        batch_op.create_index(
            "ix_review_answers_reviewer_status", ["reviewer", "status", "answered_at"], unique=False
        )
        batch_op.create_index(
            "ix_review_answers_status_leased_until", ["status", "leased_until"], unique=False
        )

    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("review_task_id", sa.String(length=36), nullable=True))
        batch_op.create_index("ix_documents_classifier_origin", ["classifier_id", "origin"], unique=False)
        batch_op.create_unique_constraint("uq_documents_review_task_id", ["review_task_id"])
        batch_op.create_foreign_key(
            "fk_documents_review_task_id", "review_tasks", ["review_task_id"], ["id"], ondelete="SET NULL"
        )

    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("routing", JSON_TYPE, nullable=True))


def downgrade() -> None:

    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.drop_column("routing")

    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_constraint("fk_documents_review_task_id", type_="foreignkey")
        batch_op.drop_constraint("uq_documents_review_task_id", type_="unique")
        batch_op.drop_index("ix_documents_classifier_origin")
        batch_op.drop_column("review_task_id")

    with op.batch_alter_table("review_answers", schema=None) as batch_op:
        batch_op.drop_index("ix_review_answers_status_leased_until")
        batch_op.drop_index("ix_review_answers_reviewer_status")

    op.drop_table("review_answers")
    with op.batch_alter_table("review_tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_review_tasks_uncertain")
        batch_op.drop_index("ix_review_tasks_status_expires")
        batch_op.drop_index("ix_review_tasks_prediction")
        batch_op.drop_index("ix_review_tasks_oldest")
        batch_op.drop_index("ix_review_tasks_classifier_created")

    op.drop_table("review_tasks")
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_sessions_user_id"))
        batch_op.drop_index(batch_op.f("ix_web_sessions_expires_at"))

    op.drop_table("web_sessions")
    op.drop_table("flow_definitions")
    op.drop_table("users")
    op.drop_table("human_task_uis")
