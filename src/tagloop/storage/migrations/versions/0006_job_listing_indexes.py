"""job listing indexes: jobs in creation order (a job's children, the top-level jobs, the jobs
of a kind, of a version and kind)

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TOP_LEVEL = sa.text("parent_id IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_parent_id")
        batch_op.create_index("ix_jobs_parent_created", ["parent_id", "created_at", "id"], unique=False)
        batch_op.create_index(
            "ix_jobs_top_created",
            ["created_at", "id"],
            unique=False,
            postgresql_where=TOP_LEVEL,
            sqlite_where=TOP_LEVEL,
        )
        batch_op.create_index("ix_jobs_kind_created", ["kind", "created_at", "id"], unique=False)
        batch_op.create_index(
            "ix_jobs_version_created", ["version_id", "kind", "created_at", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_version_created")
        batch_op.drop_index("ix_jobs_kind_created")
        batch_op.drop_index("ix_jobs_top_created")
        batch_op.drop_index("ix_jobs_parent_created")
        batch_op.create_index("ix_jobs_parent_id", ["parent_id"], unique=False)
