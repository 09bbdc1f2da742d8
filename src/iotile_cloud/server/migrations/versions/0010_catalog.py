"""note attachments: the attached file's id, name, time and uploader on each note

Revision ID: catalog
Revises: compact
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "catalog"
down_revision = "compact"
branch_labels = None
depends_on = None

COLUMNS = ("attachment_id", "attachment_title", "attachment_on", "attachment_by")


def upgrade() -> None:
    op.add_column("notes", sa.Column("attachment_id", sa.String(length=36), nullable=True))
    op.add_column("notes", sa.Column("attachment_title", sa.String(length=100), nullable=True))
    op.add_column("notes", sa.Column("attachment_on", sa.BigInteger(), nullable=True))
    op.add_column("notes", sa.Column("attachment_by", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notes", schema=None) as batch_op:
        for name in reversed(COLUMNS):
            batch_op.drop_column(name)
