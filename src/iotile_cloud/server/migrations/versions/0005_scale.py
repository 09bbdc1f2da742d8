"""counters shared by all workers

Revision ID: scale
Revises: routes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "scale"
down_revision = "routes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "counters",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("value", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_counters")),
    )


def downgrade() -> None:
    op.drop_table("counters")
