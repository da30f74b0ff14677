"""workers and prediction reads: the processes that run jobs announce themselves (workers);
a logged prediction may be kept without its text, records its best label, and is found by age

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# the best label of the rows logged before: the first entry of the result, as ClassifyDocument answers
TOP_LABEL = {
    "sqlite": "COALESCE(json_extract(result, '$.Classes[0].Name'), json_extract(result, '$.Labels[0].Name'))",
    "postgresql": "COALESCE(result->'Classes'->0->>'Name', result->'Labels'->0->>'Name')",
}


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_workers_last_seen"), ["last_seen"], unique=False)

    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("top_label", sa.Text(), nullable=True))
        batch_op.alter_column("text", existing_type=sa.Text(), nullable=True)
        batch_op.create_index("ix_predictions_created", ["created_at"], unique=False)
    dialect = op.get_bind().dialect.name
    if dialect in TOP_LABEL:
        op.execute(f"UPDATE predictions SET top_label = {TOP_LABEL[dialect]}")


def downgrade() -> None:
    op.execute("UPDATE predictions SET text = '' WHERE text IS NULL")
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.drop_index("ix_predictions_created")
        batch_op.alter_column("text", existing_type=sa.Text(), nullable=False)
        batch_op.drop_column("top_label")

    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_workers_last_seen"))
    op.drop_table("workers")
