"""stream data as columnar segments: the per-point ``data`` table becomes ``segments``

Revision ID: store
Revises: sec
Create Date: 2026-11-25 12:40:00

Existing points move in place, stream by stream in time order, into segments of at most
``points.MAX_SEGMENT`` points, keeping their ids; the id counter starts after the highest id.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from iotile_cloud.server import points

revision = "store"
down_revision = "sec"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ROW_FIELDS = (
    "id",
    "stream_pk",
    "ts",
    "device_timestamp",
    "int_value",
    "value",
    "type",
    "streamer_local_id",
    "dirty_ts",
    "status",
)


def _data_table() -> sa.Table:
    return sa.Table(
        "data",
        sa.MetaData(),
        sa.Column("id", BigId, primary_key=True),
        sa.Column("stream_pk", sa.Integer, nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("device_timestamp", sa.BigInteger, nullable=True),
        sa.Column("int_value", sa.BigInteger, nullable=True),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("type", sa.String(3), nullable=False, server_default="Num"),
        sa.Column("streamer_local_id", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("dirty_ts", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("status", sa.String(3), nullable=False, server_default="unk"),
    )


def upgrade() -> None:
    segments = op.create_table(
        "segments",
        sa.Column("id", BigId, nullable=False),
        sa.Column("stream_pk", sa.Integer(), nullable=False),
        sa.Column("ts_min", sa.BigInteger(), nullable=False),
        sa.Column("ts_max", sa.BigInteger(), nullable=False),
        sa.Column("id_min", sa.BigInteger(), nullable=False),
        sa.Column("id_max", sa.BigInteger(), nullable=False),
        sa.Column("sid_min", sa.BigInteger(), nullable=False),
        sa.Column("sid_max", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["stream_pk"], ["streams.pk"], name=op.f("fk_segments_stream_pk_streams"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
    )
    with op.batch_alter_table("segments", schema=None) as batch_op:
        batch_op.create_index("ix_segments_stream_ts", ["stream_pk", "ts_min"], unique=False)
        batch_op.create_index("ix_segments_stream_ts_max", ["stream_pk", "ts_max"], unique=False)
        batch_op.create_index("ix_segments_id", ["id_min", "id_max"], unique=False)
    counter = op.create_table(
        "point_ids",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("next_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_point_ids")),
    )

    conn = op.get_bind()
    data = _data_table()
    columns = [data.c[name] for name in ROW_FIELDS]
    stream_pks = conn.execute(sa.select(data.c.stream_pk).distinct()).scalars().all()
    for pk in stream_pks:
        rows = conn.execute(sa.select(*columns).where(data.c.stream_pk == pk).order_by(data.c.ts, data.c.id)).all()
        moved = points.from_rows([row._asdict() for row in rows])
        for start in range(0, len(moved), points.MAX_SEGMENT):
            part = moved.take(slice(start, start + points.MAX_SEGMENT))
            fields = points.segment_fields(part)
            fields.pop("rollup", None)  # a later column (revision "rollup" fills it)
            conn.execute(sa.insert(segments).values(stream_pk=pk, **fields))
    top = conn.execute(sa.select(sa.func.coalesce(sa.func.max(data.c.id), 0))).scalar_one()
    conn.execute(sa.insert(counter).values(id=1, next_id=int(top) + 1))

    with op.batch_alter_table("data", schema=None) as batch_op:
        batch_op.drop_index("ix_data_stream_ts")
    op.drop_table("data")


def downgrade() -> None:
    op.create_table(
        "data",
        sa.Column("id", BigId, nullable=False),
        sa.Column("stream_pk", sa.Integer(), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("device_timestamp", sa.BigInteger(), nullable=True),
        sa.Column("int_value", sa.BigInteger(), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("type", sa.String(length=3), server_default="Num", nullable=False),
        sa.Column("streamer_local_id", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("dirty_ts", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("status", sa.String(length=3), server_default="unk", nullable=False),
        sa.ForeignKeyConstraint(
            ["stream_pk"], ["streams.pk"], name=op.f("fk_data_stream_pk_streams"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data")),
    )
    with op.batch_alter_table("data", schema=None) as batch_op:
        batch_op.create_index("ix_data_stream_ts", ["stream_pk", "ts"], unique=False)

    conn = op.get_bind()
    data = _data_table()
    segments = sa.table("segments", sa.column("stream_pk"), sa.column("payload"), sa.column("id"))
    for segment in conn.execute(sa.select(segments.c.stream_pk, segments.c.payload).order_by(segments.c.id)):
        lists = points.decode(segment.payload, segment.stream_pk).as_lists()
        rows = [
            dict(zip(ROW_FIELDS, values, strict=True)) for values in zip(*(lists[f] for f in ROW_FIELDS), strict=True)
        ]
        conn.execute(sa.insert(data), rows)

    with op.batch_alter_table("segments", schema=None) as batch_op:
        batch_op.drop_index("ix_segments_id")
        batch_op.drop_index("ix_segments_stream_ts_max")
        batch_op.drop_index("ix_segments_stream_ts")
    op.drop_table("segments")
    op.drop_table("point_ids")
