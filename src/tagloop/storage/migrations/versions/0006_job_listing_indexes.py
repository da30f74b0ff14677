"""job listing indexes: jobs newest first (all, or of one kind), and the jobs of a version

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index("ix_jobs_created", ["created_at", "id"], unique=False)
        batch_op.create_index("ix_jobs_kind_created", ["kind", "created_at", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_jobs_version_id"), ["version_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_version_id"))
        batch_op.drop_index("ix_jobs_kind_created")
        batch_op.drop_index("ix_jobs_created")
