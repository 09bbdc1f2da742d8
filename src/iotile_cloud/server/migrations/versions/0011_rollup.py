"""per-bucket rollups beside each segment's payload (the plot feed reads them instead of the points)

Revision ID: rollup
Revises: catalog
Create Date: 2026-11-26 10:00:00

Existing segments get their rollup computed from their payload, a few hundred segments a query
(in id order, so memory stays bounded whatever the size of the store).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from iotile_cloud.server import points, rollups

revision = "rollup"
down_revision = "catalog"
branch_labels = None
depends_on = None

BATCH = 256


def upgrade() -> None:
    conn = op.get_bind()
    # SQLite keeps a row's columns in order and reaches a column behind a large value by walking that
    # value's overflow pages: the rollup goes before the payload (the table is rebuilt once), so the
    # plot reads it without touching the payload. PostgreSQL stores large values apart (TOAST).
    column = sa.Column("rollup", sa.LargeBinary(), nullable=True)
    if conn.dialect.name == "sqlite":
        with op.batch_alter_table("segments", schema=None, recreate="always") as batch_op:
            batch_op.add_column(column, insert_before="payload")
    else:
        op.add_column("segments", column)

    segments = sa.table("segments", sa.column("id"), sa.column("stream_pk"), sa.column("payload"), sa.column("rollup"))
    after = -1
    while True:
        batch = conn.execute(
            sa.select(segments.c.id, segments.c.stream_pk, segments.c.payload)
            .where(segments.c.id > after)
            .order_by(segments.c.id)
            .limit(BATCH)
        ).all()
        if not batch:
            break
        summaries = []
        for segment in batch:
            stored = points.decode(segment.payload, segment.stream_pk)
            summary = rollups.summarise(stored.ts, stored.value, stored.nulls(points.VALUE_NULL))
            summaries.append({"segment_id": segment.id, "summary": summary})
        conn.execute(
            sa.update(segments)
            .where(segments.c.id == sa.bindparam("segment_id"))
            .values(rollup=sa.bindparam("summary")),
            summaries,
        )
        after = batch[-1].id


def downgrade() -> None:
    with op.batch_alter_table("segments", schema=None) as batch_op:
        batch_op.drop_column("rollup")
