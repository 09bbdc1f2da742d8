"""``StreamData``, ``RawData`` and ``StreamRawData``: every page of stream data as a list of dicts.

Compatible with 0.9.14 (``initialize_from_server(**params)`` then ``.data``), but the first page's
``count`` is used to fetch the remaining pages concurrently, in order, at the largest page size the
server allows; a page without ``results`` is an error, never an endless loop.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from iotile_cloud.api.exceptions import RestBaseException

__all__ = ["BaseData", "StreamData", "RawData", "StreamRawData", "UnexpectedPageError"]

logger = logging.getLogger(__name__)
ProgressCallback = Callable[[int, int], None]


class UnexpectedPageError(RestBaseException):
    """The server answered a page without a ``results`` list."""


class BaseData:
    """Subclasses set ``_path`` (relative to ``/api/v1/``) and ``max_page_size``."""

    max_page_size = 10000
    concurrency = 4

    def __init__(self, api: Any) -> None:
        self._api = api
        self.data: list[dict[str, Any]] = []

    @property
    def _path(self) -> str:
        raise NotImplementedError

    def _fetch_data(self, **params: Any) -> dict[str, Any]:
        page: Any = self._api.client.get(self._path, **params)
        if not isinstance(page, dict) or not isinstance(page.get("results"), list):
            raise UnexpectedPageError(f"Expected a page with 'results' from {self._path}, got {str(page)[:200]}")
        return page

    def initialize_from_server(self, progress: ProgressCallback | None = None, **params: Any) -> None:
        """Fetch every page for ``params`` (``lastn``, ``start``, ``end``, ``filter``, ...) into ``.data``."""
        params = {k: v for k, v in params.items() if v is not None}
        params.pop("page", None)
        size = int(params.setdefault("page_size", self.max_page_size))
        first = self._fetch_data(**params)
        pages: list[list[dict[str, Any]]] = [first["results"]]
        count = int(first.get("count") or len(first["results"]))
        total_pages = max(1, math.ceil(count / size)) if size else 1
        done = len(first["results"])
        if progress:
            progress(done, count)
        if total_pages > 1 and first.get("next"):

            def fetch(number: int) -> list[dict[str, Any]]:
                return self._fetch_data(**params, page=number)["results"]

            with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
                for results in pool.map(fetch, range(2, total_pages + 1)):
                    pages.append(results)
                    done += len(results)
                    if progress:
                        progress(done, count)
            # Data that arrived while we read shows up as extra pages: follow them too.
            number = total_pages + 1
            while len(pages[-1]) == size:
                try:
                    extra = self._fetch_data(**params, page=number)
                except RestBaseException as error:
                    if getattr(error, "status_code", None) == 404:
                        break
                    raise
                pages.append(extra["results"])
                number += 1
        self.data = [item for page in pages for item in page]


class StreamData(BaseData):
    """A stream's data with output values: the items of ``GET /stream/<slug>/data/``.

    When the server offers the columnar path (``docs/columnar.md``) and pyarrow is installed, the
    points come in one Arrow stream and the very same items are rebuilt here, several times faster
    than paging through JSON; otherwise (or with ``columnar = False``) the JSON pages are read.
    """

    max_page_size = 20000
    columnar = True
    _COLUMNAR_PARAMS = frozenset({"lastn", "start", "end", "streamer_id_min", "streamer_id_max", "page_size"})

    def __init__(self, stream_id: Any, api: Any) -> None:
        super().__init__(api)
        self.stream_id = str(stream_id)

    @property
    def _path(self) -> str:
        return f"stream/{self.stream_id}/data/"

    def initialize_from_server(self, progress: ProgressCallback | None = None, **params: Any) -> None:
        if self.columnar and set(params) <= self._COLUMNAR_PARAMS:
            items = self._from_columnar({k: v for k, v in params.items() if k != "page_size"}, progress)
            if items is not None:
                self.data = items
                return
        super().initialize_from_server(progress=progress, **params)

    def _from_columnar(self, params: dict[str, Any], progress: ProgressCallback | None) -> list[dict[str, Any]] | None:
        try:
            from iotile_cloud.stream.frames import fetch_columnar
        except ImportError:  # no pyarrow: JSON pages
            return None
        client = self._api.client
        table = fetch_columnar(client, {"filter": self.stream_id, **params}, progress)
        if table is None or "type" not in table.column_names:
            return None
        import numpy as np

        from iotile_cloud.utils.basic import iso_from_micros
        from iotile_cloud.utils.mdo import display_values

        variable = client.get(f"stream/{self.stream_id}/").get("variable")
        places = int(client.get(f"variable/{variable}/").get("decimal_places", 2)) if variable else 2

        def values_of(name: str) -> list[Any]:
            column = table.column(name)
            # numpy's tolist is several times faster than Arrow's when there are no nulls.
            return list(column.to_numpy().tolist()) if column.null_count == 0 else list(column.to_pylist())

        stamps = iso_from_micros(table.column("timestamp").cast("int64").to_numpy())
        kind = table.column("type").combine_chunks()
        # A dictionary column: look the codes up in numpy (Arrow's to_pylist is ~50x slower here).
        kinds = np.array(kind.dictionary.to_pylist(), dtype=object)[kind.indices.to_numpy()].tolist()
        int_values, values, outputs = values_of("int_value"), values_of("value"), values_of("output_value")
        local_ids = values_of("streamer_local_id")
        shown = display_values(outputs, values, places)
        return [
            {
                "type": kind,
                "timestamp": stamp,
                "int_value": iv,
                "value": v,
                "display_value": text,
                "output_value": out,
                "streamer_local_id": sid,
            }
            for kind, stamp, iv, v, text, out, sid in zip(
                kinds, stamps, int_values, values, shown, outputs, local_ids, strict=True
            )
        ]


class RawData(BaseData):
    """Data points of any filter: ``GET /data/?filter=<s--|d--|v-- slug>``."""

    @property
    def _path(self) -> str:
        return "data/"


class StreamRawData(RawData):
    """A stream's points with their internal ``value`` (no output conversion).

    Named in the 0.9.14 README but never shipped there.
    """

    def __init__(self, stream_id: Any, api: Any) -> None:
        super().__init__(api)
        self.stream_id = str(stream_id)

    def initialize_from_server(self, progress: ProgressCallback | None = None, **params: Any) -> None:
        params.setdefault("filter", self.stream_id)
        super().initialize_from_server(progress=progress, **params)
