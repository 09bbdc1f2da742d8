"""Segment rollups (``server/rollups.py``) and the plot feed drawn from them.

The rollup of a segment against numpy's group-by of its points; the migration that fills existing
segments; and the plot of large ranges (over ``feeds.ROLLUP_ABOVE`` points) against numpy's buckets
on the same snapped grid, over several segments, overlapping late ones, null values, windows that
cut segments, ``lastn``, streamer-id filters, NULL rollups, after a per-point delete and a trim,
with the covered segments' payloads made unreadable to show the rollups alone answer.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

from iotile_cloud.server import db, model, points, rollups
from iotile_cloud.server.console import feeds
from iotile_cloud.testing.cloud import CloudHelper

from .conftest import USER
from .test_console import fleet, signed_in  # noqa: F401  (fleet: a fixture)
from .test_migrations import _config, rebuild_schema

T0 = 1_700_000_000_000_000
SECOND = 1_000_000


# -- the rollup of one segment -------------------------------------------------------------------------


def numpy_buckets(ts: np.ndarray, values: np.ndarray, nulls: np.ndarray, keys: np.ndarray) -> dict[str, list[Any]]:
    """Per distinct key (ascending): first time, min and max of the valued points (None), count."""
    out: dict[str, list[Any]] = {"key": [], "first": [], "low": [], "high": [], "count": []}
    for key in np.unique(keys):
        chosen = keys == key
        valued = values[chosen & ~nulls]
        out["key"].append(int(key))
        out["first"].append(int(ts[chosen].min()))
        out["low"].append(float(valued.min()) if len(valued) else None)
        out["high"].append(float(valued.max()) if len(valued) else None)
        out["count"].append(int(chosen.sum()))
    return out


def as_lists(entries: rollups.Buckets) -> dict[str, list[Any]]:
    def nullable(values: np.ndarray) -> list[Any]:
        return [None if v != v else v for v in values.tolist()]

    return {
        "key": entries.index.tolist(),
        "first": entries.first.tolist(),
        "low": nullable(entries.low),
        "high": nullable(entries.high),
        "count": entries.count.tolist(),
    }


@pytest.mark.parametrize(
    ("n", "step", "gap", "level"),
    [
        (5000, SECOND, 0, rollups.LEVELS[0]),  # 1 Hz: 60 points a minute
        (5000, SECOND, 3 * 3600 * SECOND, rollups.LEVELS[0]),  # two bursts: bucket numbers not consecutive
        (3000, 4 * SECOND, 0, rollups.LEVELS[0]),  # 15 a minute
        (3000, 60 * SECOND, 0, rollups.LEVELS[1]),  # 1 a minute: hours
        (2000, 1800 * SECOND, 0, rollups.LEVELS[2]),  # 2 an hour: days
        (500, 86_400 * SECOND, 0, 0),  # 1 a day: no level pays
    ],
)
def test_rollup_of_a_segment_is_numpys_group_by(n: int, step: int, gap: int, level: int) -> None:
    rng = np.random.default_rng(n + step)
    ts = np.sort(T0 + np.arange(n, dtype=np.int64) * step + rng.integers(0, step, n))
    ts[n // 2 :] += gap
    values = rng.normal(0, 50, n).round(3)
    nulls = rng.random(n) < 0.2
    nulls[: n // 10] = True  # whole buckets without a value at the start
    found = rollups.read(rollups.summarise(ts, np.where(nulls, 0.0, values), nulls))
    if not level:
        assert found is None
        return
    assert found is not None and found[0] == level
    assert len(found[1]) * rollups.REDUCTION <= n
    assert as_lists(found[1]) == numpy_buckets(ts, values, nulls, ts // level)
    assert rollups.read(rollups.summarise(ts[:0], values[:0], nulls[:0])) is None


def test_grid_combines_rollups_exactly_as_it_combines_points() -> None:
    rng = np.random.default_rng(3)
    parts = []
    for start in (0, 3600, 1800):  # the third overlaps both others, as a late upload does
        ts = np.sort(T0 + (start + rng.integers(0, 7200, 6000)) * SECOND + rng.integers(0, SECOND, 6000))
        values = rng.normal(0, 1, 6000)
        parts.append((ts, values, rng.random(6000) < 0.1))
    first, size = rollups.snap(T0, T0 + 9000 * SECOND, 40) or (0, 0)
    assert size % rollups.LEVELS[0] == 0 and first % size == 0
    from_points, from_rollups = rollups.Grid(first, size, 40), rollups.Grid(first, size, 40)
    for ts, values, nulls in parts:
        from_points.add_points(ts, values, nulls)
        level, entries = rollups.read(rollups.summarise(ts, values, nulls)) or (0, None)
        assert entries is not None and from_rollups.fits(level)
        from_rollups.add_rollups(entries.index * level, entries)
    for a, b in zip(from_points.result(), from_rollups.result(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.usefixtures("migrations_alone")
def test_migration_fills_the_rollups_of_existing_segments(tmp_path: Path) -> None:
    """Segments stored before revision ``rollup`` get their rollups from their payloads on upgrade;
    a downgrade drops the column and keeps the segments."""
    url = os.environ.get("IOTILE_CLOUD_TEST_DATABASE_URL") or db.sqlite_url(tmp_path / "m.sqlite3")
    engine = db.make_engine(url)
    try:
        with engine.begin() as conn:
            command.downgrade(_config(conn), "base")
        db.migrate(engine)
        rng = np.random.default_rng(9)
        with engine.begin() as conn:
            stream_pk = _bare_stream(conn)
            for n, step in ((70_000, 3 * SECOND), (3000, 3 * SECOND), (10, 2 * 86_400 * SECOND)):
                ts = T0 + np.cumsum(rng.integers(1, step, n))
                points.append_batch(conn, _batch(stream_pk, ts, rng.normal(0, 1, n), rng.random(n) < 0.1))
        with engine.begin() as conn:
            before = ScriptDirectory.from_config(_config(conn)).get_revision("rollup").down_revision
            assert isinstance(before, str)
            command.downgrade(_config(conn), before)
            assert "rollup" not in {c["name"] for c in sa.inspect(conn).get_columns("segments")}
        db.migrate(engine)
        with engine.begin() as conn:
            stored = conn.execute(sa.select(db.segments.c.stream_pk, db.segments.c.payload, db.segments.c.rollup)).all()
            assert len(stored) == 4
            for segment in stored:
                decoded = points.decode(segment.payload, segment.stream_pk)
                assert segment.rollup == rollups.summarise(decoded.ts, decoded.value, decoded.nulls(points.VALUE_NULL))
            assert sum(rollups.read(s.rollup) is not None for s in stored) == 3  # 10 points in 20 days: no level pays
    finally:
        rebuild_schema(engine)
        engine.dispose()


def _bare_stream(conn: sa.Connection) -> int:
    """A stream (and the rows it needs) in a database made by the migrations alone."""
    now = db.now_us()
    user = {"username": "u", "slug": "u", "email": "u@x", "password_hash": "x", "api_token": "t"}
    conn.execute(sa.insert(db.users).values(id=1, created_at=now, updated_at=now, **user))
    conn.execute(sa.insert(db.orgs).values(id="o", name="o", slug="o", created_on=now, created_by=1))
    conn.execute(sa.insert(db.projects).values(id="p", gid=1, name="p", org_id="o", created_on=now, created_by=1))
    conn.execute(sa.insert(db.variables).values(id="v", project_id="p", lid=0x5001, name="v", created_on=now))
    conn.execute(
        sa.insert(db.streams).values(pk=1, id="s1", slug="s--1", project_id="p", variable_id="v", created_on=now)
    )
    return 1


def _batch(stream_pk: int, ts: np.ndarray, values: np.ndarray, nulls: np.ndarray, sid: int = 1) -> points.Points:
    n = len(ts)
    return points.Points(
        ts=ts,
        id=np.zeros(n, dtype=np.int64),
        streamer_local_id=np.arange(sid, sid + n, dtype=np.int64),
        device_timestamp=np.zeros(n, dtype=np.int64),
        int_value=np.zeros(n, dtype=np.int64),
        value=np.where(nulls, 0.0, values),
        flags=points.flags_of(nulls, True, True, False, points.STATUS_CODE["cln"], False),
        stream_pk=np.full(n, stream_pk, dtype=np.int64),
    )


# -- the plot feed on rollups ---------------------------------------------------------------------------


class Stored:
    """What the test stored, as numpy arrays: the reference every plot is checked against."""

    def __init__(self, output: Callable[[float], float]) -> None:
        self.output = output
        self.ts = np.zeros(0, dtype=np.int64)
        self.values = np.zeros(0)
        self.nulls = np.zeros(0, dtype=bool)
        self.sid = np.zeros(0, dtype=np.int64)

    def add(self, cloud: CloudHelper, stream: str, ts: np.ndarray, values: np.ndarray, nulls: np.ndarray) -> None:
        """One batch through the point store's bulk append (one segment per 65,536 points)."""
        sid = int(self.sid.max()) + 1 if len(self.sid) else 1
        with cloud.engine.begin() as conn:
            pk = conn.execute(sa.select(db.streams.c.pk).where(db.streams.c.slug == stream)).scalar_one()
            points.append_batch(conn, _batch(pk, ts, values, nulls, sid))
        self.ts = np.concatenate([self.ts, ts])
        self.values = np.concatenate([self.values, values])
        self.nulls = np.concatenate([self.nulls, nulls])
        self.sid = np.concatenate([self.sid, np.arange(sid, sid + len(ts))])

    def keep(self, chosen: np.ndarray) -> None:
        self.ts, self.values, self.nulls, self.sid = (a[chosen] for a in (self.ts, self.values, self.nulls, self.sid))


@pytest.fixture
def large(cloud: CloudHelper, fleet: dict[str, Any]) -> Stored:  # noqa: F811
    """143,000 points in five segments: 1 Hz with nulls (two segments), a denser later batch with a
    gap, a late upload overlapping the first, a sparse tail (a segment keeping the day level only)."""
    rng = np.random.default_rng(11)
    stream = fleet["stream"]
    stored = Stored(output_unit(cloud, stream))
    n = 70_000
    nulls = rng.random(n) < 0.05
    nulls[1000:1300] = True  # whole minutes without a value
    stored.add(cloud, stream, T0 + np.arange(n, dtype=np.int64) * SECOND, rng.normal(0, 10, n).round(3), nulls)
    after = T0 + n * SECOND
    n = 40_000
    ts = after + np.arange(n, dtype=np.int64) * (SECOND // 2) + rng.integers(0, 1000, n)
    ts[n // 2 :] += 7200 * SECOND  # two hours without points: a segment with a gap
    stored.add(cloud, stream, ts, 100 + rng.normal(0, 10, n).round(3), np.zeros(n, dtype=bool))
    n = 30_000  # late: odd microseconds among the first batch's whole seconds
    late = np.sort(T0 + rng.choice(70_000 * 1000, n, replace=False) * 1000 + 1)
    stored.add(cloud, stream, late, rng.normal(-50, 5, n).round(3), rng.random(n) < 0.3)
    tail = after + 30_000 * SECOND + np.arange(3000, dtype=np.int64) * 600 * SECOND
    stored.add(cloud, stream, tail, rng.normal(0, 1, 3000).round(3), np.zeros(3000, dtype=bool))
    assert len(stored.ts) == len(np.unique(stored.ts)) > feeds.ROLLUP_ABOVE
    return stored


def to_us(iso: str) -> int:
    return db.to_us(dt.datetime.fromisoformat(iso.replace("Z", "+00:00")))


@pytest.fixture
def plot(cloud: CloudHelper, fleet: dict[str, Any]) -> Callable[..., dict[str, Any]]:  # noqa: F811
    """GET the fleet stream's plot as a signed-in member, with these parameters."""
    client = signed_in(cloud.url, USER)

    def get(**params: Any) -> dict[str, Any]:
        answer = client.get(f"/api/v1/stream/{fleet['stream']}/plot/", params=params)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    return get


def output_unit(cloud: CloudHelper, stream: str) -> Callable[[float], float]:
    """The stream's conversion to its output unit (the fleet's stores litres, shows gallons)."""
    with cloud.engine.connect() as conn:
        row = conn.execute(sa.select(db.streams).where(db.streams.c.slug == stream)).one()
        mdo = model.converter(conn, row).output_mdo
    assert mdo is not None
    return lambda value: float(mdo.compute(value))


def check(body: dict[str, Any], stored: Stored, chosen: np.ndarray | None = None) -> None:
    """The answer is numpy's buckets of the chosen points on the answer's grid, which is snapped:
    its bucket a whole number of minutes, its start a multiple of the bucket."""
    ts, values, nulls = stored.ts, stored.values, stored.nulls
    if chosen is not None:
        ts, values, nulls = ts[chosen], values[chosen], nulls[chosen]
    size = round(body["bucket_ms"] * 1000)
    start = to_us(body["grid_start"])
    assert body["mode"] == "buckets" and body["count"] == len(ts) > feeds.ROLLUP_ABOVE
    assert size % rollups.LEVELS[0] == 0 and start % size == 0 and start <= ts.min()
    expected = numpy_buckets(ts, values, nulls, (ts - start) // size)
    assert len(expected["key"]) <= body["width"]
    assert body["n"] == expected["count"]
    assert body["t"] == [t // 1000 for t in expected["first"]]
    for name, ours in (("low", "min"), ("high", "max")):
        assert body[ours] == [None if v is None else stored.output(v) for v in expected[name]]


def test_plot_of_a_large_range_is_numpys_buckets_on_the_snapped_grid(
    large: Stored, plot: Callable[..., dict[str, Any]]
) -> None:
    for width in (1000, 300, 37):
        check(plot(width=width), large)
    # A window whose bounds cut segments: those are decoded, the ones inside read from rollups.
    start, end = T0 + 3_000 * SECOND + 17, T0 + 100_000 * SECOND - 5
    window = plot(width=500, start=db.iso(start), end=db.iso(end))
    check(window, large, (large.ts >= start) & (large.ts < end))
    # The newest points: the group lastn cuts is decoded, the rest read from rollups.
    newest = plot(width=800, lastn=100_000)
    check(newest, large, large.ts >= np.sort(large.ts)[-100_000])
    # Streamer-id bounds: segments partly inside are decoded.
    sids = plot(width=400, streamer_id_min=5_000, streamer_id_max=140_000)
    check(sids, large, (large.sid >= 5_000) & (large.sid <= 140_000))
    # A range of fewer points keeps the exact path: a grid from its first point.
    small = plot(width=100, start=db.iso(T0), end=db.iso(T0 + 20_000 * SECOND))
    assert small["grid_start"] == db.iso(T0) and small["count"] == int((large.ts < T0 + 20_000 * SECOND).sum())


def test_plot_reads_only_rollups_of_covered_segments_and_decodes_the_rest(
    cloud: CloudHelper, large: Stored, plot: Callable[..., dict[str, Any]]
) -> None:
    table = db.segments
    with cloud.engine.begin() as conn:
        segments = conn.execute(sa.select(table.c.id, table.c.rollup).order_by(table.c.ts_min)).all()
        levels = {s.id: (rollups.read(s.rollup) or (0, None))[0] for s in segments}
        assert sorted(levels.values()) == [*[rollups.LEVELS[0]] * 4, rollups.LEVELS[2]]  # the tail: days
        minute = [i for i, level in levels.items() if level == rollups.LEVELS[0]]
        # One segment without a rollup (as before the migration filled it): decoded, still exact.
        conn.execute(sa.update(table).where(table.c.id == minute[0]).values(rollup=None))
        # The others' points become unreadable: only their rollups can answer.
        conn.execute(sa.update(table).where(table.c.id.in_(minute[1:])).values(payload=b"not a segment"))
    for width in (1000, 250):
        check(plot(width=width), large)


def test_plot_after_a_per_point_delete_and_a_trim(
    cloud: CloudHelper,
    fleet: dict[str, Any],  # noqa: F811
    large: Stored,
    plot: Callable[..., dict[str, Any]],
) -> None:
    token = httpx.post(cloud.url + "/api/v1/auth/login/", json={"email": USER[0], "password": USER[1]}).json()["token"]
    api = httpx.Client(base_url=cloud.url + "/api/v1", headers={"Authorization": f"Token {token}"}, timeout=60)
    stream = fleet["stream"]
    # Delete the minimum of the whole stream and the first point of the late upload.
    valued = np.flatnonzero(~large.nulls)
    lowest = int(valued[np.argmin(large.values[valued])])
    for ts in (large.ts[lowest], large.ts[np.argmax(large.ts % SECOND == 1)]):
        found = api.get("/data/", params={"filter": stream, "start": db.iso(int(ts)), "page_size": 1}).json()
        assert to_us(found["results"][0]["timestamp"]) == ts
        assert api.delete(f"/data/{found['results'][0]['id']}/").status_code == 204
        large.keep(large.ts != ts)
    check(plot(width=1000), large)
    # Trim: both bounds cut segments (points at the bounds stay).
    start, end = T0 + 1_234 * SECOND + 1, T0 + 105_000 * SECOND
    answer = api.post(f"/device/{fleet['device']}/trim/", json={"start": db.iso(start), "end": db.iso(end)})
    assert answer.status_code == 202, answer.text
    large.keep((large.ts >= start) & (large.ts <= end))
    check(plot(width=1000), large)
    check(plot(width=333), large)


def test_rollups_and_decoding_give_the_same_buckets_for_any_selection(
    cloud: CloudHelper,
    fleet: dict[str, Any],  # noqa: F811
    large: Stored,
) -> None:
    """Random windows, streamer-id bounds and lastn on the store itself: the selection's time
    bounds are its first and last points, and the buckets from rollups equal the decoded ones."""
    rng = np.random.default_rng(5)
    span = int(large.ts.max() - T0)
    used_rollups = 0
    with cloud.engine.connect() as conn:
        pk = conn.execute(sa.select(db.streams.c.pk).where(db.streams.c.slug == fleet["stream"])).scalar_one()
        for _ in range(40):
            start, end = sorted(int(t) for t in T0 + rng.integers(-span // 10, span + span // 10, 2))
            sid_min = int(rng.integers(0, 20_000)) if rng.random() < 0.3 else None
            lastn = int(rng.integers(1, 150_000)) if rng.random() < 0.3 else None
            query = points.Query([pk], start if rng.random() < 0.8 else None, end, sid_min, None, lastn)
            everything = points.select(conn, query).all()
            bounds = points.select(conn, query).time_bounds()
            if not len(everything):
                assert bounds is None
                continue
            assert bounds == (int(everything.ts[0]), int(everything.ts[-1]))
            width = int(rng.integers(10, 2000))
            snapped = rollups.snap(*bounds, width)
            if snapped is None:
                continue
            used_rollups += 1
            decoded = points.select(conn, query).buckets(*snapped, width)
            rolled = points.select(conn, query).buckets(*snapped, width, from_rollups=True)
            for a, b in zip(decoded, rolled, strict=True):
                np.testing.assert_array_equal(a, b)
            assert int(rolled[4].sum()) == len(everything)
    assert used_rollups > 20
