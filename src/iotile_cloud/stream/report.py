"""User reports over streams: ``BaseReportGenerator`` and ``AccumulationReportGenerator``.

As in 0.9.14, ``compute_sum(sources, start, end)`` gathers the streams of ``p--`` projects, ``d--``
devices and ``s--`` streams, then ``_process_data`` works on them. Fixes: every page of the stream
lists is read, a stream named twice is counted once, and a null ``output_unit`` is tolerated.
This module exposes the names 0.9.14 did (``from iotile_cloud.stream.report import *`` brings
``Api``, the slug classes, ``StreamData``, ...).
"""

from __future__ import annotations

import logging
from builtins import int  # noqa: F401, UP029 - a name 0.9.14 exposed from this module
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pprint import pprint
from typing import Any

from iotile_cloud.api.connection import Api
from iotile_cloud.errors import HttpClientError, HttpNotFoundError
from iotile_cloud.stream.data import StreamData
from iotile_cloud.utils.basic import datetime_to_str
from iotile_cloud.utils.gid import (
    IOTileBlockSlug,
    IOTileCloudSlug,
    IOTileDeviceSlug,
    IOTileFleetSlug,
    IOTileProjectSlug,
    IOTileStreamerSlug,
    IOTileStreamSlug,
    IOTileVariableSlug,
    fix_gid,
    gid2int,
    gid_join,
    gid_split,
    int2bid,
    int2did,
    int2fid,
    int2pid,
    int2vid,
    int16gid,
    int32gid,
    int48gid,
    int64gid,
)

__all__ = [
    "BaseReportGenerator",
    "AccumulationReportGenerator",
    "Api",
    "HttpClientError",
    "HttpNotFoundError",
    "StreamData",
    "datetime",
    "datetime_to_str",
    "logger",
    "logging",
    "pprint",
    "IOTileBlockSlug",
    "IOTileCloudSlug",
    "IOTileDeviceSlug",
    "IOTileFleetSlug",
    "IOTileProjectSlug",
    "IOTileStreamerSlug",
    "IOTileStreamSlug",
    "IOTileVariableSlug",
    "fix_gid",
    "gid2int",
    "gid_join",
    "gid_split",
    "int2bid",
    "int2did",
    "int2fid",
    "int2pid",
    "int2vid",
    "int16gid",
    "int32gid",
    "int48gid",
    "int64gid",
]

logger = logging.getLogger(__name__)


def _time(value: Any) -> str:
    return datetime_to_str(value) if isinstance(value, datetime) else str(value)


class BaseReportGenerator:
    """Collects the streams of the sources in ``_streams`` / ``_stream_slugs``; subclasses implement
    ``_process_data(start, end)``."""

    _api: Any = None
    _stream_slugs: list[str] = []
    _streams: list[dict[str, Any]] = []

    def __init__(self, api: Any) -> None:
        self._api = api
        self._clean()

    def _clean(self) -> None:
        self._stream_slugs = []
        self._streams = []

    def _add_streams(self, streams: dict[str, Any]) -> None:
        """Add one page of a stream list (a stream already added is skipped)."""
        logger.debug("Adding %s streams", streams.get("count"))
        for stream in streams.get("results") or []:
            if stream["slug"] not in self._stream_slugs:
                self._stream_slugs.append(stream["slug"])
                self._streams.append(stream)

    def _add_stream_pages(self, **filters: str) -> None:
        """Every page of ``/stream/?<filters>`` (page after page while the server has a ``next``)."""
        try:
            page = self._api.stream().get(**filters)
            number = 1
            while True:
                self._add_streams(page)
                if not page.get("next"):
                    return
                number += 1
                page = self._api.stream().get(page=number, **filters)
        except HttpClientError as error:
            logger.warning(error)

    def _fetch_streams_from_project_slug(self, slug: str) -> None:
        self._add_stream_pages(project=str(IOTileProjectSlug(slug)))

    def _fetch_streams_from_device_slug(self, slug: str) -> None:
        self._add_stream_pages(device=str(IOTileDeviceSlug(slug)))

    def _fetch_stream_from_slug(self, slug: str) -> None:
        try:
            stream = self._api.stream(str(IOTileStreamSlug(slug))).get()
        except HttpClientError as error:
            logger.warning(error)
            return
        self._add_streams({"count": 1, "results": [stream]})

    def _process_data(self, start: Any, end: Any = None) -> dict[str, Any]:
        logger.error("_process_data must be implemented")
        return {}

    def compute_sum(self, sources: list[str], start: Any, end: Any = None) -> dict[str, Any]:
        factory = {
            "p--": self._fetch_streams_from_project_slug,
            "d--": self._fetch_streams_from_device_slug,
            "s--": self._fetch_stream_from_slug,
        }
        self._clean()
        for source in sources:
            fetch = factory.get(str(source)[0:3].lower())
            if fetch is None:
                logger.error("Illegal source slug: %s", source)
                continue
            fetch(str(source))
        if not self._streams:
            message = "No streams were found for these GIDs"
            logger.error(message)
            return {"error": message}
        logger.info("Processing %d streams", len(self._streams))
        return self._process_data(start, end)


class AccumulationReportGenerator(BaseReportGenerator):
    """The sum of ``output_value`` of every stream over ``[start, end)``, and the grand total.

    ``{'streams': {slug: {'sum', 'units'}}, 'total'}``; streams summing to 0 are left out.
    """

    concurrency = 4

    def _process_data(self, start: Any, end: Any = None) -> dict[str, Any]:
        window = {"start": _time(start), "end": _time(end or datetime.now(timezone.utc))}
        logger.debug("Processing data from %(start)s to %(end)s", window)

        def total(slug: str) -> float:
            data = StreamData(slug, self._api)
            try:
                data.initialize_from_server(start=window["start"], end=window["end"])
            except HttpNotFoundError as error:
                logger.error(error)
            return float(sum(item["output_value"] for item in data.data if item.get("output_value") is not None))

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            sums = list(pool.map(total, self._stream_slugs))
        stats: dict[str, Any] = {"streams": {}, "total": 0}
        for stream, value in zip(self._streams, sums, strict=True):
            if not value:
                continue
            unit = stream.get("output_unit") or {}
            stats["streams"][stream["slug"]] = {"sum": value, "units": unit.get("unit_short", "")}
            stats["total"] += value
        return stats
