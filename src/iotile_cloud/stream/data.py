"""``StreamData``, ``RawData`` and ``StreamRawData``: every page of stream data as a list of dicts.

Compatible with 0.9.14: ``initialize_from_server(**params)`` reads page after page while the server
says there is a ``next`` one (never computing a page count from ``count``) and fills ``.data``;
subclasses may override ``_fetch_data(**params)``. A page without ``results`` is an error, never an
endless loop. Every request goes through the ``Api`` (its ``requests.Session``, retries, refresh).

``StreamData`` picks the cheaper path for the selection's size: pages asked for as columns (one
list per field; no pyarrow, no object per point on the server), and
for a big selection, shown by the first page, one Arrow stream from this project's server (pyarrow,
no pandas), turned into the very same items. A server that answers the usual item pages is read as
it answers; any failure of the Arrow request falls back to the pages.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import json
import logging
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import dateutil.parser

from iotile_cloud.api.connection import Api
from iotile_cloud.errors import RestBaseException
from iotile_cloud.wire import (
    COLUMN_PAGE_SIZE,
    COLUMNS_MEDIA_TYPE,
    DATA_ITEM_FIELDS,
    ITEM_FIELDS,
    data_items,
    stream_items,
)

# With the names 0.9.14 exposed (it had no __all__, so ``import *`` brought them all).
__all__ = [
    "BaseData",
    "StreamData",
    "RawData",
    "StreamRawData",
    "UnexpectedPageError",
    "Api",
    "dateutil",
    "json",
    "logger",
    "logging",
    "sys",
]

logger = logging.getLogger(__name__)
ProgressCallback = Callable[[int, int], None]


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Building many small dicts at once: the cyclic collector would walk them over and over (none
    of them can form a cycle); it runs again, as it was, afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class UnexpectedPageError(RestBaseException):
    """The server answered a page without a ``results`` list."""


class BaseData:
    """Subclasses implement ``_fetch_data(**params)`` (one page) and may set ``max_page_size``."""

    data: list[dict[str, Any]] = []
    _api: Any = None
    max_page_size = 10000

    def __init__(self, api: Any) -> None:
        self._api = api
        self.data = []

    def _get_args_dict(self, page: int, *args: Any, **kwargs: Any) -> dict[str, Any]:
        parts = dict(kwargs)
        parts["page"] = page
        return parts

    def _date_format(self, timestamp: str) -> Any:
        """A timestamp as a datetime (ValueError with the reason; 0.9.14 called ``sys.exit``)."""
        try:
            return dateutil.parser.parse(timestamp)
        except (ValueError, OverflowError, TypeError) as error:
            raise ValueError(f"Unable to parse timestamp {timestamp!r}: {error}") from None

    def _fetch_data(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        logger.error("Fetch Data not implemented")
        return {}

    @staticmethod
    def _results_of(raw: Any) -> list[dict[str, Any]]:
        results = raw.get("results") if isinstance(raw, dict) else None
        if not isinstance(results, list):
            raise UnexpectedPageError(f"Expected a page with 'results', got {str(raw)[:200]}")
        return results

    # Reading pages as columns (``wire.COLUMNS_MEDIA_TYPE``): the classes whose route offers them set
    # ``_columns_fetch`` to their own ``_fetch_data`` (a subclass overriding it gets item pages).
    columnar = True
    # The largest page the server gives as columns: each request costs a few ms besides its points.
    columns_page_size = COLUMN_PAGE_SIZE
    _columns_fetch: Any = None
    _COLUMNAR_PARAMS = frozenset({"lastn", "start", "end", "streamer_id_min", "streamer_id_max", "page_size"})

    def _columns_route(self) -> tuple[str, tuple[str, ...]]:
        """The path answering columns pages and the item fields, in the order of the columns."""
        raise NotImplementedError

    def _columns_possible(self, params: dict[str, Any]) -> bool:
        return (
            self.columnar
            and self._columns_fetch is not None
            and type(self)._fetch_data is type(self)._columns_fetch
            and set(params) <= self._COLUMNAR_PARAMS
            and hasattr(self._api, "client")
        )

    def _items_from_columns(self, fields: tuple[str, ...], columns: list[list[Any]]) -> list[dict[str, Any]]:
        return [dict(zip(fields, row, strict=True)) for row in zip(*columns, strict=True)]

    def _columns_body(self, params: dict[str, Any], page: int) -> dict[str, Any]:
        """One page, asked for as columns (a server that answers item pages answers those)."""
        path, _fields = self._columns_route()
        # The first page also shows the selection's size (StreamData may then switch to Arrow).
        query = {**params, "page": page, "page_size": params.get("page_size") or self.columns_page_size}
        body = self._api.client.request(
            "GET", path, params=query, headers={"Accept": f"{COLUMNS_MEDIA_TYPE}, application/json;q=0.9"}
        )
        if not isinstance(body, dict):
            raise UnexpectedPageError(f"Expected a page of data, got {str(body)[:200]}")
        return body

    def _page_items(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """A page's items: rebuilt from its columns, or taken as sent."""
        _path, fields = self._columns_route()
        columns = body.get("columns")
        if columns is None:
            return self._results_of(body)
        if not (isinstance(columns, list) and len(columns) == len(fields)):
            raise UnexpectedPageError(f"Expected {len(fields)} columns, got {str(columns)[:200]}")
        return self._items_from_columns(fields, columns)

    def _bigger_path(self, params: dict[str, Any], count: int) -> list[dict[str, Any]] | None:
        """Every item another way, when the first page showed ``count`` (None: keep paging)."""
        return None

    def _read_columns(self, params: dict[str, Any], progress: ProgressCallback | None) -> None:
        """Page after page while the server says there is a next one; from the second page on, the
        next page is fetched in the background while this one's items are built (the server's work
        and ours overlap)."""
        self.data = []
        body = self._columns_body(params, 1)
        count = int(body.get("count") or 0)
        if body.get("next"):
            items = self._bigger_path(params, count)
            if items is not None:
                self.data = items
                return
        with contextlib.ExitStack() as stack:
            fetcher: ThreadPoolExecutor | None = None
            page = 1
            while True:
                following: Future[dict[str, Any]] | None = None
                if body.get("next"):
                    fetcher = fetcher or stack.enter_context(ThreadPoolExecutor(max_workers=1))
                    following = fetcher.submit(self._columns_body, params, page + 1)
                self.data.extend(self._page_items(body))
                if progress:
                    progress(len(self.data), max(int(body.get("count") or 0), len(self.data)))
                if following is None:
                    break
                body, page = following.result(), page + 1
        logger.debug("Downloaded a total of %d records", len(self.data))

    def initialize_from_server(self, *args: Any, progress: ProgressCallback | None = None, **kwargs: Any) -> None:
        """Fetch every page for ``kwargs`` (``lastn``, ``start``, ``end``, ``filter``, ...) into ``.data``."""
        params = {k: v for k, v in kwargs.items() if v is not None and k != "page"}
        if not args and self._columns_possible(params):
            with _collector_paused():
                self._read_columns(params, progress)
            return
        params.setdefault("page_size", self.max_page_size)
        self.data = []
        page = 1
        while page:
            raw = self._fetch_data(**self._get_args_dict(page, *args, **params))
            self.data.extend(self._results_of(raw))
            if progress:
                progress(len(self.data), max(int(raw.get("count") or 0), len(self.data)))
            page = page + 1 if raw.get("next") else 0
        logger.debug("Downloaded a total of %d records", len(self.data))


class StreamData(BaseData):
    """A stream's data with output values: the items of ``GET /stream/<slug>/data/``.

    By default the pages come as columns (``wire.COLUMNS_MEDIA_TYPE``: one list per field, turned
    back into the very same items; ``page_size`` up to 100,000), and a selection of
    ``columnar_min_points`` points or more as one Arrow stream when pyarrow is installed (0: always).
    A server that answers the usual item pages is read as it answers. ``columnar = False`` reads
    item pages only, through ``_fetch_data`` (as does a subclass that overrides ``_fetch_data``).
    """

    max_page_size = 20000
    columnar_min_points = 400_000
    _stream_id: str | None = None

    def __init__(self, stream_id: Any, api: Any) -> None:
        super().__init__(api)
        self._stream_id = str(stream_id)

    @property
    def stream_id(self) -> str:
        return str(self._stream_id)

    def _fetch_data(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        page: dict[str, Any] = self._api.stream(self._stream_id).data.get(**kwargs)
        return page

    _columns_fetch = _fetch_data

    def _columns_route(self) -> tuple[str, tuple[str, ...]]:
        return f"stream/{self._stream_id}/data/", ITEM_FIELDS

    def _items_from_columns(self, fields: tuple[str, ...], columns: list[list[Any]]) -> list[dict[str, Any]]:
        return stream_items(columns) if fields == ITEM_FIELDS else super()._items_from_columns(fields, columns)

    def _arrow_possible(self, params: dict[str, Any]) -> bool:
        lastn = params.get("lastn")
        small = lastn is not None and int(lastn) < self.columnar_min_points
        return not small and importlib.util.find_spec("pyarrow") is not None

    def _bigger_path(self, params: dict[str, Any], count: int) -> list[dict[str, Any]] | None:
        # A big selection: the rest is cheaper as one Arrow stream than as more pages.
        if count >= self.columnar_min_points > 0 and self._arrow_possible(params):
            return self._from_columnar(params, None)
        return None

    def initialize_from_server(self, *args: Any, progress: ProgressCallback | None = None, **kwargs: Any) -> None:
        params = {k: v for k, v in kwargs.items() if v is not None}
        always_arrow = self.columnar_min_points <= 0 and self._arrow_possible(params)
        if not args and always_arrow and self._columns_possible(params):
            with _collector_paused():
                items = self._from_columnar(params, progress)
            if items is not None:
                self.data = items
                return
        super().initialize_from_server(*args, progress=progress, **kwargs)

    def _from_columnar(self, params: dict[str, Any], progress: ProgressCallback | None) -> list[dict[str, Any]] | None:
        """The items rebuilt from the Arrow stream, or None on any failure (then JSON pages)."""
        query = {k: v for k, v in params.items() if k != "page_size" and v is not None}
        try:
            return self._columnar_items(query, progress)
        except Exception as error:  # an optimisation only: whatever went wrong, the JSON pages answer
            logger.debug("Columnar read of %s failed, reading JSON pages: %r", self._stream_id, error)
            return None

    def _columnar_items(self, params: dict[str, Any], progress: ProgressCallback | None) -> list[dict[str, Any]] | None:
        import numpy as np

        from iotile_cloud.stream.frames import fetch_columnar
        from iotile_cloud.utils.basic import iso_from_micros
        from iotile_cloud.utils.mdo import display_values, fixed_point_texts

        client = self._api.client
        table = fetch_columnar(client, {"filter": self._stream_id, **params}, progress)
        if table is None or "type" not in table.column_names:
            return None
        variable = client.get(f"stream/{self._stream_id}/").get("variable")
        places = int(client.get(f"variable/{variable}/").get("decimal_places", 2)) if variable else 2

        def values_of(name: str) -> list[Any]:
            column = table.column(name)
            if column.null_count:
                return list(column.to_pylist())
            return _numbers(column).tolist()  # numpy's tolist is several times faster than Arrow's

        stamps = iso_from_micros(_numbers(table.column("timestamp")))
        kind = table.column("type").combine_chunks()
        # A dictionary column: look the codes up in numpy (Arrow's to_pylist is ~50x slower here).
        kinds = np.array(kind.dictionary.to_pylist(), dtype=object)[_numbers(kind.indices)].tolist()
        int_values, values, outputs = values_of("int_value"), values_of("value"), values_of("output_value")
        local_ids = values_of("streamer_local_id")
        # What display_value shows: the output values, else (no output unit) the values.
        output_column, value_column = table.column("output_value"), table.column("value")
        if output_column.null_count == 0:
            shown = fixed_point_texts(_numbers(output_column), places)
        elif output_column.null_count == len(output_column) and value_column.null_count == 0:
            shown = fixed_point_texts(_numbers(value_column), places)
        else:
            shown = display_values(outputs, values, places)
        return self._items_from_columns(ITEM_FIELDS, [kinds, stamps, int_values, values, shown, outputs, local_ids])


def _numbers(column: Any) -> Any:
    """A fixed-width Arrow column without nulls as one numpy array, read from its buffers.

    ``to_numpy()`` would do the same but imports pandas (pyarrow's pandas shim), which the
    compatible StreamData must not pay for.
    """
    import numpy as np
    import pyarrow as pa

    kind = column.type
    if pa.types.is_timestamp(kind):
        dtype = np.dtype("i8")
    elif pa.types.is_floating(kind) or pa.types.is_integer(kind):
        letter = "f" if pa.types.is_floating(kind) else ("i" if pa.types.is_signed_integer(kind) else "u")
        dtype = np.dtype(f"{letter}{kind.bit_width // 8}")
    else:
        raise TypeError(f"Not a fixed-width numeric column: {kind}")
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    parts = [
        np.frombuffer(chunk.buffers()[1], dtype=dtype, count=len(chunk), offset=chunk.offset * dtype.itemsize)
        for chunk in chunks
        if len(chunk)
    ]
    return np.concatenate(parts) if parts else np.empty(0, dtype)


class RawData(BaseData):
    """Data points of any filter: ``GET /data/?filter=<s--|d--|v-- slug>`` (as columns pages when
    the server offers them, like :class:`StreamData`)."""

    _COLUMNAR_PARAMS = BaseData._COLUMNAR_PARAMS | {"filter"}

    def _fetch_data(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        page: dict[str, Any] = self._api.data.get(**kwargs)
        return page

    _columns_fetch = _fetch_data

    def _columns_route(self) -> tuple[str, tuple[str, ...]]:
        return "data/", DATA_ITEM_FIELDS

    def _items_from_columns(self, fields: tuple[str, ...], columns: list[list[Any]]) -> list[dict[str, Any]]:
        return data_items(columns) if fields == DATA_ITEM_FIELDS else super()._items_from_columns(fields, columns)


class StreamRawData(RawData):
    """A stream's points with their internal ``value`` (no output conversion).

    Named in the 0.9.14 README but never shipped there.
    """

    def __init__(self, stream_id: Any, api: Any) -> None:
        super().__init__(api)
        self.stream_id = str(stream_id)

    def initialize_from_server(self, *args: Any, progress: ProgressCallback | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("filter", self.stream_id)
        super().initialize_from_server(*args, progress=progress, **kwargs)
