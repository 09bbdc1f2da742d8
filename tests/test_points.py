"""The point store: the segment codec, selections against a plain numpy reference, per-point edits,
merging of small batches, and the in-place migration of a database made at revision 0001."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

from iotile_cloud.api.connection import Api
from iotile_cloud.api.exceptions import HttpNotFoundError
from iotile_cloud.server import db, points
from iotile_cloud.testing.cloud import CloudHelper

from .conftest import USER
from .test_migrations import _config

DAY_US = 86_400_000_000


def make_points(
    rng: np.random.Generator, n: int, *, t0: int = 1_700_000_000_000_000, step: int = 10_000_000
) -> points.Points:
    """Points with every kind of column: regular and jittered times, nulls, fractions, all statuses."""
    jitter = rng.integers(0, 3, n) * (rng.random(n) < 0.3)
    int_null = rng.random(n) < 0.1
    return points.Points(
        ts=t0 + np.arange(n, dtype=np.int64) * step + jitter,
        id=np.zeros(n, dtype=np.int64),
        streamer_local_id=np.arange(1, n + 1, dtype=np.int64),
        device_timestamp=np.where(rng.random(n) < 0.2, 0, rng.integers(0, 1 << 40, n)),
        int_value=np.where(int_null, 0, rng.integers(-(1 << 62), 1 << 62, n)),
        value=np.where(int_null, rng.random(n), rng.integers(0, 100, n).astype(np.float64)),
        flags=points.flags_of(
            False, int_null, rng.random(n) < 0.2, rng.random(n) < 0.5, rng.integers(0, 4, n), int_null
        ),
        stream_pk=np.zeros(n, dtype=np.int64),
    )


def same(a: points.Points, b: points.Points) -> None:
    for name in (*points.FIELDS, "stream_pk"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@pytest.mark.parametrize("n", [0, 1, 2, 7, 5000])
def test_codec_round_trip(n: int) -> None:
    original = make_points(np.random.default_rng(n), n)
    original.id = np.arange(n, dtype=np.int64) + 40
    same(points.decode(points.encode(original), 0), original)


def test_codec_chooses_compact_encodings() -> None:
    n = 10_000
    regular = points.Points(
        ts=np.arange(n, dtype=np.int64) * 1_000_000,
        id=np.arange(n, dtype=np.int64) + 1,
        streamer_local_id=np.arange(n, dtype=np.int64) + 1,
        device_timestamp=np.arange(n, dtype=np.int64),
        int_value=np.arange(n, dtype=np.int64) % 50,
        value=(np.arange(n) % 50).astype(np.float64),
        flags=np.full(n, points.STATUS_CODE["cln"] << points.STATUS_SHIFT, dtype=np.uint8),
        stream_pk=np.zeros(n, dtype=np.int64),
    )
    payload = points.encode(regular)
    assert len(payload) < n  # under one byte a point, against 49 bytes a point unencoded
    same(points.decode(payload, 0), regular)
    # Extreme values: deltas overflow int64 and wrap, and still decode exactly.
    extreme = make_points(np.random.default_rng(1), 3)
    extreme.int_value = np.array([np.iinfo(np.int64).min, np.iinfo(np.int64).max, 0], dtype=np.int64)
    same(points.decode(points.encode(extreme), 0), extreme)


@pytest.fixture(autouse=True)
def _layout_held(cloud: CloudHelper) -> Iterator[None]:
    """These tests look at the segment layout: the server's background compaction waits meanwhile
    (the tests call points.compact themselves)."""
    with cloud.compaction_paused():
        yield


@pytest.fixture
def stream_pks(cloud: CloudHelper) -> list[int]:
    project_id, _ = cloud.quick_add_project()
    device = cloud.quick_add_device(project_id)
    with cloud.engine.connect() as conn:
        device_id = int(device[3:].replace("-", ""), 16)
        return list(conn.execute(sa.select(db.streams.c.pk).where(db.streams.c.device_id == device_id)).scalars())[:2]


def reference(stored: points.Points, query: points.Query) -> points.Points:
    """The query answered by brute force over every stored point."""
    keep = np.isin(stored.stream_pk, list(query.stream_pks))
    mask = query.mask(stored)
    if mask is not None:
        keep &= mask
    chosen = stored.take(keep)
    chosen = chosen.take(np.lexsort((chosen.id, chosen.ts)))
    if query.lastn is not None:
        chosen = chosen.take(slice(max(0, len(chosen) - query.lastn), None))
    return chosen


def test_selections_match_a_brute_force_reference(cloud: CloudHelper, stream_pks: list[int]) -> None:
    rng = np.random.default_rng(7)
    first, second = stream_pks
    batches = []
    with cloud.engine.begin() as conn:
        # In order, late (overlapping earlier batches), single points and a large batch.
        for pk, n, t0 in [
            (first, 3000, 0),
            (first, 3000, 30_000 * 1_000_000),
            (first, 2000, 10_000 * 1_000_000),
            (second, 5000, 0),
            (first, 1, 5_000_000),
            (first, 1, 5_000_000),
            (second, 70_000, 50_000 * 1_000_000),
        ]:
            batch = make_points(rng, n, t0=t0 + 1_700_000_000_000_000, step=1_000_000)
            batch.stream_pk[:] = pk
            points.append_batch(conn, batch)
            batches.append(batch)
    stored = points.Points.concat(batches)
    assert len(np.unique(stored.id)) == len(stored)  # every point has its own id
    t0 = 1_700_000_000_000_000
    queries = [
        points.Query([first]),
        points.Query([first, second]),
        points.Query([first], start=t0 + 4_000_000_000, end=t0 + 12_000_000_000),
        points.Query([first, second], sid_min=100, sid_max=2500),
        points.Query([first], lastn=10),
        points.Query([first, second], lastn=71_000),
        points.Query([second], start=t0 + 60_000_000_000, lastn=500),
        points.Query([first], start=t0 + 10**15),
    ]

    def check_every_query() -> None:
        with cloud.engine.connect() as conn:
            for query in queries:
                expected = reference(stored, query)
                selection = points.select(conn, query)
                assert selection.count() == len(expected), query
                same(selection.all(), expected)
                for offset, limit in ((0, 100), (2999, 10), (len(expected) - 5, 100)):
                    same(
                        points.select(conn, query).page(max(offset, 0), limit),
                        expected.take(slice(max(offset, 0), max(offset, 0) + limit)),
                    )
            assert points.counts(conn, [first, second]) == {first: 8002, second: 75_000}

    def sizes(pk: int) -> list[int]:
        with cloud.engine.connect() as conn:
            segments = conn.execute(sa.select(db.segments.c.stream_pk, db.segments.c.count)).all()
        return sorted(c for stream_pk, c in segments if stream_pk == pk)

    check_every_query()
    # Writes store each batch as it comes (the large one split in two), the single points too.
    assert sizes(second) == [4464, 5000, 65_536]
    assert sizes(first) == [1, 1, 2000, 3000, 3000]
    # Compaction merges the late single points into the segment of their time; answers stay the same.
    assert points.compact_all(cloud.engine) == 2
    assert sizes(first) == [2000, 3000, 3002] and sizes(second) == [4464, 5000, 65_536]
    check_every_query()
    assert points.compact_all(cloud.engine) == 0  # nothing left to merge


def test_compaction_merges_runs_of_small_segments(cloud: CloudHelper, stream_pks: list[int]) -> None:
    """Single POSTs leave one segment each; a pass merges them in runs of at most MERGE_LIMIT points,
    keeping ids, order and values; a stream with one small segment is not even visited."""
    first, second = stream_pks
    rng = np.random.default_rng(11)
    with cloud.engine.begin() as conn:
        singles = [make_points(rng, 1, t0=1_700_000_000_000_000 + i * 1_000_000) for i in range(5000)]
        for single in singles:
            single.stream_pk[:] = first
            points.append_batch(conn, single)
        lone = make_points(rng, 10)
        lone.stream_pk[:] = second
        points.append_batch(conn, lone)
    stored = points.Points.concat(singles)
    with cloud.engine.connect() as conn:
        assert points.streams_to_compact(conn) == [first]
    assert points.compact_all(cloud.engine) == 5000 - 2
    with cloud.engine.connect() as conn:
        sizes = conn.execute(sa.select(db.segments.c.count).where(db.segments.c.stream_pk == first)).scalars()
        assert sorted(sizes) == [904, points.MERGE_LIMIT]
        same(points.select(conn, points.Query([first])).all(), stored)
        assert points.streams_to_compact(conn) == []
    assert points.merge_plan([4096, 1, 4096, 1]) == [[0, 1], [2, 3]]
    assert points.merge_plan([points.MAX_SEGMENT, 1, points.MAX_SEGMENT]) == []


def test_per_point_edits_keep_ids_and_order(cloud: CloudHelper, stream_pks: list[int]) -> None:
    first, second = stream_pks
    rng = np.random.default_rng(3)
    with cloud.engine.begin() as conn:
        batch = make_points(rng, 2000)
        batch.stream_pk[:] = first
        ids = points.append_batch(conn, batch).tolist()
    target = ids[1000]
    with cloud.engine.begin() as conn:
        located = points.find(conn, target)
        assert located is not None and located.stream_pk == first
        row = located.row()
        assert row["id"] == target and row["ts"] == int(batch.ts[1000])
        moved = points.replace(conn, located, second, {**row, "ts": 5, "int_value": 42, "value": 42.0, "type": "Num"})
        assert moved["id"] == target and moved["int_value"] == 42
    with cloud.engine.begin() as conn:
        again = points.find(conn, target)
        assert again is not None and again.stream_pk == second and again.row()["ts"] == 5
        assert points.counts(conn, [first, second]) == {first: 1999, second: 1}
        points.delete(conn, again)
        assert points.find(conn, target) is None
        assert points.counts(conn, [first, second]) == {first: 1999}
        assert points.find(conn, ids[-1] + 1) is None


def test_trim_newer_and_buckets_match_numpy(cloud: CloudHelper, stream_pks: list[int]) -> None:
    """The device trim, the live feed's "points after id X" and the plot's buckets against the same
    computations on the plain arrays, over several segments (one crossing each trim bound)."""
    first, second = stream_pks
    rng = np.random.default_rng(5)
    t0, step = 1_700_000_000_000_000, 1_000_000
    with cloud.engine.begin() as conn:
        batches = []
        for pk, n, offset in [(first, 3000, 0), (first, 3000, 3000), (second, 500, 0), (first, 2000, 6000)]:
            batch = make_points(rng, n, t0=t0 + offset * step, step=step)
            batch.value[rng.random(n) < 0.05] = 0.0
            batch.flags[rng.random(n) < 0.05] |= points.VALUE_NULL  # some values null
            batch.stream_pk[:] = pk
            points.append_batch(conn, batch)
            batches.append(batch)
    stored = points.Points.concat(batches)
    mine = stored.take(stored.stream_pk == first).in_order()
    with cloud.engine.connect() as conn:
        selection = points.select(conn, points.Query([first]))
        size = 8000 * step // 37 + 1
        index, times, lows, highs, counts = selection.buckets(int(mine.ts[0]), size, 37)
        slot = (mine.ts - mine.ts[0]) // size
        valued = ~mine.nulls(points.VALUE_NULL)
        for i, b in enumerate(index.tolist()):
            in_bucket = slot == b
            assert counts[i] == in_bucket.sum() and times[i] == mine.ts[in_bucket].min()
            values = mine.value[in_bucket & valued]
            assert (lows[i], highs[i]) == (values.min(), values.max())
        assert counts.sum() == len(mine)
        after = int(np.sort(stored.id)[-2500])
        newer = points.newer(conn, first, after, 100)
        expected_ids = np.sort(mine.id[mine.id > after])[:100]
        np.testing.assert_array_equal(newer.id, expected_ids)
        assert points.newest_id(conn, first) == int(mine.id.max()) and points.newest_id(conn, -1) == 0
    start, end = t0 + 1500 * step, t0 + 6500 * step
    with cloud.engine.begin() as conn:
        points.trim(conn, [first], start, end)
    with cloud.engine.connect() as conn:
        kept = mine.take((mine.ts >= start) & (mine.ts <= end))
        same(points.select(conn, points.Query([first])).all(), kept)
        assert points.counts(conn, [second]) == {second: 500}  # other streams untouched


def test_migration_moves_rows_into_segments_and_back(tmp_path: Path) -> None:
    """A database at the revision before ``store`` with points: upgraded in place, every point reads back identical
    (ids included), new points continue the ids; and a downgrade restores the rows."""
    url = os.environ.get("IOTILE_CLOUD_TEST_DATABASE_URL") or db.sqlite_url(tmp_path / "m.sqlite3")
    engine = db.make_engine(url)
    data = sa.table(
        "data",
        *(sa.column(name) for name in ("id", "stream_pk", "ts", "device_timestamp", "int_value", "value", "type")),
        *(sa.column(name) for name in ("streamer_local_id", "dirty_ts", "status")),
    )
    try:
        with engine.begin() as conn:
            command.downgrade(_config(conn), "base")
        with engine.begin() as conn:
            before_store = ScriptDirectory.from_config(_config(conn)).get_revision("store").down_revision
            assert isinstance(before_store, str)
            command.upgrade(_config(conn), before_store)
        rng = np.random.default_rng(11)
        n = 70_000  # more than one segment
        with engine.begin() as conn:
            now = db.now_us()
            conn.execute(
                sa.insert(db.users).values(
                    id=1,
                    username="u",
                    slug="u",
                    email="u@x",
                    password_hash="x",
                    api_token="t",
                    created_at=now,
                    updated_at=now,
                )
            )
            conn.execute(sa.insert(db.orgs).values(id="o", name="o", slug="o", created_on=now, created_by=1))
            conn.execute(
                sa.insert(db.projects).values(id="p", gid=1, name="p", org_id="o", created_on=now, created_by=1)
            )
            conn.execute(sa.insert(db.variables).values(id="v", project_id="p", lid=0x5001, name="v", created_on=now))
            for pk in (1, 2):
                conn.execute(
                    sa.insert(db.streams).values(
                        pk=pk, id=f"s{pk}", slug=f"s--{pk}", project_id="p", variable_id="v", created_on=now
                    )
                )
            rows = [
                {
                    "id": i + 1,
                    "stream_pk": 1 + i % 2,
                    "ts": int(t),
                    "device_timestamp": None if i % 7 == 0 else i,
                    "int_value": None if i % 5 == 0 else int(v),
                    "value": float(v) + (0.5 if i % 5 == 0 else 0.0),
                    "type": "ITR" if i % 5 == 0 else "Num",
                    "streamer_local_id": i,
                    "dirty_ts": i % 3 == 0,
                    "status": ("unk", "cln", "drt", "utc")[i % 4],
                }
                for i, (t, v) in enumerate(
                    zip(rng.integers(0, 10**15, n).tolist(), rng.integers(0, 1000, n).tolist(), strict=True)
                )
            ]
            conn.execute(sa.insert(data), rows)
        db.migrate(engine)
        with engine.begin() as conn:
            for pk in (1, 2):
                expected = points.from_rows([r for r in rows if r["stream_pk"] == pk])
                expected = expected.take(np.lexsort((expected.id, expected.ts)))
                same(points.select(conn, points.Query([pk])).all(), expected)
            assert points.append_rows(conn, [{"stream_pk": 1, "ts": 0, "int_value": 1, "value": 1.0}]) == [n + 1]
        with engine.begin() as conn:
            command.downgrade(_config(conn), before_store)
        with engine.begin() as conn:
            back = {r.id: r._asdict() for r in conn.execute(sa.select(data))}
        assert len(back) == n + 1
        assert all(back[r["id"]] == r for r in rows)
    finally:
        with engine.begin() as conn:
            # Emptied first: on SQLite, later revisions' downgrades rebuild tables these rows reference.
            present = set(sa.inspect(conn).get_table_names())
            for table in ("data", "segments", "streams", "variables", "projects", "orgs", "users"):
                if table in present:
                    conn.execute(sa.delete(sa.table(table)))
        with engine.begin() as conn:
            command.downgrade(_config(conn), "base")
        db.migrate(engine)
        engine.dispose()


def test_per_point_routes_over_segments(cloud: CloudHelper) -> None:
    """Single POSTs, a list POST, then GET / PATCH / PUT (to another stream) / DELETE of one point by
    id over HTTP: the same ids and answers, and the lists stay in (timestamp, id) order."""
    api = Api(cloud.url)
    assert api.login(email=USER[0], password=USER[1])
    project_id, _ = cloud.quick_add_project()
    device = cloud.quick_add_device(project_id)
    with cloud.engine.connect() as conn:
        device_id = int(device[3:].replace("-", ""), 16)
        slugs = list(conn.execute(sa.select(db.streams.c.slug).where(db.streams.c.device_id == device_id)).scalars())
    first, second = slugs[:2]
    created = [
        api.data.post({"stream": first, "timestamp": f"2026-01-01T00:0{i}:00Z", "int_value": i}) for i in range(5)
    ]
    assert [c["id"] for c in created] == sorted(c["id"] for c in created)
    api.data.post(
        [{"stream": first, "timestamp": f"2026-01-01T00:00:{s:02d}Z", "int_value": 100 + s} for s in range(10, 20)]
    )
    listed = api.data.get(filter=first, page_size=100)["results"]
    assert [r["timestamp"] for r in listed] == sorted(r["timestamp"] for r in listed) and len(listed) == 15
    point = created[2]
    assert api.data(point["id"]).get() == point
    patched = api.data(point["id"]).patch({"int_value": 77})
    assert patched["id"] == point["id"] and patched["int_value"] == 77 and patched["timestamp"] == point["timestamp"]
    moved = api.data(point["id"]).put({"stream": second, "timestamp": "2025-06-01T00:00:00Z", "int_value": 5})
    assert moved["id"] == point["id"] and moved["stream"] == second
    assert api.data(point["id"]).get() == moved
    assert api.data.get(filter=first)["count"] == 14
    assert [r["id"] for r in api.data.get(filter=second)["results"]] == [point["id"]]
    api.data(point["id"]).delete()
    assert api.data.get(filter=second)["count"] == 0
    with pytest.raises(HttpNotFoundError):
        api.data(point["id"]).get()
