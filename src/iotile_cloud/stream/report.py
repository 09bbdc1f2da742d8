"""``AccumulationReportGenerator``: the sum of ``output_value`` per stream over a time range."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from iotile_cloud.stream.data import StreamData
from iotile_cloud.utils.basic import datetime_to_str
from iotile_cloud.utils.gid import IOTileDeviceSlug, IOTileProjectSlug, IOTileStreamSlug

__all__ = ["AccumulationReportGenerator"]


def _time(value: Any) -> str:
    return datetime_to_str(value) if isinstance(value, dt.datetime) else str(value)


class AccumulationReportGenerator:
    concurrency = 4

    def __init__(self, api: Any) -> None:
        self._api = api

    def _streams_of(self, source: str) -> list[dict[str, Any]]:
        kind = source[:3].lower()
        client = self._api.client
        if kind == "p--":
            return list(client.paginate("stream/", project=str(IOTileProjectSlug(source))))
        if kind == "d--":
            return list(client.paginate("stream/", device=str(IOTileDeviceSlug(source))))
        if kind == "s--":
            return [client.get(f"stream/{IOTileStreamSlug(source)}/")]
        raise ValueError(f"Unsupported source {source!r}: expected a p--, d-- or s-- slug")

    def compute_sum(self, sources: list[str], start: Any, end: Any = None) -> dict[str, Any]:
        """``{'streams': {slug: {'sum', 'units'}}, 'total'}``; streams summing to 0 are left out."""
        streams: dict[str, dict[str, Any]] = {}
        for source in sources:
            for stream in self._streams_of(source):
                streams.setdefault(stream["slug"], stream)
        if not streams:
            return {"error": "No streams were found for these GIDs"}
        params = {"start": _time(start), "end": _time(end or dt.datetime.now(dt.timezone.utc))}

        def total(slug: str) -> float:
            data = StreamData(slug, self._api)
            data.initialize_from_server(start=params["start"], end=params["end"])
            return float(sum(item["output_value"] for item in data.data if item.get("output_value") is not None))

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            sums = dict(zip(streams, pool.map(total, streams), strict=True))
        result: dict[str, Any] = {"streams": {}, "total": 0.0}
        for slug, value in sums.items():
            if value == 0:
                continue
            unit = streams[slug].get("output_unit") or {}
            result["streams"][slug] = {"sum": value, "units": unit.get("unit_short", "")}
            result["total"] += value
        return result
