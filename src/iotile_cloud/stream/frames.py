"""Stream data straight into columns: Arrow tables, numpy arrays, pandas (and polars) data frames.

The fast path asks ``/api/v1/df/`` for the Arrow IPC stream (``docs/columnar.md``) and decodes it
without one Python object per point. A server that only speaks the original JSON pages (the
public IOTile Cloud, for one) still works: the pages are then fetched concurrently at the largest
page size the server allows, each retried on its own, and turned into columns page by page.

>>> df = fetch_dataframe(api, "s--0000-0001--0000-0000-0000-0002--5001", start="2024-01-01T00:00:00Z")
>>> df["output_value"].resample("1h").mean()
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Callable, Iterable, Iterator
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
    """A file-like view of a streaming HTTP body for pyarrow's IPC reader.

    ``read(n)`` answers n bytes (fewer only at the end) as a memoryview of the received piece when
    it lies in one (no copy: Arrow keeps the piece alive while its arrays use it); a read across
    pieces joins just those."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._current = memoryview(b"")

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> memoryview:
        if size is None or size < 0:
            rest = b"".join([bytes(self._current), *self._chunks])
            self._current = memoryview(b"")
            return memoryview(rest)
        if len(self._current) >= size:
            out = self._current[:size]
            self._current = self._current[size:]
            return out
        # Across pieces: only the bytes asked for are joined; the rest of the last piece stays a view.
        parts = [self._current] if len(self._current) else []
        have = len(self._current)
        self._current = memoryview(b"")
        for chunk in self._chunks:
            view = memoryview(chunk)
            if have + len(view) >= size:
                parts.append(view[: size - have])
                self._current = view[size - have :]
                break
            if len(view):
                parts.append(view)
                have += len(view)
        return parts[0] if len(parts) == 1 else memoryview(b"".join(parts))

    def readinto(self, target: Any) -> int:
        data = self.read(len(target))
        target[: len(data)] = data
        return len(data)


def _normalise(table: pa.Table) -> pa.Table:
    """Dictionary columns decoded, so every path returns the same schema."""
    table = table.select(SCHEMA.names)
    columns = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in table.columns]
    return pa.Table.from_arrays(columns, names=table.column_names).cast(SCHEMA)


_Opened = tuple[pa.ipc.RecordBatchStreamReader, int]


@contextlib.contextmanager
def _arrow_stream(client: Client, params: dict[str, Any]) -> Iterator[_Opened | None]:
    """The columnar answer as an IPC reader and the row count the server announced; None when the
    server does not offer the Arrow format (an auth failure is raised, not taken for that)."""
    with client.stream(
        "GET", "df/", params={**params, "format": "arrow"}, headers={"Accept": ARROW_MEDIA_TYPE}
    ) as response:
        if response.status_code != 200 or not response.headers.get("content-type", "").startswith(ARROW_MEDIA_TYPE):
            if response.status_code in (401, 403):
                response.read()
                from iotile_cloud.client._core import check_response

                check_response(response)
            yield None
            return
        total = int(response.headers.get("x-total-count") or 0)
        yield pa.ipc.open_stream(pa.PythonFile(_BodyReader(response.iter_bytes()), mode="r")), total


def fetch_columnar(client: Client, params: dict[str, Any], progress: Progress | None) -> pa.Table | None:
    """The columnar path as sent (dictionary columns, plus ``type``); None when the server does not
    offer it."""
    with _arrow_stream(client, params) as opened:
        if opened is None:
            return None
        reader, total = opened
        batches = list(_counted(reader, total, progress))
        return pa.Table.from_batches(batches, schema=reader.schema)


def _counted(batches: Iterable[pa.RecordBatch], total: int, progress: Progress | None) -> Iterator[pa.RecordBatch]:
    """The batches as they come, with ``progress(done, total)`` after each (and once if none)."""
    done = 0
    for batch in batches:
        done += batch.num_rows
        if progress:
            progress(done, max(total, done))
        yield batch
    if progress and not done:
        progress(0, 0)


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
    stream = table.column("stream").combine_chunks()
    if not pa.types.is_dictionary(stream.type):
        stream = stream.dictionary_encode()
    codes = stream.indices.to_numpy(zero_copy_only=False)
    by_code = [helpers.get(slug) for slug in stream.dictionary.to_pylist()]
    output = _per_stream_outputs(table.column("value").to_numpy(), codes, by_code)
    return table.set_column(
        table.schema.get_field_index("output_value"), "output_value", pa.array(output, pa.float64(), from_pandas=True)
    )


def _per_stream_outputs(values: np.ndarray, codes: np.ndarray, helpers: list[MdoHelper | None]) -> np.ndarray:
    """Output values: the MDO of each point's stream (``helpers`` by stream code) applied to its
    values, NaN for a stream without one."""
    import numpy as np

    output = np.full(len(values), np.nan)
    for code, helper in enumerate(helpers):
        if helper is not None:
            mask = codes == code
            output[mask] = helper.compute(values[mask])
    return output


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


def _batches(
    client: Client, params: dict[str, Any], progress: Progress | None, columnar: bool
) -> Iterator[tuple[pa.RecordBatch, int]]:
    """The selection's record batches as they arrive, each with the announced total (Arrow), or
    those of the JSON pages when the server does not offer Arrow."""
    if columnar:
        with _arrow_stream(client, params) as opened:
            if opened is not None:
                reader, total = opened
                for batch in _counted(reader, total, progress):
                    yield batch, total
                return
    table = _fetch_pages(client, params, progress)
    for batch in table.to_batches():
        yield batch, table.num_rows


class _FrameColumns:
    """Record batches poured into numpy columns as they arrive, so a download holds one batch of
    Arrow data at a time beside the columns of the frame it becomes (no table of it all first).

    Column types are those ``Table.to_pandas`` gives: an integer column with any null becomes
    float64 with NaN, the text columns become categoricals."""

    INTEGERS = ("int_value", "streamer_local_id", "device_timestamp")
    FLOATS = ("value", "output_value")
    TEXTS = ("status", "stream")
    DTYPES = {"timestamp": "i8", **dict.fromkeys(INTEGERS, "i8"), **dict.fromkeys(FLOATS, "f8")}
    DTYPES |= {"dirty_ts": "?", **dict.fromkeys(TEXTS, "i4")}

    def __init__(self) -> None:
        self.size = 0
        self.capacity = 0
        self.arrays: dict[str, np.ndarray] = {}
        self.categories: dict[str, dict[str, int]] = {name: {} for name in self.TEXTS}

    def _reserve(self, rows: int, hint: int) -> None:
        """Room for ``rows`` more (at once for ``hint``, the announced total, when it is known)."""
        import numpy as np

        if self.arrays and self.size + rows <= self.capacity:
            return
        capacity = max(self.size + rows, hint, 2 * self.capacity)
        for name, dtype in self.DTYPES.items():
            current = self.arrays.get(name)
            grown = np.empty(capacity, dtype=current.dtype if current is not None else dtype)
            if current is not None:
                grown[: self.size] = current[: self.size]
            self.arrays[name] = grown
        self.capacity = capacity

    def add(self, batch: pa.RecordBatch, hint: int = 0) -> None:
        import numpy as np

        rows = batch.num_rows
        if not rows:
            return
        self._reserve(rows, hint)
        at = slice(self.size, self.size + rows)
        names = batch.schema.names
        self.arrays["timestamp"][at] = _plain(batch.column(names.index("timestamp"))).view(np.int64)
        for name in (*self.INTEGERS, *self.FLOATS):
            column = batch.column(names.index(name))
            target = self.arrays[name]
            if column.null_count and target.dtype.kind == "i":  # as to_pandas: nulls make it float
                target = self.arrays[name] = target.astype(np.float64)
            if column.null_count == rows:  # a column without values (device_timestamp, often)
                target[at] = np.nan
            elif column.null_count:
                target[at] = column.cast(pa.float64()).fill_null(np.nan).to_numpy()
            else:
                target[at] = _plain(column)
        self.arrays["dirty_ts"][at] = batch.column(names.index("dirty_ts")).to_numpy(zero_copy_only=False)
        for name in self.TEXTS:
            if name in names:
                self.arrays[name][at] = self._codes(name, batch.column(names.index(name)))
        self.size += rows

    def _codes(self, name: str, column: pa.Array) -> np.ndarray:
        """The column as codes into this download's categories (each batch may bring its own)."""
        import numpy as np

        if not pa.types.is_dictionary(column.type):
            column = column.dictionary_encode()
        known = self.categories[name]
        lookup = np.array([known.setdefault(text, len(known)) for text in column.dictionary.to_pylist()], np.int32)
        indices = column.indices
        if indices.null_count:
            indices = indices.fill_null(0)
        if not len(lookup):
            return np.zeros(len(column), np.int32)
        if np.array_equal(lookup, np.arange(len(lookup))):  # the usual case: the codes are ours already
            return _plain(indices)
        return lookup[_plain(indices)]

    def frame(self, names: list[str]) -> pd.DataFrame:
        """The frame with ``names`` as columns (in that order) and the timestamp as its index; the
        column arrays become the frame's own, uncopied."""
        import numpy as np
        import pandas as pd

        self._reserve(0, 0)
        n = self.size
        columns: dict[str, Any] = {}
        for name in names:
            if name in self.TEXTS:
                by_code = list(self.categories[name])
                codes = self.arrays[name][:n]
                present = np.flatnonzero(np.bincount(codes, minlength=len(by_code))).tolist() if n else []
                used = sorted(by_code[code] for code in present)
                # The codes in the smallest type pandas would choose itself (it would copy them to it).
                small = np.int8 if len(used) < 127 else np.int16 if len(used) < 32767 else np.int32
                remap = np.full(max(len(by_code), 1), -1, dtype=small)
                for position, text in enumerate(used):
                    remap[self.categories[name][text]] = position
                columns[name] = pd.Categorical.from_codes(remap[codes], categories=used, validate=False)
            else:
                columns[name] = self.arrays[name][:n]
        stamps = self.arrays.pop("timestamp")[:n].view("datetime64[us]")
        index = pd.DatetimeIndex(stamps, dtype="datetime64[us, UTC]", name="timestamp")
        return pd.DataFrame(columns, index=index, copy=False)


def _plain(column: pa.Array) -> np.ndarray:
    """A fixed-width Arrow array without nulls as a numpy view of its buffer (no copy)."""
    import numpy as np

    kind = column.type
    if pa.types.is_timestamp(kind):
        dtype = np.dtype(np.int64)
    else:
        dtype = np.dtype(kind.to_pandas_dtype())
    return np.frombuffer(column.buffers()[1], dtype=dtype, count=len(column), offset=column.offset * dtype.itemsize)


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
    and ``stream`` when the filter can select several streams. The batches are decoded into the
    frame's columns as they arrive (see :class:`_FrameColumns`).
    """
    client = _client(api)
    columns = _FrameColumns()
    for batch, total in _batches(client, _params(filter, start, end, lastn), progress, columnar):
        columns.add(batch, total)
    single = str(filter).lower().startswith("s--")
    names = [name for name in SCHEMA.names if name != "timestamp" and not (single and name == "stream")]
    frame = columns.frame(names + (["stream"] if single else []))
    if unit:
        streams = [str(text) for text in frame["stream"].cat.categories]
        helpers = _unit_helper(client, streams, unit)
        codes = frame["stream"].cat.codes.to_numpy()
        by_code: list[MdoHelper | None] = [helpers[slug] for slug in streams]
        frame["output_value"] = _per_stream_outputs(frame["value"].to_numpy(), codes, by_code)
        frame.attrs["unit"] = unit
    if single:
        frame = frame.drop(columns=["stream"])
    return frame


def fetch_polars(api: Any, filter: str, **kwargs: Any) -> Any:
    """The same table as a polars DataFrame (needs ``polars``)."""
    import polars as pl

    return pl.from_arrow(fetch_table(api, filter, **kwargs))
