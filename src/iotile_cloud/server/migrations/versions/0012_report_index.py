"""an index on a streamer's reports by time (report lists; ingest reads the previous report's times)

Revision ID: report_index
Revises: rollup
Create Date: 2026-12-04 21:00:00
"""

from __future__ import annotations

from alembic import op

revision = "report_index"
down_revision = "rollup"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_streamer_reports_streamer_created", "streamer_reports", ["streamer_id", "created_on"])


def downgrade() -> None:
    op.drop_index("ix_streamer_reports_streamer_created", table_name="streamer_reports")
