"""The console's feeds beyond the plot: the live feed when writers commit out of id order, and the
Parquet download streamed row group by row group (a live server, SQLite or PostgreSQL)."""

from __future__ import annotations

import io
import time
from typing import Any

import httpx
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from iotile_cloud.server import db, points
from iotile_cloud.server.console import feeds
from iotile_cloud.testing.cloud import CloudHelper

from .conftest import USER
from .test_console import _events, fleet, signed_in  # noqa: F401  (fleet: a fixture)
from .test_rollups import SECOND, T0, _batch, output_unit


def _token(cloud: CloudHelper) -> dict[str, str]:
    answer = httpx.post(cloud.url + "/api/v1/auth/login/", json={"email": USER[0], "password": USER[1]})
    return {"Authorization": f"Token {answer.json()['token']}"}


def _stream_pk(cloud: CloudHelper, slug: str) -> int:
    with cloud.engine.connect() as conn:
        return int(conn.execute(sa.select(db.streams.c.pk).where(db.streams.c.slug == slug)).scalar_one())


def test_live_feed_sends_a_point_whose_writer_committed_after_a_later_id_was_sent(
    cloud: CloudHelper,
    fleet: dict[str, Any],  # noqa: F811
) -> None:
    """Two writers take ids in order but commit in the other order (possible on PostgreSQL): the
    lower id, committed after the higher one was sent, still arrives; nothing comes twice."""
    stream = fleet["stream"]
    pk = _stream_pk(cloud, stream)
    with cloud.engine.begin() as conn:
        first = points.allocate_ids(conn, 2)  # the first writer's id, then the second's

    def commit(point_id: int, seconds: int) -> None:
        row = {"id": point_id, "stream_pk": pk, "ts": T0 + seconds * SECOND, "value": 1.0, "int_value": 1}
        with cloud.engine.begin() as conn:
            points.append(conn, pk, points.from_rows([row]), keep_ids=True)

    headers = _token(cloud)
    with httpx.stream(
        "GET", cloud.url + f"/api/v1/stream/{stream}/live/?timeout=25", headers=headers, timeout=40
    ) as response:
        events = _events(response)
        commit(first + 1, 2)  # the second writer commits first
        event_id, data = next(events)
        assert [p["id"] for p in orjson.loads(data)] == [first + 1] and event_id == str(first + 1)
        time.sleep(3 * feeds.LIVE_POLL_SECONDS)  # the feed polls again meanwhile, finding nothing new
        commit(first, 1)  # the first writer commits after its successor was sent
        event_id, data = next(events)
        assert [p["id"] for p in orjson.loads(data)] == [first]
        assert event_id == str(first + 1)  # the highest id sent, for Last-Event-ID
        posted = httpx.post(
            cloud.url + "/api/v1/data/",
            json={"stream": stream, "timestamp": "2026-01-01T00:00:00Z", "int_value": 7},
            headers=headers,
        )
        assert posted.status_code == 201, posted.text
        _, data = next(events)
        assert [p["id"] for p in orjson.loads(data)] == [posted.json()["id"]]  # not the earlier ones again


def test_parquet_download_is_streamed_in_row_groups_and_round_trips(
    cloud: CloudHelper,
    fleet: dict[str, Any],  # noqa: F811
) -> None:
    stream = fleet["stream"]
    pk = _stream_pk(cloud, stream)
    rng = np.random.default_rng(21)
    n = 3 * feeds.PARQUET_ROW_GROUP + 12_345
    ts = T0 + np.arange(n, dtype=np.int64) * SECOND + rng.integers(0, SECOND, n)
    values = rng.normal(0, 100, n).round(3)
    nulls = rng.random(n) < 0.05
    with cloud.engine.begin() as conn:
        for part in np.array_split(np.arange(n), 7):  # several segments, several groups
            points.append_batch(conn, _batch(pk, ts[part], values[part], nulls[part], int(part[0]) + 1))
    client = signed_in(cloud.url, USER)
    answer = client.get(f"/api/v1/stream/{stream}/parquet/")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/vnd.apache.parquet"
    assert answer.headers["content-disposition"] == f'attachment; filename="{stream}.parquet"'
    parquet = pq.ParquetFile(io.BytesIO(answer.content))
    assert parquet.metadata.num_rows == n and parquet.metadata.num_row_groups >= 3
    table = parquet.read()
    to_output = output_unit(cloud, stream)
    np.testing.assert_array_equal(table["timestamp"].cast(pa.int64()).to_numpy(), ts)
    value = table["value"].to_numpy(zero_copy_only=False)
    np.testing.assert_array_equal(np.isnan(value), nulls)
    np.testing.assert_array_equal(value[~nulls], values[~nulls])
    expected_output = np.array([to_output(v) for v in values[~nulls]])
    np.testing.assert_allclose(table["output_value"].to_numpy(zero_copy_only=False)[~nulls], expected_output)
    np.testing.assert_array_equal(table["streamer_local_id"].to_numpy(), np.arange(1, n + 1))
    assert table["stream"].unique().to_pylist() == [stream]
    # The same columns as the Arrow stream of /df/, range bounds included.
    bounds = {"start": db.iso(int(ts[1000])), "end": db.iso(int(ts[n - 1000]))}
    part = pq.read_table(io.BytesIO(client.get(f"/api/v1/stream/{stream}/parquet/", params=bounds).content))
    arrow = client.get("/api/v1/df/", params={"filter": stream, "format": "arrow", **bounds})
    assert pa.ipc.open_stream(arrow.content).read_all().to_pylist() == part.to_pylist()
    assert part.num_rows == n - 2000
    # Nothing in range: a valid empty file.
    empty = client.get(
        f"/api/v1/stream/{stream}/parquet/", params={"start": "2001-01-01T00:00:00Z", "end": "2001-01-02T00:00:00Z"}
    )
    assert pq.read_table(io.BytesIO(empty.content)).num_rows == 0
