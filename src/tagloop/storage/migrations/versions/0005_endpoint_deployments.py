"""endpoint deployments: the version an endpoint is moving to, and why a deployment failed

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("desired_version_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("message", sa.Text(), nullable=True))
        batch_op.create_foreign_key(
            "fk_endpoints_desired_version_id",
            "model_versions",
            ["desired_version_id"],
            ["id"],
            ondelete="RESTRICT",
        )


def downgrade() -> None:
    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.drop_constraint("fk_endpoints_desired_version_id", type_="foreignkey")
        batch_op.drop_column("message")
        batch_op.drop_column("desired_version_id")
