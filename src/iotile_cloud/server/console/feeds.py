"""API feeds the console draws from, open to any API client as well (``docs/console.md``):

- ``GET /api/v1/stream/<slug>/plot/``: a time range reduced on the server to at most ``width``
  buckets (min/max/count per bucket), so a 10M-point stream ships as little as a 1k-point one;
- ``GET /api/v1/stream/<slug>/live/``: new points as server-sent events, found by polling the
  point store, so every server process over one database sees every writer's points.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from iotile_cloud.server import db, limits, model, points, rollups
from iotile_cloud.server.context import Principal, current_user, state
from iotile_cloud.server.http import JSON, APIError, int64_or_none
from iotile_cloud.server.routes.data import point_query
from iotile_cloud.server.routes.streams import stream_by_slug
from iotile_cloud.utils.basic import iso_from_micros

router = APIRouter()

MAX_WIDTH = 4000
ROLLUP_ABOVE = 50_000  # points in a range above which the plot is drawn from segment rollups
LIVE_POLL_SECONDS = 1.0
LIVE_HEARTBEAT_SECONDS = 15.0
LIVE_MAX_SECONDS = 300.0  # then the stream ends and EventSource reconnects with Last-Event-ID
LIVE_BATCH = 1000
PARQUET_ROW_GROUP = 131_072  # points a Parquet row group holds at least (whole segment groups)
LIVE_LATE_SECONDS = 10.0  # how long after taking its ids a writer is assumed to have committed


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise APIError(400, {"detail": f"{name} must be an integer"}) from None
    if not low <= value <= high:
        raise APIError(400, {"detail": f"{name} must be between {low} and {high}"})
    return value


def _to_output(conv: model.Converter, values: list[Any]) -> list[Any]:
    """Internal values in the stream's output unit (unchanged when it has none)."""
    if conv.output_mdo is None:
        return values
    compute = conv.output_mdo.compute
    return [None if v is None else float(compute(v)) for v in values]


@router.get(
    "/stream/{slug}/plot/",
    summary="A stream's values in a time range, reduced to at most `width` min/max buckets (for plotting)",
)
def stream_plot(slug: str, request: Request, principal: Principal = Depends(current_user)) -> Response:
    """``?start=&end=`` (ISO 8601, end exclusive) select the range, ``width`` the bucket count.

    When the range holds no more than ``2 * width`` points they come back one by one
    (``mode: "raw"``); otherwise each bucket carries the time of its first point, its minimum and
    maximum value and its point count (``mode: "buckets"``), the buckets being ``bucket_ms`` wide
    from ``grid_start``. Above ``ROLLUP_ABOVE`` points the grid snaps to whole minutes, hours or
    days so that the segments' stored rollups fill it without decoding their points. Values are in
    the output unit.
    """
    width = _int_param(request, "width", 1000, 10, MAX_WIDTH)
    with state(request).read() as conn:
        stream = stream_by_slug(conn, principal, slug)
        conv = model.converter(conn, stream)
        selection = points.select(conn, point_query(request, [stream.pk]))
        count = selection.count()
        bounds = selection.time_bounds()
        body: dict[str, Any] = {
            "stream": stream.slug,
            "unit": stream.output_unit or "",
            "width": width,
            "first": db.iso(bounds[0]) if bounds else None,
            "last": db.iso(bounds[1]) if bounds else None,
        }
        if bounds is None:
            return JSON({**body, "mode": "raw", "count": 0, "t": [], "min": [], "max": [], "n": []})
        first, last = bounds
        if count <= 2 * width:
            stored = selection.all().as_lists()
            values = _to_output(conv, stored["value"])
            return JSON(
                {
                    **body,
                    "mode": "raw",
                    "count": count,
                    "t": [t // 1000 for t in stored["ts"]],
                    "min": values,
                    "max": values,
                    "n": [1] * count,
                }
            )
        # Many points: a grid the segments' rollups fill, read instead of the points (exact too).
        snapped = rollups.snap(first, last, width) if count > ROLLUP_ABOVE else None
        if snapped is None:
            grid_start, size = first, max(1, -(-(last - first + 1) // width))  # ceiling: last in bucket width-1
        else:
            grid_start, size = snapped
        reduced = selection.buckets(grid_start, size, width, from_rollups=snapped is not None)
        _, times, lows_found, highs_found, counts_found = reduced
    lows = _to_output(conv, _floats_or_none(lows_found))
    highs = _to_output(conv, _floats_or_none(highs_found))
    if conv.output_mdo is not None and conv.output_mdo.m / conv.output_mdo.d < 0:
        lows, highs = highs, lows  # a decreasing conversion turns minima into maxima
    counts = counts_found.tolist()
    return JSON(
        {
            **body,
            "mode": "buckets",
            "grid_start": db.iso(grid_start),
            "bucket_ms": size / 1000,
            "count": sum(counts),
            "t": (times // 1000).tolist(),
            "min": lows,
            "max": highs,
            "n": counts,
        }
    )


def _floats_or_none(values: Any) -> list[float | None]:
    """NaN (a bucket whose values are all null) as None."""
    return [None if v != v else v for v in values.tolist()]


class _Sent:
    """What a live response has sent. Ids are taken in order but committed in any order, so a
    transaction that took a lower id may commit after a higher one was sent. Polls therefore ask
    from ``floor``, below the ids sent in the last LIVE_LATE_SECONDS (remembered, and skipped).
    Once a batch of ids is that old, every lower id has been committed or never will be (its
    transaction took it before, and commits within that time): the floor moves up to them."""

    def __init__(self, after: int) -> None:
        self.floor = self.highest = after
        self.batches: deque[tuple[float, list[int]]] = deque()  # (poll time, ids sent), oldest first
        self.ids: set[int] = set()

    def fresh(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        return [row for row in rows if row[0] not in self.ids][:LIVE_BATCH]

    def add(self, polled_at: float, ids: list[int]) -> None:
        self.batches.append((polled_at, ids))
        self.ids.update(ids)
        self.highest = max(self.highest, *ids)

    def settle(self, polled_at: float) -> None:
        """After a poll that started at ``polled_at``: batches sent long enough before it raise the floor."""
        while self.batches and polled_at - self.batches[0][0] > LIVE_LATE_SECONDS:
            _, ids = self.batches.popleft()
            self.floor = max(self.floor, *ids)
            self.ids.difference_update(ids)


def _newer_rows(request: Request, stream_pk: int, sent: _Sent) -> list[tuple[Any, ...]]:
    """Points above the floor not sent yet, in id order (at most LIVE_BATCH)."""
    with state(request).read() as conn:
        found = points.newer(conn, stream_pk, sent.floor, LIVE_BATCH + len(sent.ids)).as_lists()
    rows = zip(found["id"], found["ts"], found["value"], found["int_value"], found["streamer_local_id"], strict=True)
    return sent.fresh(list(rows))


def _newest_id(request: Request, stream_pk: int) -> int:
    with state(request).read() as conn:
        return points.newest_id(conn, stream_pk)


@router.get(
    "/stream/{slug}/live/",
    summary="New data points of a stream as server-sent events (text/event-stream)",
    response_class=StreamingResponse,
)
async def stream_live(slug: str, request: Request, principal: Principal = Depends(current_user)) -> Response:
    """Each event is ``event: data`` with ``id: <highest point id sent>`` and a JSON list of points
    ``{id, timestamp, value, output_value, int_value, streamer_local_id}``, each point once, in id
    order within an event; a point whose writer committed late (a lower id after a higher one was
    sent) comes in a later event. Points after ``Last-Event-ID`` (or ``?after=<id>``) come first;
    with neither, only points stored from now on.
    ``?timeout=`` (seconds, at most 300) ends the response early; clients reconnect as they wish.
    """
    timeout = _int_param(request, "timeout", int(LIVE_MAX_SECONDS), 1, int(LIVE_MAX_SECONDS))
    resume = request.headers.get("last-event-id") or request.query_params.get("after")

    def open_stream() -> tuple[Any, model.Converter]:
        with state(request).read() as conn:
            stream = stream_by_slug(conn, principal, slug)
            return stream, model.converter(conn, stream)

    stream, conv = await run_in_threadpool(open_stream)
    # One user may hold only a few feeds open (limits.StreamGuard bounds them all and releases this).
    feeds, user = state(request).live_feeds, principal.user_id
    if feeds[user] >= limits.MAX_LIVE_FEEDS_PER_USER:
        raise limits.busy(f"You have {limits.MAX_LIVE_FEEDS_PER_USER} live feeds open: close one, or try again later.")
    feeds[user] += 1

    def release() -> None:
        feeds[user] -= 1
        if feeds[user] <= 0:
            del feeds[user]

    request.scope[limits.RELEASE_SLOT] = release
    if resume:
        # Checked before the answer starts: past 64 bits the first poll failed mid-stream (a
        # dropped connection instead of a 400).
        parsed = int64_or_none(resume)
        if parsed is None:
            raise APIError(400, {"detail": "Last-Event-ID and after must be a point id"})
        after = parsed
    else:
        after = await run_in_threadpool(_newest_id, request, stream.pk)

    async def events() -> AsyncIterator[bytes]:
        sent = _Sent(after)
        started = quiet_since = time.monotonic()
        yield b"retry: 2000\n\n"
        while time.monotonic() - started < timeout and not await request.is_disconnected():
            polled_at = time.monotonic()
            rows = await run_in_threadpool(_newer_rows, request, stream.pk, sent)
            sent.settle(polled_at)
            if rows:
                sent.add(polled_at, [int(r[0]) for r in rows])
                outputs = conv.outputs([r[2] for r in rows])
                items = [
                    {
                        "id": r[0],
                        "timestamp": stamp,
                        "value": r[2],
                        "output_value": out,
                        "int_value": r[3],
                        "streamer_local_id": r[4],
                    }
                    for r, stamp, out in zip(rows, iso_from_micros([r[1] for r in rows]), outputs, strict=True)
                ]
                yield b"id: %d\nevent: data\ndata: " % sent.highest + orjson.dumps(items) + b"\n\n"
                quiet_since = time.monotonic()
                if len(rows) == LIVE_BATCH:
                    continue
            elif time.monotonic() - quiet_since > LIVE_HEARTBEAT_SECONDS:
                yield b": keep-alive\n\n"
                quiet_since = time.monotonic()
            await asyncio.sleep(LIVE_POLL_SECONDS)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/stream/{slug}/parquet/",
    summary="A stream's data as a Parquet file (the columns of the Arrow stream of /df/)",
    response_class=StreamingResponse,
)
async def stream_parquet(slug: str, request: Request, principal: Principal = Depends(current_user)) -> Response:
    """The ``/df/?format=arrow`` selection (``start``, ``end``, ``lastn`` apply) written as Parquet,
    streamed: one row group per PARQUET_ROW_GROUP points or so, written and sent as the selection
    is decoded, so the server holds one row group at a time whatever the size of the download."""
    # columnar first (unsorted on purpose): without pyarrow its import answers 406 naming the extra.
    from iotile_cloud.server import columnar  # noqa: I001

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    # One read transaction serves the permission check and the whole body (as the Arrow stream's).
    transaction = contextlib.ExitStack()

    def plan() -> tuple[Any, Any, points.Selection]:
        conn = transaction.enter_context(state(request).read())
        stream = stream_by_slug(conn, principal, slug)
        return stream, model.converter(conn, stream).output_mdo, points.select(conn, point_query(request, [stream.pk]))

    try:
        stream, output_mdo, selection = await run_in_threadpool(plan)
    except BaseException:
        transaction.close()
        raise
    slugs = pa.array([stream.slug], pa.string())
    index_of_pk = np.zeros(stream.pk + 1, dtype=np.int32)

    def generate() -> Iterator[bytes]:
        with transaction:
            sink = columnar._Chunks()
            writer = pq.ParquetWriter(pa.PythonFile(sink, mode="w"), columnar.SCHEMA)
            for chunk in selection.chunks(PARQUET_ROW_GROUP):
                writer.write_batch(columnar._batch(chunk, slugs, index_of_pk, [output_mdo]))
                yield sink.drain()
            writer.close()
            yield sink.drain()

    return StreamingResponse(
        generate(),
        media_type="application/vnd.apache.parquet",
        headers={"Content-Disposition": f'attachment; filename="{stream.slug}.parquet"'},
    )
