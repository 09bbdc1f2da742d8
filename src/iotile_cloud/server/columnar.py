"""The columnar transfer path: a selection of stream data as an Arrow IPC stream.

The point store (``points.py``) decodes the selection group by group into numpy columns, and each
group goes out as one Arrow record batch: no Python object per point on either side, and the
server holds one group at a time. The format is documented in ``docs/columnar.md``; its schema and
media type live in ``iotile_cloud.wire``, shared with the client.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from typing import Any

import numpy as np
from fastapi import Request
from fastapi.responses import StreamingResponse

from iotile_cloud import wire
from iotile_cloud.server.http import APIError

try:
    import pyarrow as pa
except ModuleNotFoundError:  # [server] runs without pyarrow: only this path needs it, and says so
    raise APIError(
        406,
        {"detail": "The Arrow format needs pyarrow on the server: pip install 'iotile-cloud[arrow]'. Use format=csv."},
    ) from None

from iotile_cloud.server import model, points
from iotile_cloud.server.context import Principal, state
from iotile_cloud.server.routes.data import filter_streams, point_query

ARROW_MEDIA_TYPE = wire.ARROW_MEDIA_TYPE
SCHEMA = wire.stream_schema()
STATUS_DICTIONARY = pa.array(wire.STATUSES)
TYPE_DICTIONARY = pa.array(wire.TYPES)
SEND_BYTES = 1 << 20  # the answer goes out in pieces of about this size
CHUNK_POINTS = 8_192  # small groups are joined up to this; a larger group is a record batch of its own (no copy)


class _Chunks(io.RawIOBase):
    """A write-only sink the IPC writer fills and the response drains: the writer's many small
    writes (one per buffer) go out joined, about SEND_BYTES at a time. (Kept as a list of copies
    joined once: growing one BytesIO or bytearray instead was twice as slow, reallocating as it grew.)"""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[bytes] = []
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.parts.append(bytes(data))
        self.size += len(data)
        return len(data)

    def drain(self) -> bytes:
        """Everything written since the last drain, as one piece."""
        out = b"".join(self.parts)
        self.parts, self.size = [], 0
        return out


def _nullable(values: np.ndarray, nulls: np.ndarray, kind: pa.DataType | None = None) -> pa.Array:
    """An Arrow array of numpy values, with a validity bitmap only when some are null."""
    return pa.array(values, kind, mask=nulls) if nulls.any() else pa.array(values, kind)


def _batch(selected: points.Points, slugs: pa.Array, index_of_pk: np.ndarray, outputs: list[Any]) -> pa.RecordBatch:
    """Decoded points in the published schema, each stream's output value computed vectorised."""
    n = len(selected)
    values = selected.value
    value_null = selected.nulls(points.VALUE_NULL)
    if len(outputs) == 1:  # one stream (the usual selection): no per-point stream lookup
        pk_index = np.zeros(n, dtype=np.int32)
        if outputs[0] is None:
            output = pa.nulls(n, pa.float64())
        else:
            output = _nullable(outputs[0].compute(values), value_null, pa.float64())
    else:
        pk_index = index_of_pk[selected.stream_pk]
        computed = np.full(n, np.nan)
        missing = value_null.copy()
        for index, mdo in enumerate(outputs):
            mask = pk_index == index
            if mdo is None:
                missing |= mask
            else:
                computed[mask] = mdo.compute(values[mask])
        output = _nullable(computed, missing, pa.float64())
    return pa.RecordBatch.from_arrays(
        [
            pa.array(selected.ts, pa.timestamp("us", tz="UTC")),
            _nullable(values, value_null),
            _nullable(selected.int_value, selected.nulls(points.INT_NULL)),
            output,
            pa.array(selected.streamer_local_id),
            _nullable(selected.device_timestamp, selected.nulls(points.DEVICE_TS_NULL)),
            pa.array(selected.dirty()),
            pa.DictionaryArray.from_arrays(pa.array(selected.status_codes()), STATUS_DICTIONARY),
            pa.DictionaryArray.from_arrays(pa.array(pk_index, pa.int32()), slugs),
            pa.DictionaryArray.from_arrays(pa.array(selected.type_codes()), TYPE_DICTIONARY),
        ],
        schema=SCHEMA,
    )


_END_OF_STREAM = b"\xff\xff\xff\xff\x00\x00\x00\x00"


def _stream_messages(batches: Iterator[pa.RecordBatch]) -> Iterator[bytes | memoryview]:
    """An Arrow IPC stream of these batches, each record batch message sent as Arrow made it.

    The stream writer only opens the stream: the schema, the dictionaries (the same arrays in every
    batch, so they are sent once) and the first batch. Every later batch is its encapsulated message
    (``RecordBatch.serialize``, byte for byte what the writer writes), handed out without a copy: a
    writer into a Python sink would copy each buffer, then join them (54 MB twice for 1M points)."""
    head = _Chunks()
    writer = pa.ipc.new_stream(pa.PythonFile(head, mode="w"), SCHEMA)
    first = next(batches, None)
    if first is None:  # no points: the schema and the end
        writer.close()
        yield head.drain()
        return
    writer.write_batch(first)
    opening = head.drain()
    writer.close()  # its end-of-stream marker stays in `head`: the stream goes on below
    yield opening
    for batch in batches:
        yield memoryview(batch.serialize())
    yield _END_OF_STREAM


def arrow_response(request: Request, principal: Principal, text: str) -> StreamingResponse:
    """Stream the selection; ``X-Total-Count`` tells the client how many rows will come.

    One read transaction serves the count and the body, so the two agree and the groups decoded
    for counting are not decoded again."""
    transaction = contextlib.ExitStack()
    conn = transaction.enter_context(state(request).read())
    try:
        streams = filter_streams(conn, principal, text)
        pks = [s.pk for s in streams]
        outputs = [model.converter(conn, s).output_mdo for s in streams]
        selection = points.select(conn, point_query(request, pks))
        total = selection.count()
    except BaseException:
        transaction.close()
        raise
    slugs = pa.array([s.slug for s in streams], pa.string())
    index_of_pk = np.full((max(pks) + 1) if pks else 1, -1, dtype=np.int32)
    for index, pk in enumerate(pks):
        index_of_pk[pk] = index
    compression = request.query_params.get("compression") or None
    if compression not in (None, "lz4", "zstd"):
        compression = None

    def generate() -> Iterator[bytes | memoryview]:
        with transaction:
            batches = (_batch(selected, slugs, index_of_pk, outputs) for selected in selection.chunks(CHUNK_POINTS))
            if compression is None:
                yield from _stream_messages(batches)
                return
            chunks = _Chunks()
            writer = pa.ipc.new_stream(
                pa.PythonFile(chunks, mode="w"), SCHEMA, options=pa.ipc.IpcWriteOptions(compression=compression)
            )
            for batch in batches:
                writer.write_batch(batch)
                if chunks.size >= SEND_BYTES:
                    yield chunks.drain()
            writer.close()
            yield chunks.drain()

    return StreamingResponse(generate(), media_type=ARROW_MEDIA_TYPE, headers={"X-Total-Count": str(total)})
