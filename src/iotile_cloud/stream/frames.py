"""Stream data straight into columns: Arrow tables, numpy arrays, pandas (and polars) data frames.

The fast path asks ``/api/v1/df/`` for the Arrow IPC stream (``docs/columnar.md``) and decodes it
without one Python object per point. A server that only speaks the original JSON pages (the
public IOTile Cloud, for one) still works: the pages are then fetched concurrently at the largest
page size the server allows, each retried on its own, and turned into columns page by page.

>>> df = fetch_dataframe(api, "s--0000-0001--0000-0000-0000-0002--5001", start="2024-01-01T00:00:00Z")
>>> df["output_value"].resample("1h").mean()
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from iotile_cloud import wire
from iotile_cloud.api.exceptions import RestBaseException
from iotile_cloud.utils.gid import IOTileStreamSlug
from iotile_cloud.utils.mdo import MdoHelper

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from iotile_cloud.client import Client

__all__ = ["ARROW_MEDIA_TYPE", "SCHEMA", "fetch_table", "fetch_arrays", "fetch_dataframe", "fetch_polars"]

ARROW_MEDIA_TYPE = wire.ARROW_MEDIA_TYPE
Progress = Callable[[int, int], None]
SCHEMA = wire.table_schema()
JSON_PAGE_SIZE = {"stream": 20000, "data": 10000}
CONCURRENCY = 4


def _client(api_or_client: Any) -> Client:
    return api_or_client.client if hasattr(api_or_client, "client") else api_or_client


def _params(filter: str, start: Any, end: Any, lastn: int | None) -> dict[str, Any]:
    return {"filter": str(filter), "start": start, "end": end, "lastn": lastn}


class _BodyReader(io.RawIOBase):
    """A file-like view of a streaming HTTP body for pyarrow's IPC reader (``read(n)`` returns n
    bytes unless the body ends)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._buffer = bytearray()
        self._done = False

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        while not self._done and (size is None or size < 0 or len(self._buffer) < size):
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                self._done = True
        if size is None or size < 0:
            size = len(self._buffer)
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        return out

    def readinto(self, target: Any) -> int:
        data = self.read(len(target))
        target[: len(data)] = data
        return len(data)


def _normalise(table: pa.Table) -> pa.Table:
    """Dictionary columns decoded, so every path returns the same schema."""
    table = table.select(SCHEMA.names)
    columns = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in table.columns]
    return pa.Table.from_arrays(columns, names=table.column_names).cast(SCHEMA)


def fetch_columnar(client: Client, params: dict[str, Any], progress: Progress | None) -> pa.Table | None:
    """The columnar path as sent (dictionary columns, plus ``type``); None when the server does not
    offer it."""
    with client.stream(
        "GET", "df/", params={**params, "format": "arrow"}, headers={"Accept": ARROW_MEDIA_TYPE}
    ) as response:
        if response.status_code != 200 or not response.headers.get("content-type", "").startswith(ARROW_MEDIA_TYPE):
            if response.status_code in (401, 403):
                response.read()
                from iotile_cloud.client._core import check_response

                check_response(response)
            return None
        total = int(response.headers.get("x-total-count") or 0)
        reader = pa.ipc.open_stream(pa.PythonFile(_BodyReader(response.iter_bytes(1 << 20)), mode="r"))
        batches, done = [], 0
        for batch in reader:
            batches.append(batch)
            done += batch.num_rows
            if progress:
                progress(done, max(total, done))
        table = pa.Table.from_batches(batches, schema=reader.schema)
    if progress and not batches:
        progress(0, 0)
    return table


def _page_table(results: list[dict[str, Any]], stream: str | None) -> pa.Table:
    def column(name: str) -> list[Any]:
        return [item.get(name) for item in results]

    return pa.table(
        {
            "timestamp": pa.array(column("timestamp"), pa.string()).cast(pa.timestamp("us", tz="UTC")),
            "value": pa.array(column("value"), pa.float64()),
            "int_value": pa.array(column("int_value"), pa.int64()),
            "output_value": pa.array(column("output_value"), pa.float64()),
            "streamer_local_id": pa.array([v or 0 for v in column("streamer_local_id")], pa.int64()),
            "device_timestamp": pa.array(column("device_timestamp"), pa.int64()),
            "dirty_ts": pa.array([bool(v) for v in column("dirty_ts")], pa.bool_()),
            "status": pa.array([v or "unk" for v in column("status")], pa.string()),
            "stream": pa.array(column("stream") if stream is None else [stream] * len(results), pa.string()),
        },
        schema=SCHEMA,
    )


def _fetch_pages(client: Client, params: dict[str, Any], progress: Progress | None) -> pa.Table:
    """The JSON fallback: concurrent pages, each retried by the client, in order."""
    text = params["filter"]
    single = text.lower().startswith("s--")
    path = f"stream/{IOTileStreamSlug(text)}/data/" if single else "data/"
    size = JSON_PAGE_SIZE["stream" if single else "data"]
    query = {k: v for k, v in params.items() if v is not None and not (single and k == "filter")}
    stream = str(IOTileStreamSlug(text)) if single else None

    def page(number: int) -> dict[str, Any]:
        body = client.get(path, **query, page=number, page_size=size)
        if not isinstance(body, dict) or not isinstance(body.get("results"), list):
            raise RestBaseException(f"Expected a page with 'results' from {path}, got {str(body)[:200]}")
        return body

    first = page(1)
    total = int(first.get("count") or 0)
    tables = [_page_table(first["results"], stream)]
    done = len(first["results"])
    if progress:
        progress(done, total)
    pages = math.ceil(total / size) if total else 1
    if pages > 1:
        with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
            for body in pool.map(page, range(2, pages + 1)):
                tables.append(_page_table(body["results"], stream))
                done += len(body["results"])
                if progress:
                    progress(done, total)
    table = pa.concat_tables(tables)
    if not single and table.num_rows:
        # /data/ pages carry no output_value: apply each stream's output unit here.
        table = _with_outputs(table, _output_helpers(client, table.column("stream").unique().to_pylist()))
    return table


def _output_helpers(client: Client, stream_slugs: list[str]) -> dict[str, MdoHelper | None]:
    helpers: dict[str, MdoHelper | None] = {}
    for slug in stream_slugs:
        unit = client.get(f"stream/{slug}/").get("output_unit")
        helpers[slug] = MdoHelper(unit["m"], unit["d"], unit.get("o")) if unit else None
    return helpers


def _fetch(
    client: Client, filter: str, start: Any, end: Any, lastn: int | None, progress: Progress | None, columnar: bool
) -> pa.Table:
    """The selection; ``status`` and ``stream`` may come dictionary-encoded (the columnar path)."""
    params = _params(filter, start, end, lastn)
    if columnar:
        table = fetch_columnar(client, params, progress)
        if table is not None:
            return table
    return _fetch_pages(client, params, progress)


def fetch_table(
    api: Any,
    filter: str,
    *,
    start: Any = None,
    end: Any = None,
    lastn: int | None = None,
    progress: Progress | None = None,
    columnar: bool = True,
) -> pa.Table:
    """Every point of a ``s--``, ``d--`` or ``v--`` filter (``start`` inclusive, ``end`` exclusive)
    as an Arrow table in time order, with the columns of :data:`SCHEMA`."""
    return _normalise(_fetch(_client(api), filter, start, end, lastn, progress, columnar))


def _unit_helper(client: Client, stream_slugs: list[str], unit: str) -> dict[str, MdoHelper]:
    """The MDO that turns each stream's internal value into ``unit`` (slug, short or full name)."""
    wanted = unit.lower()
    helpers: dict[str, MdoHelper] = {}
    by_type: dict[str, MdoHelper] = {}
    for slug in stream_slugs:
        var_type = client.get(f"stream/{slug}/").get("var_type") or "default"
        if var_type not in by_type:
            units = client.get(f"vartype/{var_type}/").get("available_output_units") or []
            match = [u for u in units if wanted in (u["slug"].lower(), u["unit_short"].lower(), u["unit_full"].lower())]
            if not match:
                names = ", ".join(u["unit_short"] or u["slug"] for u in units)
                raise ValueError(f"Unit {unit!r} is not available for {slug} ({var_type}): choose one of {names}")
            by_type[var_type] = MdoHelper(match[0]["m"], match[0]["d"], match[0]["o"])
        helpers[slug] = by_type[var_type]
    return helpers


def convert_units(table: pa.Table, client: Client, unit: str) -> pa.Table:
    """``output_value`` in ``unit`` (a unit slug, short or full name the streams' type offers)."""
    column = table.column("stream")
    streams = (
        (column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column).unique().to_pylist()
    )
    return _with_outputs(table, dict(_unit_helper(client, [s for s in streams if s], unit)))


def _with_outputs(table: pa.Table, helpers: dict[str, MdoHelper | None]) -> pa.Table:
    """``output_value`` recomputed from ``value`` with each stream's MDO (vectorised per stream)."""
    import numpy as np

    values = table.column("value").to_numpy()
    stream = table.column("stream")
    if pa.types.is_dictionary(stream.type):
        stream = stream.cast(stream.type.value_type)
    names = stream.to_numpy(zero_copy_only=False)
    output = np.full(len(values), np.nan)
    for slug, helper in helpers.items():
        if helper is not None:
            mask = names == slug
            output[mask] = helper.compute(values[mask])
    return table.set_column(
        table.schema.get_field_index("output_value"), "output_value", pa.array(output, pa.float64(), from_pandas=True)
    )


def fetch_arrays(
    api: Any,
    filter: str,
    *,
    start: Any = None,
    end: Any = None,
    lastn: int | None = None,
    unit: str | None = None,
    progress: Progress | None = None,
    columnar: bool = True,
) -> dict[str, np.ndarray]:
    """Columns as numpy arrays (``timestamp`` is ``datetime64[us]`` in UTC; nulls are NaN in floats)."""
    table = fetch_table(api, filter, start=start, end=end, lastn=lastn, progress=progress, columnar=columnar)
    if unit:
        table = convert_units(table, _client(api), unit)
    out = {}
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_timestamp(column.type):
            column = column.cast(pa.timestamp("us"))
        out[name] = column.to_numpy()
    return out


def fetch_dataframe(
    api: Any,
    filter: str,
    *,
    start: Any = None,
    end: Any = None,
    lastn: int | None = None,
    unit: str | None = None,
    progress: Progress | None = None,
    columnar: bool = True,
) -> pd.DataFrame:
    """A pandas DataFrame indexed by a UTC ``DatetimeIndex`` named ``timestamp``.

    Columns: ``value`` (internal units), ``int_value``, ``output_value`` (the stream's output unit,
    or ``unit`` when given), ``streamer_local_id``, ``device_timestamp``, ``dirty_ts``, ``status``,
    and ``stream`` when the filter can select several streams.
    """
    client = _client(api)
    table = _fetch(client, filter, start, end, lastn, progress, columnar)
    table = table.select([name for name in SCHEMA.names if name in table.column_names])
    if unit:
        table = convert_units(table, client, unit)
    if str(filter).lower().startswith("s--"):
        table = table.drop_columns(["stream"])
    # Text columns become pandas categoricals: one small code per row instead of a Python str each.
    for name in ("status", "stream"):
        if name in table.column_names and not pa.types.is_dictionary(table.column(name).type):
            index = table.column_names.index(name)
            table = table.set_column(index, name, table.column(name).dictionary_encode())
    frame = table.to_pandas(self_destruct=True, split_blocks=True)
    for name in ("status", "stream"):
        if name in frame.columns:
            column = frame[name].cat.remove_unused_categories()
            frame[name] = column.cat.reorder_categories(sorted(column.cat.categories))
    frame = frame.set_index("timestamp")
    if unit:
        frame.attrs["unit"] = unit
    return frame


def fetch_polars(api: Any, filter: str, **kwargs: Any) -> Any:
    """The same table as a polars DataFrame (needs ``polars``)."""
    import polars as pl

    return pl.from_arrow(fetch_table(api, filter, **kwargs))
