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
    writes (one per buffer) gather in one in-memory stream, handed out about SEND_BYTES at a time
    (``BytesIO.getvalue`` gives its buffer away without a copy; a new stream takes the next piece)."""

    def __init__(self) -> None:
        super().__init__()
        self.stream = io.BytesIO()

    @property
    def size(self) -> int:
        return self.stream.tell()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return self.stream.write(data)

    def drain(self) -> bytes:
        """Everything written since the last drain, as one piece."""
        out, self.stream = self.stream.getvalue(), io.BytesIO()
        return out


def _batch(selected: points.Points, slugs: pa.Array, index_of_pk: np.ndarray, outputs: list[Any]) -> pa.RecordBatch:
    """Decoded points in the published schema, each stream's output value computed vectorised."""
    values = selected.value
    pk_index = index_of_pk[selected.stream_pk]
    value_null = selected.nulls(points.VALUE_NULL)
    output = np.full(len(selected), np.nan)
    has_output = np.zeros(len(selected), dtype=bool)
    for index, mdo in enumerate(outputs):
        if mdo is None:
            continue
        mask = pk_index == index if len(outputs) > 1 else slice(None)
        output[mask] = mdo.compute(values[mask])
        has_output[mask] = True
    has_output &= ~value_null
    return pa.RecordBatch.from_arrays(
        [
            pa.array(selected.ts, pa.timestamp("us", tz="UTC")),
            pa.array(values, mask=value_null),
            pa.array(selected.int_value, mask=selected.nulls(points.INT_NULL)),
            pa.array(output, pa.float64(), mask=~has_output),
            pa.array(selected.streamer_local_id),
            pa.array(selected.device_timestamp, mask=selected.nulls(points.DEVICE_TS_NULL)),
            pa.array(selected.dirty()),
            pa.DictionaryArray.from_arrays(pa.array(selected.status_codes()), STATUS_DICTIONARY),
            pa.DictionaryArray.from_arrays(pa.array(pk_index, pa.int32()), slugs),
            pa.DictionaryArray.from_arrays(pa.array(selected.type_codes()), TYPE_DICTIONARY),
        ],
        schema=SCHEMA,
    )


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

    def generate() -> Iterator[bytes]:
        with transaction:
            chunks = _Chunks()
            writer = pa.ipc.new_stream(
                pa.PythonFile(chunks, mode="w"), SCHEMA, options=pa.ipc.IpcWriteOptions(compression=compression)
            )
            for selected in selection.chunks(CHUNK_POINTS):
                writer.write_batch(_batch(selected, slugs, index_of_pk, outputs))
                if chunks.size >= SEND_BYTES:
                    yield chunks.drain()
            writer.close()
            yield chunks.drain()

    return StreamingResponse(generate(), media_type=ARROW_MEDIA_TYPE, headers={"X-Total-Count": str(total)})
