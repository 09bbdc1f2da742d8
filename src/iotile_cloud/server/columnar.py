"""The columnar transfer path: a selection of stream data as an Arrow IPC stream.

Rows are read from the database in chunks and each chunk goes out as one Arrow record batch, so
neither side ever holds one Python object per point for long, and the server's memory stays flat.
The format is documented in ``docs/columnar.md``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import sqlalchemy as sa
from fastapi import Request
from fastapi.responses import StreamingResponse

from iotile_cloud.server.http import APIError

try:
    import pyarrow as pa
    import pyarrow.compute as pc
except ModuleNotFoundError:  # [server] runs without pyarrow: only this path needs it, and says so
    raise APIError(
        406,
        {"detail": "The Arrow format needs pyarrow on the server: pip install 'iotile-cloud[arrow]'. Use format=csv."},
    ) from None

from iotile_cloud.server import db, model
from iotile_cloud.server.context import Principal, state
from iotile_cloud.server.routes.data import filter_streams, ordered_selection
from iotile_cloud.stream.frames import ARROW_MEDIA_TYPE
from iotile_cloud.stream.frames import SCHEMA as TABLE_SCHEMA

CHUNK_ROWS = 131_072
STATUSES = ["unk", "cln", "drt", "utc"]
# The published columns (one definition, in the client); on the wire the two text columns are
# dictionary-encoded.
SCHEMA = pa.schema(
    [
        pa.field(f.name, pa.dictionary(pa.int8() if f.name == "status" else pa.int32(), pa.string()))
        if f.name in ("status", "stream")
        else f
        for f in TABLE_SCHEMA
    ]
    # The point type rides along so StreamData can rebuild the JSON items exactly.
    + [pa.field("type", pa.dictionary(pa.int8(), pa.string()))]
)
_COLUMNS = (
    db.data.c.ts,
    db.data.c.value,
    db.data.c.int_value,
    db.data.c.streamer_local_id,
    db.data.c.device_timestamp,
    db.data.c.dirty_ts,
    db.data.c.status,
    db.data.c.stream_pk,
    db.data.c.type,
)


class _Chunks(io.RawIOBase):
    """A write-only sink the IPC writer fills and the response drains batch by batch."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def drain(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        return out


STATUS_DICTIONARY = pa.array(STATUSES)
TYPES = ["Num", "ITR"]
TYPE_DICTIONARY = pa.array(TYPES)


def _read_sqlite(conn: Any, selection: Any, order: list[Any], single_stream: int | None) -> Iterator[pa.RecordBatch]:
    """SQLite through the server's own sqlite3 connection (a second SQLite library in one process,
    such as ADBC's, would break SQLite's file locks), each chunk straight into a numpy record array.

    Python objects per value are the cost here, so the null flags, ``dirty_ts`` and the status code
    travel packed in one integer, and a one-stream selection does not fetch its stream key.
    """
    c = selection.c
    status = sa.case({name: code for code, name in enumerate(STATUSES)}, value=c.status, else_=0)
    flags = (
        sa.case((c.value.is_(None), 1), else_=0)
        + sa.case((c.int_value.is_(None), 2), else_=0)
        + sa.case((c.device_timestamp.is_(None), 4), else_=0)
        + sa.case((c.dirty_ts, 8), else_=0)
        + status * 16
        + sa.case((c.type == "ITR", 64), else_=0)
    )
    columns = [
        c.ts,
        sa.func.coalesce(c.value, 0.0),
        sa.func.coalesce(c.int_value, 0),
        c.streamer_local_id,
        sa.func.coalesce(c.device_timestamp, 0),
        flags,
    ]
    fields = [
        ("ts", "<i8"),
        ("value", "<f8"),
        ("int_value", "<i8"),
        ("streamer_local_id", "<i8"),
        ("device_timestamp", "<i8"),
        ("flags", "<i8"),
    ]
    if single_stream is None:
        columns.append(c.stream_pk)
        fields.append(("stream_pk", "<i8"))
    dtype = np.dtype(fields)
    statement = sa.select(*columns).order_by(*order)
    sql = str(statement.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    cursor = conn.connection.driver_connection.cursor()
    try:
        cursor.execute(sql)
        while rows := cursor.fetchmany(CHUNK_ROWS):
            raw = np.array(rows, dtype=dtype)
            flag = raw["flags"]
            pks = raw["stream_pk"] if single_stream is None else np.full(len(raw), single_stream, dtype=np.int64)
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array(raw["ts"]),
                    pa.array(raw["value"], mask=(flag & 1).astype(bool)),
                    pa.array(raw["int_value"], mask=(flag & 2).astype(bool)),
                    pa.array(raw["streamer_local_id"]),
                    pa.array(raw["device_timestamp"], mask=(flag & 4).astype(bool)),
                    pa.array((flag & 8).astype(bool)),
                    pa.DictionaryArray.from_arrays(pa.array(((flag >> 4) & 3).astype(np.int8)), STATUS_DICTIONARY),
                    pa.array(pks),
                    pa.DictionaryArray.from_arrays(pa.array(((flag >> 6) & 1).astype(np.int8)), TYPE_DICTIONARY),
                ],
                names=[col.name for col in _COLUMNS],
            )
    finally:
        cursor.close()


def _read_postgres(engine: Any, selection: Any, order: list[Any]) -> Iterator[pa.RecordBatch]:
    """PostgreSQL through ADBC, which reads query results straight into Arrow."""
    import adbc_driver_postgresql.dbapi as pg_driver

    statement = sa.select(*(selection.c[col.name] for col in _COLUMNS)).order_by(*order)
    # Every bound value here is an integer (keys, microseconds, ids, a limit): safe to inline.
    sql = str(statement.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    uri = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with pg_driver.connect(uri) as conn, conn.cursor() as cursor:
        cursor.execute(sql)
        yield from cursor.fetch_record_batch()


def _codes(column: pa.Array, dictionary: pa.Array) -> pa.Array:
    """Dictionary codes of a text column (SQLite sends codes already, PostgreSQL sends text)."""
    if pa.types.is_dictionary(column.type):
        return column.indices
    return pc.fill_null(pc.index_in(column.cast(pa.string()), value_set=dictionary), 0)


def _batch(raw: pa.RecordBatch, slugs: pa.Array, index_of_pk: np.ndarray, outputs: list[Any]) -> pa.RecordBatch:
    """A database batch (ts, value, int_value, streamer_local_id, device_timestamp, dirty_ts, status,
    stream_pk) in the published schema, with each stream's output value computed vectorised."""
    values = raw.column("value").cast(pa.float64())
    as_numpy = values.to_numpy(zero_copy_only=False)
    pk_index = index_of_pk[raw.column("stream_pk").to_numpy(zero_copy_only=False)]
    output = np.full(raw.num_rows, np.nan)
    has_output = np.zeros(raw.num_rows, dtype=bool)
    for index, mdo in enumerate(outputs):
        if mdo is None:
            continue
        mask = pk_index == index
        output[mask] = mdo.compute(as_numpy[mask])
        has_output |= mask
    has_output &= ~np.isnan(as_numpy)
    status, kind = (
        _codes(raw.column(name), dictionary)
        for name, dictionary in (("status", STATUS_DICTIONARY), ("type", TYPE_DICTIONARY))
    )
    return pa.RecordBatch.from_arrays(
        [
            raw.column("ts").cast(pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            values,
            raw.column("int_value").cast(pa.int64()),
            pa.array(output, pa.float64(), mask=~has_output),
            raw.column("streamer_local_id").cast(pa.int64()),
            raw.column("device_timestamp").cast(pa.int64()),
            raw.column("dirty_ts").cast(pa.bool_()),
            pa.DictionaryArray.from_arrays(status.cast(pa.int8()), STATUS_DICTIONARY),
            pa.DictionaryArray.from_arrays(pa.array(pk_index, pa.int32()), slugs),
            pa.DictionaryArray.from_arrays(kind.cast(pa.int8()), TYPE_DICTIONARY),
        ],
        schema=SCHEMA,
    )


def arrow_response(request: Request, principal: Principal, text: str) -> StreamingResponse:
    """Stream the selection; ``X-Total-Count`` tells the client how many rows will come."""
    app = state(request)
    with app.read() as conn:
        streams = filter_streams(conn, principal, text)
        pks = [s.pk for s in streams]
        outputs = [model.converter(conn, s).output_mdo for s in streams]
        total = 0
        if pks:
            query, _ = ordered_selection(request, db.data, pks)
            total = int(conn.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one())
    slugs = pa.array([s.slug for s in streams], pa.string())
    index_of_pk = np.full((max(pks) + 1) if pks else 1, -1, dtype=np.int32)
    for index, pk in enumerate(pks):
        index_of_pk[pk] = index
    compression = request.query_params.get("compression") or None
    if compression not in (None, "lz4", "zstd"):
        compression = None

    def generate() -> Iterator[bytes]:
        chunks = _Chunks()
        writer = pa.ipc.new_stream(
            pa.PythonFile(chunks, mode="w"), SCHEMA, options=pa.ipc.IpcWriteOptions(compression=compression)
        )
        if pks:
            query, order = ordered_selection(request, db.data, pks)
            selection = query.subquery()
            ordering = [selection.c[o.name] for o in order]
            with app.read() as conn:
                if conn.dialect.name == "sqlite":
                    batches = _read_sqlite(conn, selection, ordering, pks[0] if len(pks) == 1 else None)
                else:
                    batches = _read_postgres(app.engine, selection, ordering)
                for raw in batches:
                    writer.write_batch(_batch(raw, slugs, index_of_pk, outputs))
                    yield chunks.drain()
        writer.close()
        yield chunks.drain()

    return StreamingResponse(generate(), media_type=ARROW_MEDIA_TYPE, headers={"X-Total-Count": str(total)})
