"""The wire format shared by client and server: media types, column names and the Arrow schema.

Both ``server/columnar.py`` (which writes the Arrow IPC stream of ``/df/``) and ``stream/frames.py``
(which reads it) import these, so the two sides cannot drift apart. pyarrow is imported only when a
schema is asked for: the constants are usable without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

ARROW_MEDIA_TYPE = "application/vnd.apache.arrow.stream"
JSON_MEDIA_TYPE = "application/json"
CSV_MEDIA_TYPE = "text/csv"

# A page of ``/stream/<slug>/data/`` or ``/data/`` as columns (asked for with this Accept header): the same page
# links and ``count``, and ``columns`` holding one list per item field, in ITEM_FIELDS order. A
# server that does not know it answers the usual ``results`` page, which clients take as it is.
COLUMNS_MEDIA_TYPE = "application/vnd.iotile.columns+json"
COLUMN_PAGE_SIZE = 100_000  # the largest columns page (items pages stop at 20,000)
ITEM_FIELDS = ("type", "timestamp", "int_value", "value", "display_value", "output_value", "streamer_local_id")
# The same for ``/data/`` (several streams: each point names its stream, project, device, variable).
DATA_ITEM_FIELDS = (
    "id",
    "stream",
    "project",
    "device",
    "variable",
    "type",
    "device_timestamp",
    "timestamp",
    "int_value",
    "value",
    "streamer_local_id",
    "dirty_ts",
    "status",
)


def stream_items(columns: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """The items of a ``/stream/<slug>/data/`` page from its columns (ITEM_FIELDS order): what the
    server sends as JSON items and what StreamData rebuilds from a columns page. Spelled out: a dict
    display is about twice as fast as ``dict(zip(...))`` per point."""
    return [
        {
            "type": kind,
            "timestamp": ts,
            "int_value": iv,
            "value": v,
            "display_value": text,
            "output_value": out,
            "streamer_local_id": sid,
        }
        for kind, ts, iv, v, text, out, sid in zip(*columns, strict=True)
    ]


def data_items(columns: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """The items of a ``/data/`` page from its columns (DATA_ITEM_FIELDS order), as :func:`stream_items`."""
    return [
        {
            "id": i,
            "stream": stream,
            "project": project,
            "device": device,
            "variable": variable,
            "type": kind,
            "device_timestamp": dts,
            "timestamp": ts,
            "int_value": iv,
            "value": v,
            "streamer_local_id": sid,
            "dirty_ts": dirty,
            "status": status,
        }
        for i, stream, project, device, variable, kind, dts, ts, iv, v, sid, dirty, status in zip(*columns, strict=True)
    ]


# The point statuses and value types, in the order of their dictionary codes on the wire (and of
# the codes the server's point store keeps in its flags).
STATUSES = ("unk", "cln", "drt", "utc")
TYPES = ("Num", "ITR")

# The published columns of a selection, in order.
COLUMNS = (
    "timestamp",
    "value",
    "int_value",
    "output_value",
    "streamer_local_id",
    "device_timestamp",
    "dirty_ts",
    "status",
    "stream",
)
# The server adds the point type so StreamData can rebuild the JSON items exactly.
TYPE_COLUMN = "type"


def table_schema() -> pa.Schema:
    """The columns as the client publishes them (plain strings)."""
    import pyarrow as pa

    return pa.schema(
        [
            ("timestamp", pa.timestamp("us", tz="UTC")),
            ("value", pa.float64()),
            ("int_value", pa.int64()),
            ("output_value", pa.float64()),
            ("streamer_local_id", pa.int64()),
            ("device_timestamp", pa.int64()),
            ("dirty_ts", pa.bool_()),
            ("status", pa.string()),
            ("stream", pa.string()),
        ]
    )


def stream_schema() -> pa.Schema:
    """The columns as the server sends them: the text columns dictionary-encoded, plus ``type``."""
    import pyarrow as pa

    small = pa.dictionary(pa.int8(), pa.string())
    fields = [
        pa.field(f.name, small if f.name == "status" else pa.dictionary(pa.int32(), pa.string()))
        if f.name in ("status", "stream")
        else f
        for f in table_schema()
    ]
    return pa.schema([*fields, pa.field(TYPE_COLUMN, small)])
