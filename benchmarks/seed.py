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
                store.append_batch(conn, batch(conv, stream.pk, offset, min(BATCH, points - offset), step_us))
    return str(stream.slug)


def batch(conv: model.Converter, stream_pk: int, offset: int, n: int, step_us: int) -> store.Points:
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
        stream_pk=np.full(n, stream_pk, dtype=np.int64),
    )


def row_table(engine: Any, points: int, step_us: int) -> None:
    """The same points in the per-row layout the store replaced (revision 0001's ``data`` table with
    its (stream, time) index), as ``bench_rows``: the baseline of the read benchmarks."""
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS bench_rows")
        conn.exec_driver_sql(
            "CREATE TABLE bench_rows (id BIGINT PRIMARY KEY, stream_pk INTEGER NOT NULL, ts BIGINT NOT NULL, "
            "device_timestamp BIGINT, int_value BIGINT, value DOUBLE PRECISION, type VARCHAR(3) NOT NULL, "
            "streamer_local_id BIGINT NOT NULL, dirty_ts BOOLEAN NOT NULL, status VARCHAR(3) NOT NULL)"
        )
        conn.exec_driver_sql("CREATE INDEX ix_bench_rows_stream_ts ON bench_rows (stream_pk, ts)")
    for first in range(0, points, 200_000):
        n = min(200_000, points - first)
        index = np.arange(first, first + n)
        rows = list(
            zip(
                (index + 1).tolist(),
                [1] * n,
                (START_US + index * step_us).tolist(),
                (index % 1000).tolist(),
                (index % 1000).astype(np.float64).tolist(),
                (index + 1).tolist(),
                strict=True,
            )
        )
        with engine.begin() as conn:
            cursor = conn.connection.driver_connection.cursor()
            columns = "id, stream_pk, ts, int_value, value, streamer_local_id"
            if engine.dialect.name == "postgresql":
                with cursor.copy(f"COPY bench_rows ({columns}, type, dirty_ts, status) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row((*row, "Num", False, "cln"))
            else:
                values = "?, ?, ?, ?, ?, ?, 'Num', 0, 'cln'"
                cursor.executemany(
                    f"INSERT INTO bench_rows ({columns}, type, dirty_ts, status) VALUES ({values})", rows
                )
            cursor.close()


def drop_row_table(engine: Any) -> None:
    """Remove the baseline table (it is not part of the server's schema)."""
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS bench_rows")


def read_rows(engine: Any, start: int | None = None, end: int | None = None) -> int:
    """A selection from ``bench_rows`` into numpy columns, as the server read it before the store."""
    where = "stream_pk = 1" + (f" AND ts >= {start}" if start is not None else "")
    where += f" AND ts < {end}" if end is not None else ""
    sql = (
        "SELECT ts, value, int_value, streamer_local_id, coalesce(device_timestamp, 0) "
        f"FROM bench_rows WHERE {where} ORDER BY ts, id"
    )
    dtype = np.dtype([("ts", "<i8"), ("value", "<f8"), ("int_value", "<i8"), ("sid", "<i8"), ("dts", "<i8")])
    with engine.connect() as conn:
        cursor = conn.connection.driver_connection.cursor()
        cursor.execute(sql)
        array = np.array(cursor.fetchall(), dtype=dtype)
        cursor.close()
    return len(array)


def app_client(url: str, data_dir: Any, email: str, password: str) -> tuple[Any, dict[str, str]]:
    """The server app in this process (no socket) and the headers of a logged-in user. The client
    is entered (one event loop thread for all its requests, not one per request): close it with
    ``client.__exit__(None, None, None)``."""
    from fastapi.testclient import TestClient

    from iotile_cloud.server.app import create_app

    client = TestClient(create_app(url, data_dir)).__enter__()
    token = client.post("/api/v1/auth/login/", json={"email": email, "password": password}).json()["token"]
    return client, {"Authorization": f"Token {token}"}
