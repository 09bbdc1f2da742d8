"""background compaction: a partial index on the small segments it merges

Revision ID: compact
Revises: store
Create Date: 2026-11-25 16:00:00

Writes no longer merge small batches into stored segments; a server's background pass does
(``points.compact``), finding the streams to work on through this index.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "compact"
down_revision = "store"
branch_labels = None
depends_on = None

SMALL_SEGMENT = 1_024  # db.SMALL_SEGMENT when this revision was written


def upgrade() -> None:
    small = sa.text(f"count < {SMALL_SEGMENT}")
    op.create_index("ix_segments_small", "segments", ["stream_pk"], sqlite_where=small, postgresql_where=small)


def downgrade() -> None:
    op.drop_index("ix_segments_small", table_name="segments")
