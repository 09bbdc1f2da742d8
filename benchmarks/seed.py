"""A database with one user, org, project and device, and N points on one stream, for the benchmarks.

The points go in through the point store's bulk append (the same segments a report makes), so even
10 million points take seconds, not minutes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sqlalchemy as sa

from iotile_cloud.server import db, model
from iotile_cloud.server import points as store
from iotile_cloud.server.routes.auth import create_user

START_US = 1_767_225_600_000_000  # 2026-01-01
BATCH = 10_000  # points a segment, as 10,000-reading reports make them


def seed_stream(engine: Any, email: str, password: str, points: int, *, step_us: int) -> str:
    """Empty the database, add the account and device, store ``points`` readings ``step_us`` apart
    on the device's 5001 stream; return the stream slug."""
    db.migrate(engine)
    now = db.now_us()
    with engine.begin() as conn:
        for table in reversed(db.metadata.sorted_tables):
            conn.execute(sa.delete(table))
        conn.execute(sa.insert(db.point_ids).values(id=1, next_id=1))
        user = create_user(conn, email=email, username="bench", password=password)
        conn.execute(
            sa.insert(db.orgs).values(id="org-bench", name="Bench", slug="bench", created_on=now, created_by=user.id)
        )
        conn.execute(sa.insert(db.memberships).values(org_id="org-bench", user_id=user.id, role="a0", created_on=now))
        project_id = "00000000-0000-0000-0000-00000000be7c"
        conn.execute(
            sa.insert(db.projects).values(
                id=project_id, gid=1, name="Bench", org_id="org-bench", created_on=now, created_by=user.id
            )
        )
        conn.execute(
            sa.insert(db.devices).values(
                id=1,
                label="bench",
                sg="water-meter-v1-1-0",
                template="x",
                org_id="org-bench",
                project_id=project_id,
                created_on=now,
                claimed_by=user.id,
                claimed_on=now,
            )
        )
        project = conn.execute(sa.select(db.projects)).one()
        device = conn.execute(sa.select(db.devices)).one()
        model.apply_sensor_graph(conn, device, project, user.id)
        stream = conn.execute(sa.select(db.streams).where(db.streams.c.slug.like("%--5001"))).one()
        conv = model.converter(conn, stream)
    for first in range(0, points, 50 * BATCH):
        with engine.begin() as conn:
            for offset in range(first, min(points, first + 50 * BATCH), BATCH):
                store.bulk_append(conn, stream.pk, batch(conv, offset, min(BATCH, points - offset), step_us))
    return str(stream.slug)


def batch(conv: model.Converter, offset: int, n: int, step_us: int) -> store.Points:
    """Readings ``offset`` to ``offset + n`` of the benchmark stream (counter values 0-999)."""
    index = np.arange(offset, offset + n, dtype=np.int64)
    raw = index % 1000
    values, kind = conv.values(raw)
    flags = store.flags_of(False, False, True, False, store.STATUS_CODE["cln"], kind == "ITR")
    return store.Points(
        ts=START_US + index * step_us,
        id=np.zeros(n, dtype=np.int64),
        streamer_local_id=index + 1,
        device_timestamp=np.zeros(n, dtype=np.int64),
        int_value=raw,
        value=values,
        flags=np.full(n, flags, dtype=np.uint8),
        stream_pk=np.zeros(n, dtype=np.int64),
    )
