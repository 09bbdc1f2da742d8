"""The point store: stream data as compressed columnar segments in the ``segments`` table.

Points arrive in batches (a report, a list POST); each batch of one stream becomes one segment: the
columns packed as arrays (timestamps, ids, streamer ids, device timestamps, int values, values,
flags), each encoded the cheapest way that fits it, with the segment's stream, time range, id range,
streamer-id range and count beside it as ordinary columns. Reads select segments by those columns and
decode whole arrays; nothing here holds one Python object per point. ``docs/storage.md`` explains
the layout and the systems it learned from.

Everything runs on the caller's connection, inside the caller's transaction: a batch is stored whole
with the rest of its request or not at all.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from iotile_cloud.server import db, rollups
from iotile_cloud.wire import STATUSES, TYPES

# -- flags: one byte per point -----------------------------------------------------------------------

VALUE_NULL, INT_NULL, DEVICE_TS_NULL, DIRTY = 1, 2, 4, 8
STATUS_SHIFT, TYPE_ITR = 4, 64  # status code in bits 4-5 (index into STATUSES); bit 6: type "ITR"
STATUS_CODE = {name: code for code, name in enumerate(STATUSES)}

# Batches above this size are split. Small segments (single POSTs, report markers) are written as
# they come, and merged later by compact(), which a server runs in the background (compaction.py):
# a write never reads and rewrites stored points.
MAX_SEGMENT = 65_536
SMALL_SEGMENT = db.SMALL_SEGMENT
MERGE_LIMIT = 4_096  # compaction builds segments up to this size from runs of small ones
FETCH_SEGMENTS = 64  # segment payloads read in one query when a selection streams

# The fields of a point, in the order of the encoded columns.
INT_FIELDS = ("ts", "id", "streamer_local_id", "device_timestamp", "int_value")
FIELDS = (*INT_FIELDS, "value", "flags")


@dataclass
class Points:
    """Columns of points of one stream or several (``stream_pk`` per point), as numpy arrays."""

    ts: np.ndarray
    id: np.ndarray
    streamer_local_id: np.ndarray
    device_timestamp: np.ndarray  # 0 where DEVICE_TS_NULL
    int_value: np.ndarray  # 0 where INT_NULL
    value: np.ndarray  # 0.0 where VALUE_NULL
    flags: np.ndarray  # uint8
    stream_pk: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, index: Any) -> Points:
        return Points(**{name: getattr(self, name)[index] for name in (*FIELDS, "stream_pk")})

    @classmethod
    def concat(cls, parts: Sequence[Points]) -> Points:
        if len(parts) == 1:
            return parts[0]
        return cls(**{name: np.concatenate([getattr(p, name) for p in parts]) for name in (*FIELDS, "stream_pk")})

    @classmethod
    def concat_or_empty(cls, parts: Sequence[Points]) -> Points:
        if parts:
            return cls.concat(parts)
        ints = np.zeros(0, dtype=np.int64)
        return cls(ints, ints, ints, ints, ints, np.zeros(0), np.zeros(0, dtype=np.uint8), ints)

    def in_order(self) -> Points:
        """Sorted by (timestamp, id), the order of every read."""
        if len(self) < 2:
            return self
        step = np.diff(self.ts)
        if np.all((step > 0) | ((step == 0) & (np.diff(self.id) > 0))):
            return self
        return self.take(np.lexsort((self.id, self.ts)))

    # Decoded flags ---------------------------------------------------------------------------

    def nulls(self, bit: int) -> np.ndarray:
        return (self.flags & bit) != 0

    def dirty(self) -> np.ndarray:
        return self.nulls(DIRTY)

    def status_codes(self) -> np.ndarray:
        return ((self.flags >> STATUS_SHIFT) & 3).astype(np.int8)

    def type_codes(self) -> np.ndarray:
        return ((self.flags & TYPE_ITR) != 0).astype(np.int8)

    def as_lists(self, fields: Sequence[str] | None = None) -> dict[str, list[Any]]:
        """Python lists per field as the JSON pages show them (``None`` for nulls): every field
        (and ``stream_pk``), or only ``fields``."""

        def nullable(values: np.ndarray, bit: int) -> list[Any]:
            out = values.tolist()
            for i in np.flatnonzero(self.nulls(bit)).tolist():
                out[i] = None
            return out

        makers: dict[str, Any] = {
            "id": lambda: self.id.tolist(),
            "stream_pk": lambda: self.stream_pk.tolist(),
            "ts": lambda: self.ts.tolist(),
            "value": lambda: nullable(self.value, VALUE_NULL),
            "int_value": lambda: nullable(self.int_value, INT_NULL),
            "device_timestamp": lambda: nullable(self.device_timestamp, DEVICE_TS_NULL),
            "streamer_local_id": lambda: self.streamer_local_id.tolist(),
            "dirty_ts": lambda: self.dirty().tolist(),
            # The few distinct texts are shared by every point (one object each, not one per point).
            "status": lambda: np.array(STATUSES, dtype=object)[self.status_codes()].tolist(),
            "type": lambda: np.array(TYPES, dtype=object)[self.type_codes()].tolist(),
        }
        return {name: makers[name]() for name in (makers if fields is None else fields)}


def flags_of(value_null: Any, int_null: Any, device_ts_null: Any, dirty: Any, status: Any, itr: Any) -> np.ndarray:
    """The flag byte from its parts (booleans or boolean arrays; ``status`` as codes)."""
    flags = (
        np.asarray(value_null, dtype=np.uint8) * VALUE_NULL
        + np.asarray(int_null, dtype=np.uint8) * INT_NULL
        + np.asarray(device_ts_null, dtype=np.uint8) * DEVICE_TS_NULL
        + np.asarray(dirty, dtype=np.uint8) * DIRTY
        + (np.asarray(status, dtype=np.uint8) << STATUS_SHIFT)
        + np.asarray(itr, dtype=np.uint8) * TYPE_ITR
    )
    return np.asarray(flags, dtype=np.uint8)


def from_rows(rows: Sequence[Mapping[str, Any]]) -> Points:
    """Points from dicts with the old row fields (``stream_pk``, ``ts``, ``value``, ``int_value``,
    ``type``, ``device_timestamp``, ``streamer_local_id``, ``dirty_ts``, ``status``, optional ``id``)."""

    def column(name: str, dtype: Any, default: Any = 0) -> np.ndarray:
        return np.array([default if r.get(name) is None else r[name] for r in rows], dtype=dtype)

    def missing(name: str) -> list[bool]:
        return [r.get(name) is None for r in rows]

    return Points(
        ts=column("ts", np.int64),
        id=column("id", np.int64),
        streamer_local_id=column("streamer_local_id", np.int64),
        device_timestamp=column("device_timestamp", np.int64),
        int_value=column("int_value", np.int64),
        value=column("value", np.float64, 0.0),
        flags=flags_of(
            missing("value"),
            missing("int_value"),
            missing("device_timestamp"),
            [bool(r.get("dirty_ts")) for r in rows],
            [STATUS_CODE[r.get("status") or "unk"] for r in rows],
            [r.get("type") == "ITR" for r in rows],
        ),
        stream_pk=column("stream_pk", np.int64),
    )


def item(points: Points, index: int) -> dict[str, Any]:
    """One point as a row-like dict (the fields of the old ``data`` rows)."""
    lists = points.take(slice(index, index + 1)).as_lists()
    return {name: values[0] for name, values in lists.items()}


# -- the segment codec ---------------------------------------------------------------------------------
#
# A segment is b"S1", the point count (u32), then per column: an encoding byte, a u32 length and the
# bytes. Integer columns are stored as an arithmetic sequence when they are one (ids, regular
# timestamps, streamer ids), else delta-encoded and deflated when that pays; float values XOR their
# predecessor's bits first (the Gorilla idea, with deflate doing the bit packing); flags are usually
# one constant byte.

MAGIC = b"S1"
RAW, LINEAR, DELTA_ZLIB, XOR_ZLIB, CONSTANT, ZLIB = range(6)
_HEADER = struct.Struct("<2sI")
_COLUMN = struct.Struct("<BI")
_PAIR = struct.Struct("<qq")
PAYS = 0.75  # compress only when it saves at least a quarter
ZLIB_LEVEL = 1
SAMPLE = 2048  # values tried before deflating a whole float column


def _deflate(data: bytes) -> bytes | None:
    packed = zlib.compress(data, ZLIB_LEVEL)
    return packed if len(packed) < PAYS * len(data) else None


def _encode_ints(values: np.ndarray) -> tuple[int, bytes]:
    n = len(values)
    if n == 0:
        return RAW, b""
    deltas = np.diff(values)  # wraps around on overflow, and the cumulative sum wraps back
    if n == 1 or np.all(deltas == deltas[0]):
        return LINEAR, _PAIR.pack(int(values[0]), int(deltas[0]) if n > 1 else 0)
    raw = np.concatenate([values[:1], deltas]).astype("<i8").tobytes()
    packed = _deflate(raw)
    return (DELTA_ZLIB, packed) if packed is not None else (RAW, values.astype("<i8").tobytes())


def _encode_floats(values: np.ndarray) -> tuple[int, bytes]:
    bits = values.astype("<f8").view("<u8")
    if len(bits) and np.all(bits == bits[0]):
        return CONSTANT, bits[:1].tobytes()
    xored = bits.copy()
    xored[1:] ^= bits[:-1]
    # A short column is deflated whole; a long one only when a sample shows it pays.
    if len(xored) <= 2 * SAMPLE or _deflate(xored[:SAMPLE].tobytes()) is not None:
        packed = _deflate(xored.tobytes())
        if packed is not None:
            return XOR_ZLIB, packed
    return RAW, bits.tobytes()


def _encode_flags(values: np.ndarray) -> tuple[int, bytes]:
    if len(values) and np.all(values == values[0]):
        return CONSTANT, values[:1].tobytes()
    packed = _deflate(values.tobytes())
    return (ZLIB, packed) if packed is not None else (RAW, values.tobytes())


def encode(points: Points) -> bytes:
    """The segment bytes of ``points`` (one stream's; ``stream_pk`` is kept beside, not inside)."""
    parts = [_HEADER.pack(MAGIC, len(points))]
    columns = [_encode_ints(getattr(points, name)) for name in INT_FIELDS]
    columns += [_encode_floats(points.value), _encode_flags(points.flags)]
    for kind, data in columns:
        parts += [_COLUMN.pack(kind, len(data)), data]
    return b"".join(parts)


def _decode_column(kind: int, data: bytes, n: int, dtype: str) -> np.ndarray:
    if kind == RAW:
        return np.frombuffer(data, dtype=dtype).copy()
    if kind == LINEAR:
        start, step = _PAIR.unpack(data)
        out = np.arange(n, dtype=np.int64)
        out *= step  # in place, wrapping as the encoder's differences did
        out += start
        return out
    if kind == DELTA_ZLIB:
        return np.cumsum(np.frombuffer(zlib.decompress(data), dtype="<i8"), dtype=np.int64)
    if kind == XOR_ZLIB:
        xored = np.frombuffer(zlib.decompress(data), dtype="<u8")
        return np.bitwise_xor.accumulate(xored).view("<f8")
    if kind == CONSTANT:
        return np.repeat(np.frombuffer(data, dtype=dtype), n)
    if kind == ZLIB:
        return np.frombuffer(zlib.decompress(data), dtype=dtype).copy()
    raise ValueError(f"unknown column encoding {kind}")


def decode(payload: bytes, stream_pk: int) -> Points:
    magic, n = _HEADER.unpack_from(payload)
    if magic != MAGIC:
        raise ValueError("not a point segment")
    offset = _HEADER.size
    columns: dict[str, np.ndarray] = {}
    for name in FIELDS:
        kind, length = _COLUMN.unpack_from(payload, offset)
        offset += _COLUMN.size
        dtype = "<f8" if name == "value" else "u1" if name == "flags" else "<i8"
        columns[name] = _decode_column(kind, payload[offset : offset + length], n, dtype)
        offset += length
    return Points(**columns, stream_pk=np.full(n, stream_pk, dtype=np.int64))


# -- writing -------------------------------------------------------------------------------------------


# Statements of every write, built once: SQLAlchemy then skips building and keying them each time
# (a few hundred microseconds a statement, a sizeable share of storing a 10,000-point report).
_TAKE_IDS = (
    sa.update(db.point_ids)
    .where(db.point_ids.c.id == 1)
    .values(next_id=db.point_ids.c.next_id + sa.bindparam("n"))
    .returning(db.point_ids.c.next_id)
)
_INSERT_SEGMENTS = sa.insert(db.segments)


def allocate_ids(conn: Connection, n: int) -> int:
    """The first of ``n`` new consecutive point ids (one counter row, locked until commit)."""
    counter = db.point_ids
    top = conn.execute(_TAKE_IDS, {"n": n}).scalar_one_or_none()
    if top is None:  # an empty counter table (a database made by hand): start after any stored id
        start = int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(db.segments.c.id_max), 0))).scalar_one()) + 1
        try:
            with conn.begin_nested():
                conn.execute(sa.insert(counter).values(id=1, next_id=start + n))
        except sa.exc.IntegrityError:
            # Another writer made the row first (PostgreSQL: it waited for that commit): take a range from it.
            return allocate_ids(conn, n)
        return start
    return int(top) - n


def segment_fields(points: Points) -> dict[str, Any]:
    return {
        "ts_min": int(points.ts.min()),
        "ts_max": int(points.ts.max()),
        "id_min": int(points.id.min()),
        "id_max": int(points.id.max()),
        "sid_min": int(points.streamer_local_id.min()),
        "sid_max": int(points.streamer_local_id.max()),
        "count": len(points),
        "payload": encode(points),
        "rollup": rollups.summarise(points.ts, points.value, points.nulls(VALUE_NULL)),
    }


def _segment_rows(stream_pk: int, points: Points) -> list[dict[str, Any]]:
    """The segment rows of one stream's points in order (split at MAX_SEGMENT)."""
    return [
        {"stream_pk": stream_pk, **segment_fields(points.take(slice(i, i + MAX_SEGMENT)))}
        for i in range(0, len(points), MAX_SEGMENT)
    ]


def _insert(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(_INSERT_SEGMENTS, rows)


def _rewrite(conn: Connection, segment_id: int, points: Points) -> None:
    """Replace a segment's points (deleting it when none are left)."""
    table = db.segments
    if len(points):
        conn.execute(sa.update(table).where(table.c.id == segment_id).values(**segment_fields(points)))
    else:
        conn.execute(sa.delete(table).where(table.c.id == segment_id))


def append(conn: Connection, stream_pk: int, points: Points, *, keep_ids: bool = False) -> np.ndarray:
    """Store a batch of one stream's points; returns their ids (new consecutive ids unless
    ``keep_ids``)."""
    n = len(points)
    if not keep_ids:
        points.id = np.arange(n, dtype=np.int64) + allocate_ids(conn, n)
    points.stream_pk = np.full(n, stream_pk, dtype=np.int64)
    if n:
        _insert(conn, _segment_rows(stream_pk, points.in_order()))
    return points.id


def append_batch(conn: Connection, batch: Points) -> np.ndarray:
    """Store points of several streams (``stream_pk`` per point), one segment per stream (all in one
    INSERT); ids are given in the batch's order, as one consecutive range."""
    n = len(batch)
    batch.id = np.arange(n, dtype=np.int64) + allocate_ids(conn, n) if n else np.zeros(0, dtype=np.int64)
    _insert(conn, [row for pk, points in by_stream(batch) for row in _segment_rows(pk, points.in_order())])
    return batch.id


def by_stream(batch: Points) -> Iterator[tuple[int, Points]]:
    """The batch split per stream, in stream order (each part in the batch's order): one stable sort,
    then slices."""
    pks = batch.stream_pk
    if len(pks) == 0:
        return
    low, high = int(pks.min()), int(pks.max())
    if low == high:
        yield low, batch
        return
    # Stream keys of one batch lie close together: as 16-bit offsets numpy sorts them by radix (3x faster).
    keys = (pks - low).astype(np.uint16) if high - low < 1 << 16 else pks
    grouped = batch.take(np.argsort(keys, kind="stable"))
    starts = np.flatnonzero(np.diff(grouped.stream_pk)) + 1
    edges = [0, *starts.tolist(), len(grouped)]
    for first, last in zip(edges[:-1], edges[1:], strict=True):
        yield int(grouped.stream_pk[first]), grouped.take(slice(first, last))


# -- single points -------------------------------------------------------------------------------------


@dataclass
class Located:
    """A point found by id: its segment and its index in the decoded segment."""

    segment_id: int
    points: Points
    index: int

    @property
    def stream_pk(self) -> int:
        return int(self.points.stream_pk[self.index])

    def row(self) -> dict[str, Any]:
        return item(self.points, self.index)


def find(conn: Connection, point_id: int) -> Located | None:
    """The point's segment, locked for this transaction on PostgreSQL (the caller may rewrite it)."""
    table = db.segments
    statement = _for_update(
        conn,
        sa.select(table.c.id, table.c.stream_pk, table.c.payload).where(
            table.c.id_min <= point_id, table.c.id_max >= point_id
        ),
    )
    # A second look: on PostgreSQL a compaction that held the segment may have moved the point into
    # a segment committed after this statement began.
    for _attempt in range(2):
        for segment in conn.execute(statement).all():
            points = decode(segment.payload, segment.stream_pk)
            hits = np.flatnonzero(points.id == point_id)
            if len(hits):
                return Located(segment.id, points, int(hits[0]))
    return None


def _for_update(conn: Connection, statement: sa.Select[Any]) -> sa.Select[Any]:
    """Rows a caller will rewrite: locked on PostgreSQL (SQLite writes run alone anyway)."""
    return statement.with_for_update() if conn.dialect.name == "postgresql" else statement


def delete(conn: Connection, located: Located) -> None:
    keep = np.ones(len(located.points), dtype=bool)
    keep[located.index] = False
    _rewrite(conn, located.segment_id, located.points.take(keep))


def replace(conn: Connection, located: Located, stream_pk: int, row: Mapping[str, Any]) -> dict[str, Any]:
    """Replace one point (same id) with ``row``'s fields, possibly in another stream."""
    point_id = int(located.points.id[located.index])
    delete(conn, located)
    new = from_rows([{**row, "id": point_id, "stream_pk": stream_pk}])
    append(conn, stream_pk, new, keep_ids=True)
    return item(new, 0)


def append_rows(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """Store row dicts (list POSTs, fixtures); their ids in the given order."""
    ids: list[int] = append_batch(conn, from_rows(rows)).tolist()
    return ids


# -- per-stream bookkeeping ----------------------------------------------------------------------------


def counts(conn: Connection, stream_pks: Sequence[int]) -> dict[int, int]:
    """Stored points per stream (streams without points are left out)."""
    table = db.segments
    rows = conn.execute(
        sa.select(table.c.stream_pk, sa.func.sum(table.c.count))
        .where(table.c.stream_pk.in_(stream_pks))
        .group_by(table.c.stream_pk)
    ).all()
    return {int(pk): int(total) for pk, total in rows}


def has_points(conn: Connection, stream_pk: int) -> bool:
    table = db.segments
    return conn.execute(sa.select(table.c.id).where(table.c.stream_pk == stream_pk).limit(1)).first() is not None


def delete_streams(conn: Connection, stream_pks: Sequence[int]) -> None:
    conn.execute(sa.delete(db.segments).where(db.segments.c.stream_pk.in_(list(stream_pks))))


def trim(conn: Connection, stream_pks: Sequence[int], start: int | None, end: int | None) -> None:
    """Delete the streams' points before ``start`` and after ``end`` (points at either bound stay):
    segments wholly outside go at once, segments across a bound are decoded and rewritten."""
    table = db.segments
    outside = [table.c.ts_max < start] if start is not None else []
    outside += [table.c.ts_min > end] if end is not None else []
    if not stream_pks or not outside:
        return
    streams = table.c.stream_pk.in_(list(stream_pks))
    conn.execute(sa.delete(table).where(streams, sa.or_(*outside)))
    across = [table.c.ts_min < start] if start is not None else []
    across += [table.c.ts_max > end] if end is not None else []
    for segment in conn.execute(
        _for_update(conn, sa.select(table.c.id, table.c.stream_pk, table.c.payload).where(streams, sa.or_(*across)))
    ):
        stored = decode(segment.payload, segment.stream_pk)
        keep = np.ones(len(stored), dtype=bool)
        if start is not None:
            keep &= stored.ts >= start
        if end is not None:
            keep &= stored.ts <= end
        _rewrite(conn, segment.id, stored.take(keep))


# -- compaction ----------------------------------------------------------------------------------------


def streams_to_compact(conn: Connection, limit: int = 32) -> list[int]:
    """Streams holding at least two small segments (found through a partial index on them)."""
    table = db.segments
    found = conn.execute(
        sa.select(table.c.stream_pk)
        .where(table.c.count < SMALL_SEGMENT)
        .group_by(table.c.stream_pk)
        .having(sa.func.count() >= 2)
        .limit(limit)
    ).scalars()
    return [int(pk) for pk in found]


def merge_plan(sizes: Sequence[int]) -> list[list[int]]:
    """Which consecutive segments (by index, in time order) to merge: runs of small ones up to
    MERGE_LIMIT points (a small one may also open a run with the medium one after it); then a small
    segment left alone (late data between large segments) joins a neighbour, up to MAX_SEGMENT."""
    chunks: list[list[int]] = []
    totals: list[int] = []
    for index, size in enumerate(sizes):
        if chunks and totals[-1] + size <= MERGE_LIMIT and (size < SMALL_SEGMENT or totals[-1] < SMALL_SEGMENT):
            chunks[-1].append(index)
            totals[-1] += size
        else:
            chunks.append([index])
            totals.append(size)
    position = 0
    while position < len(chunks):
        alone = len(chunks[position]) == 1 and totals[position] < SMALL_SEGMENT
        neighbours = [n for n in (position - 1, position + 1) if 0 <= n < len(chunks)]
        target = next((n for n in neighbours if totals[n] + totals[position] <= MAX_SEGMENT), None)
        if alone and target is not None:
            low, high = sorted((position, target))
            chunks[low : high + 1] = [chunks[low] + chunks[high]]
            totals[low : high + 1] = [totals[low] + totals[high]]
            position = low + 1
        else:
            position += 1
    return [chunk for chunk in chunks if len(chunk) > 1]


def compact(conn: Connection, stream_pk: int) -> int:
    """Merge each run of consecutive small segments of a stream (in time order) into segments of up
    to MERGE_LIMIT points; point ids and values stay as they are. Returns the segments removed."""
    db.serialize_on(conn, f"compact:{stream_pk}")
    table = db.segments
    listed = conn.execute(
        sa.select(table.c.id, table.c.count.label("size"))
        .where(table.c.stream_pk == stream_pk)
        .order_by(table.c.ts_min, table.c.id)
    ).all()
    chunks = [[listed[i].id for i in plan] for plan in merge_plan([segment.size for segment in listed])]
    removed = 0
    for ids in chunks:
        # Re-read under lock: a segment rewritten or deleted meanwhile leaves its chunk alone.
        found = conn.execute(_for_update(conn, sa.select(table.c.id, table.c.payload).where(table.c.id.in_(ids)))).all()
        if len(found) != len(ids):
            continue
        merged = Points.concat([decode(row.payload, stream_pk) for row in found]).in_order()
        conn.execute(sa.delete(table).where(table.c.id.in_(ids)))
        rows = _segment_rows(stream_pk, merged)
        _insert(conn, rows)
        removed += len(ids) - len(rows)
    return removed


def compact_all(engine: Any, limit: int = 32) -> int:
    """One compaction pass over the database: each stream in its own short write transaction."""
    with db.reading(engine) as conn:
        pending = streams_to_compact(conn, limit)
    removed = 0
    for stream_pk in pending:
        with engine.begin() as conn:
            removed += compact(conn, stream_pk)
    return removed


# -- reading -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """A selection: streams, ``start <= ts < end``, ``sid_min <= streamer_local_id <= sid_max`` and
    the newest ``lastn`` of those (each bound optional). Results come in (timestamp, id) order."""

    stream_pks: Sequence[int]
    start: int | None = None
    end: int | None = None
    sid_min: int | None = None
    sid_max: int | None = None
    lastn: int | None = None

    def covers(self, segment: Any) -> bool:
        """Whether every point of the segment matches (so its count needs no decoding)."""
        return (
            (self.start is None or segment.ts_min >= self.start)
            and (self.end is None or segment.ts_max < self.end)
            and (self.sid_min is None or segment.sid_min >= self.sid_min)
            and (self.sid_max is None or segment.sid_max <= self.sid_max)
        )

    def mask(self, points: Points) -> np.ndarray | None:
        keep = np.ones(len(points), dtype=bool)
        for bound, values, keep_if in (
            (self.start, points.ts, np.greater_equal),
            (self.end, points.ts, np.less),
            (self.sid_min, points.streamer_local_id, np.greater_equal),
            (self.sid_max, points.streamer_local_id, np.less_equal),
        ):
            if bound is not None:
                keep &= keep_if(values, bound)
        return None if keep.all() else keep


@dataclass
class _Group:
    """Segments whose time ranges overlap (their points interleave), in time order."""

    segments: list[Any]
    covered: bool
    ts_max: int
    decoded: Points | None = None
    payloads: dict[int, bytes] | None = None  # fetched ahead for several groups at once
    skip: int = 0  # points dropped from the front by lastn

    @property
    def stored(self) -> int:
        return sum(s.size for s in self.segments)


@dataclass
class Selection:
    """The points of a :class:`Query`, planned from segment metadata and decoded group by group."""

    conn: Connection
    query: Query
    groups: list[_Group] = field(default_factory=list)

    def _fetch(self, start: int) -> None:
        """Fetch the payloads of the groups from ``start`` on, FETCH_SEGMENTS segments a query."""
        wanted: list[_Group] = []
        segments = 0
        for group in self.groups[start:]:
            if segments >= FETCH_SEGMENTS:
                break
            if group.decoded is None and group.payloads is None:
                wanted.append(group)
                segments += len(group.segments)
        self._fetch_groups(wanted)

    def _fetch_groups(self, groups: list[_Group]) -> None:
        """Fetch the payloads of these groups in one query."""
        if not groups:
            return
        payloads = dict(_blobs(self.conn, "payload", [s.id for g in groups for s in g.segments]))
        for group in groups:
            group.payloads = {s.id: payloads[s.id] for s in group.segments}

    def _points(self, group: _Group) -> Points:
        if group.decoded is None:
            if group.payloads is None:
                self._fetch(next(i for i, g in enumerate(self.groups) if g is group))
            assert group.payloads is not None
            points = Points.concat([decode(group.payloads[s.id], s.stream_pk) for s in group.segments])
            group.payloads = None
            if not group.covered:
                keep = self.query.mask(points)
                if keep is not None:
                    points = points.take(keep)
            # A segment is stored in order; only interleaved segments need merging.
            group.decoded = points.in_order() if len(group.segments) > 1 else points
        return group.decoded

    def _size(self, group: _Group) -> int:
        return (group.stored if group.covered else len(self._points(group))) - group.skip

    def count(self) -> int:
        return sum(self._size(g) for g in self.groups)

    def chunks(self, at_least: int = 1) -> Iterator[Points]:
        """The selection in order, in chunks of whole groups of ``at_least`` points (but the last);
        each group is freed once used."""
        pending: list[Points] = []
        size = 0
        for group in self.groups:
            points = self._points(group)
            group.decoded = None
            if group.skip:
                points = points.take(slice(group.skip, None))
            pending.append(points)
            size += len(points)
            if size >= at_least:
                yield Points.concat(pending)
                pending, size = [], 0
        if size:
            yield Points.concat(pending)

    def page(self, offset: int, limit: int) -> Points:
        """Points ``offset`` to ``offset + limit`` of the selection; only the groups they fall in
        are decoded unless counting needs them."""
        wanted: list[tuple[_Group, int, int]] = []
        position = 0
        for group in self.groups:
            size = self._size(group)
            if position + size > offset and position < offset + limit:
                first = group.skip + max(0, offset - position)
                wanted.append((group, first, group.skip + min(size, offset + limit - position)))
            position += size
            if position >= offset + limit:
                break
        # Only the page's own groups are read (a page of a long stream needs one or two segments).
        self._fetch_groups([g for g, _, _ in wanted if g.decoded is None and g.payloads is None])
        return Points.concat_or_empty([self._points(g).take(slice(first, last)) for g, first, last in wanted])

    def all(self) -> Points:
        return Points.concat_or_empty(list(self.chunks()))

    def buckets(self, first: int, size: int, width: int, *, from_rollups: bool = False) -> tuple[np.ndarray, ...]:
        """Reduce the selection to ``width`` time buckets of ``size`` microseconds from ``first``:
        per non-empty bucket its index, first time, minimum and maximum value (NaN when all its
        values are null) and point count. With ``from_rollups``, the segments wholly selected whose
        rollup level fits the grid are combined from their rollups instead of decoded
        (``rollups.py``); the rest are decoded a chunk at a time. Exact either way."""
        grid = rollups.Grid(first, size, width)
        rest = self._add_rollups(grid) if from_rollups else self
        for chunk in rest.chunks(FETCH_SEGMENTS * SMALL_SEGMENT):
            grid.add_points(chunk.ts, chunk.value, chunk.nulls(VALUE_NULL))
        return grid.result()

    def _add_rollups(self, grid: rollups.Grid) -> Selection:
        """Add the rollups of the segments no bound or ``lastn`` cuts to ``grid`` (read from the
        ``rollup`` column alone); the selection of the segments left to decode."""
        wanted = [
            s.id
            for g in self.groups
            if not g.skip and g.decoded is None  # a group decoded for counting costs nothing more
            for s in g.segments
            if self.query.covers(s)
        ]
        found: dict[int, tuple[int, rollups.Buckets]] = {}
        for i in range(0, len(wanted), rollups.FETCH):
            for segment_id, blob in _blobs(self.conn, "rollup", wanted[i : i + rollups.FETCH]):
                kept = rollups.read(blob) if blob is not None else None
                if kept is not None and grid.fits(kept[0]):
                    found[segment_id] = kept
        in_order = [found[i] for i in wanted if i in found]  # time order: the grid's combine rarely sorts
        if in_order:
            grid.add_rollups(
                np.concatenate([entries.index * level for level, entries in in_order]),
                rollups.Buckets.concat([entries for _, entries in in_order]),
            )
        rest = Selection(self.conn, self.query)
        for group in self.groups:
            left = [s for s in group.segments if s.id not in found]
            if len(left) == len(group.segments):
                rest.groups.append(group)
            else:  # what is left of a group is decoded segment by segment: buckets need no order
                rest.groups += [_Group([s], self.query.covers(s), s.ts_max) for s in left]
        return rest

    def time_bounds(self) -> tuple[int, int] | None:
        """The times of the selection's first and last points (None when it is empty), from segment
        metadata when the groups at either end are wholly selected."""
        ends = [next((g for g in groups if self._size(g)), None) for groups in (self.groups, reversed(self.groups))]
        if ends[0] is None or ends[1] is None:
            return None
        return self._edge_time(ends[0], 0), self._edge_time(ends[1], -1)

    def _edge_time(self, group: _Group, end: int) -> int:
        if group.covered and not group.skip:
            return int(group.segments[0].ts_min if end == 0 else group.ts_max)
        return int(self._points(group).ts[group.skip if end == 0 else -1])


def _blobs(conn: Connection, column: str, ids: list[int]) -> Sequence[Any]:
    """(id, blob) of segments, ``column`` being ``payload`` or ``rollup``. psycopg reads them in the
    binary protocol: as text a bytea is hex, twice the bytes to send and to decode (2-3x slower)."""
    assert column in ("payload", "rollup")
    if conn.dialect.driver == "psycopg":
        with conn.connection.driver_connection.cursor(binary=True) as cursor:  # type: ignore[union-attr]
            cursor.execute(f"SELECT id, {column} FROM segments WHERE id = ANY(%s)", (ids,))
            rows: list[Any] = cursor.fetchall()
            return rows
    table = db.segments
    return conn.execute(sa.select(table.c.id, table.c[column]).where(table.c.id.in_(ids))).all()


def newer(conn: Connection, stream_pk: int, after: int, limit: int) -> Points:
    """The stream's points with ids above ``after`` (stored later: ids only grow), the first
    ``limit`` of them in id order."""
    table = db.segments
    found = [
        decode(segment.payload, stream_pk)
        for segment in conn.execute(
            sa.select(table.c.payload).where(table.c.stream_pk == stream_pk, table.c.id_max > after)
        )
    ]
    stored = Points.concat_or_empty(found)
    stored = stored.take(stored.id > after)
    return stored.take(np.argsort(stored.id, kind="stable")[:limit])


def newest_id(conn: Connection, stream_pk: int) -> int:
    """The highest point id of a stream (0 without points)."""
    table = db.segments
    newest = conn.execute(sa.select(sa.func.max(table.c.id_max)).where(table.c.stream_pk == stream_pk)).scalar()
    return int(newest or 0)


def select(conn: Connection, query: Query) -> Selection:
    """Plan a selection: the segments whose metadata can match, grouped where they overlap in time."""
    selection = Selection(conn, query)
    if not query.stream_pks:
        return selection
    table = db.segments
    statement = sa.select(
        table.c.id,
        table.c.stream_pk,
        table.c.ts_min,
        table.c.ts_max,
        table.c.sid_min,
        table.c.sid_max,
        table.c.count.label("size"),
    ).where(table.c.stream_pk.in_(list(query.stream_pks)))
    if query.start is not None:
        statement = statement.where(table.c.ts_max >= query.start)
    if query.end is not None:
        statement = statement.where(table.c.ts_min < query.end)
    if query.sid_min is not None:
        statement = statement.where(table.c.sid_max >= query.sid_min)
    if query.sid_max is not None:
        statement = statement.where(table.c.sid_min <= query.sid_max)
    segments = conn.execute(statement.order_by(table.c.ts_min, table.c.id)).all()
    for segment in segments:
        last = selection.groups[-1] if selection.groups else None
        # Equal timestamps on a boundary interleave by id, so touching ranges join a group too.
        if last is not None and segment.ts_min <= last.ts_max:
            last.segments.append(segment)
            last.covered = last.covered and query.covers(segment)
            last.ts_max = max(last.ts_max, segment.ts_max)
        else:
            selection.groups.append(_Group([segment], query.covers(segment), segment.ts_max))
    if query.lastn is not None:
        _keep_newest(selection, query.lastn)
    return selection


def _keep_newest(selection: Selection, n: int) -> None:
    kept: list[_Group] = []
    remaining = n
    for group in reversed(selection.groups):
        if remaining <= 0:
            break
        size = selection._size(group)
        if size > remaining:
            group.skip = size - remaining
            size = remaining
        remaining -= size
        kept.append(group)
    selection.groups = kept[::-1]
