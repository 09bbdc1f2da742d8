"""The CSV and JSON forms of ``/df/``: the original server's data frame, streamed.

The columns follow the original: ``row`` (the timestamp), then ``value`` and ``stream_slug`` for
streams that have a stream record (``int_value`` instead for data kept without one), plus
``device_timestamp`` and ``streamer_local_id`` with ``extended=1``. ``pivot=1`` gives one column per
stream; ``apply_mdo=1`` gives output values; ``pivot=1&apply_mdo=1&stats=1`` gives the statistics of
each column instead. Points leave the point store group by group and go out as they are written, so a
large selection never sits whole in memory (the statistics keep one float64, 8 bytes, per point).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import orjson
import sqlalchemy as sa
from fastapi import Request
from fastapi.responses import StreamingResponse
from sqlalchemy.engine import Connection

from iotile_cloud.server import db, model, points
from iotile_cloud.server.context import Principal, state
from iotile_cloud.server.db import iso
from iotile_cloud.server.http import APIError, parse_bool, query_datetime
from iotile_cloud.utils.gid import IOTileDeviceSlug, IOTileStreamSlug

BATCH = 5000
STATS = ("count", "sum", "mean", "std", "min", "median", "max")
MEDIA = {"csv": "text/csv", "json": "application/json"}


@dataclass
class Selection:
    """The streams a filter selects: their keys, slugs and converters."""

    pks: list[int]
    slugs: dict[int, str]
    converters: dict[int, model.Converter]
    has_record: bool  # False: a stream without a stream record (its raw values are shown)


def _readable_org(conn: Connection, principal: Principal, org_id: str | None) -> bool:
    return org_id is not None and principal.can_read(conn, org_id)


def select_streams(conn: Connection, principal: Principal, text: str) -> Selection:
    """Resolve ``filter=`` as the original: a stream, a device's streams, or a stream without record."""
    kind = text[:3].lower()
    empty = Selection([], {}, {}, True)
    streams = db.streams
    if kind == "s--":
        try:
            slug = IOTileStreamSlug(text)
        except ValueError as error:
            raise APIError(400, {"detail": f"Illegal filter argument format (Illegal Stream). {error}"}) from None
        row = conn.execute(
            sa.select(streams, db.projects.c.org_id.label("org_id"))
            .join(db.projects, db.projects.c.id == streams.c.project_id)
            .where(streams.c.slug == str(slug))
        ).first()
        if row is None:
            return empty
        if row.implicit:
            # Without a stream record, the device's org decides (the project's when there is no device).
            device = conn.execute(sa.select(db.devices.c.org_id).where(db.devices.c.id == row.device_id)).first()
            org_id = device.org_id if device is not None else row.org_id
        else:
            org_id = row.org_id
        if not _readable_org(conn, principal, org_id):
            return empty
        if principal.device_scope is not None and row.device_id != principal.device_scope:
            return empty
        return Selection([row.pk], {row.pk: row.slug}, {row.pk: model.converter(conn, row)}, not row.implicit)
    if kind == "d--":
        try:
            device_id = IOTileDeviceSlug(text).get_id()
        except ValueError as error:
            raise APIError(400, {"detail": f"Illegal filter argument format (Illegal Device). {error}"}) from None
        if not 0 < device_id < 1 << 63:
            return empty
        device = conn.execute(sa.select(db.devices).where(db.devices.c.id == device_id)).first()
        if device is None or not _readable_org(conn, principal, device.org_id):
            return empty
        if principal.device_scope is not None and device.id != principal.device_scope:
            return empty
        rows = conn.execute(
            sa.select(streams).where(streams.c.device_id == device.id, streams.c.implicit.is_(False))
        ).all()
        return Selection(
            [r.pk for r in rows],
            {r.pk: r.slug for r in rows},
            {r.pk: model.converter(conn, r) for r in rows},
            True,
        )
    if kind == "b--":
        return empty  # data blocks keep no data on a local server
    raise APIError(400, {"detail": "filter argument with a s--, d-- or b-- slug is required"})


def _query(request: Request, pks: list[int]) -> points.Query:
    return points.Query(pks, query_datetime(request, "start"), query_datetime(request, "end"))


def _chunks(engine: sa.Engine, query: points.Query) -> Iterator[dict[str, list[Any]]]:
    """The selection as column lists, a few groups at a time, from a connection of their own (the
    answer outlives the handler)."""
    with db.reading(engine) as conn:
        for chunk in points.select(conn, query).chunks(BATCH):
            yield chunk.as_lists()


class _Writer:
    """Writes records as CSV lines or JSON array items; hands out what is written so far."""

    def __init__(self, fmt: str, header: list[str]) -> None:
        self.fmt = fmt
        self.header = header
        self.buffer = io.StringIO()
        self.csv = csv.writer(self.buffer, lineterminator="\n")
        self.first = True
        if fmt == "csv":
            self.csv.writerow(header)
        else:
            self.buffer.write("[")

    def write(self, values: list[Any]) -> None:
        if self.fmt == "csv":
            self.csv.writerow(["" if v is None else v for v in values])
            return
        if not self.first:
            self.buffer.write(",")
        self.first = False
        self.buffer.write(orjson.dumps(dict(zip(self.header, values, strict=True))).decode())

    def drain(self) -> bytes:
        text = self.buffer.getvalue()
        self.buffer.seek(0)
        self.buffer.truncate()
        return text.encode()

    def close(self) -> bytes:
        if self.fmt == "json":
            self.buffer.write("]")
        return self.drain()


def _flat(
    request: Request, sel: Selection, fmt: str, apply_mdo: bool, extended: bool, two_columns: bool = False
) -> Iterator[bytes]:
    value_name = "value" if sel.has_record else "int_value"
    header = ["row", value_name, "stream_slug"] + (["device_timestamp", "streamer_local_id"] if extended else [])
    if two_columns:  # /stream/<slug>/csv/: timestamp and value only
        header, extended = ["timestamp", value_name], False
    writer = _Writer(fmt, header)
    if sel.pks:
        for chunk in _chunks(state(request).engine, _query(request, sel.pks)):
            for i, pk in enumerate(chunk["stream_pk"]):
                if sel.has_record:
                    value = sel.converters[pk].output(chunk["value"][i]) if apply_mdo else chunk["value"][i]
                else:
                    value = chunk["int_value"][i]
                record = [iso(chunk["ts"][i]), value] if two_columns else [iso(chunk["ts"][i]), value, sel.slugs[pk]]
                if extended:
                    record += [chunk["device_timestamp"][i], chunk["streamer_local_id"][i]]
                writer.write(record)
            yield writer.drain()
    yield writer.close()


def _pivot_columns(request: Request, sel: Selection) -> list[int]:
    """The selected streams with points in the time range, in slug order."""
    query = _query(request, sel.pks)
    with state(request).read() as conn:
        present = [pk for pk in sel.pks if points.select(conn, replace(query, stream_pks=[pk])).count()]
    return sorted(present, key=lambda pk: sel.slugs[pk])


def _pivot(request: Request, sel: Selection, fmt: str, apply_mdo: bool, stats: bool) -> Iterator[bytes]:
    columns = _pivot_columns(request, sel) if sel.pks else []
    slugs = [sel.slugs[pk] for pk in columns]
    position = {pk: i for i, pk in enumerate(columns)}

    def value_of(pk: int, value: float | None) -> float | None:
        return sel.converters[pk].output(value) if apply_mdo else value

    chunks = _chunks(state(request).engine, _query(request, columns)) if columns else iter(())
    writer = _Writer(fmt, ["row", *slugs])
    if stats:
        # 8 bytes a point, kept as one float64 array per chunk and column (a list of Python floats
        # was ~80 bytes a point: 1M points, +80 MiB); the median needs them all.
        collected: list[list[np.ndarray]] = [[] for _ in columns]
        for chunk in chunks:
            found: list[list[float]] = [[] for _ in columns]
            for pk, raw in zip(chunk["stream_pk"], chunk["value"], strict=True):
                value = value_of(pk, raw)
                if value is not None:
                    found[position[pk]].append(value)
            for parts, values in zip(collected, found, strict=True):
                if values:
                    parts.append(np.asarray(values, dtype=np.float64))
        merged = [np.concatenate(parts) if parts else np.empty(0, dtype=np.float64) for parts in collected]
        del collected
        for name in STATS:
            writer.write([name, *[_statistic(name, values) for values in merged]])
        yield writer.close()
        return
    current: int | None = None
    line: list[Any] = []
    for chunk in chunks:
        for ts, pk, raw in zip(chunk["ts"], chunk["stream_pk"], chunk["value"], strict=True):
            if ts != current:
                if current is not None:
                    writer.write([iso(current), *line])
                current, line = ts, [None] * len(columns)
            line[position[pk]] = value_of(pk, raw)
        yield writer.drain()
    if current is not None:
        writer.write([iso(current), *line])
    yield writer.close()


def _statistic(name: str, values: np.ndarray) -> float | int | None:
    if name == "count":
        return int(values.size)
    if values.size == 0 or (name == "std" and values.size < 2):
        return None
    reducers: dict[str, Callable[[np.ndarray], Any]] = {
        "sum": np.sum,
        "mean": np.mean,
        "std": lambda v: np.std(v, ddof=1),
        "min": np.min,
        "median": np.median,
        "max": np.max,
    }
    return float(reducers[name](values))


def frame_response(
    request: Request, principal: Principal, text: str, fmt: str, two_columns: bool = False
) -> StreamingResponse:
    """The streamed CSV or JSON answer of ``/df/?filter=...`` (``two_columns``: ``timestamp,value``)."""
    params = request.query_params
    flags = {name: parse_bool(params.get(name, "")) is True for name in ("apply_mdo", "extended", "pivot", "stats")}
    with state(request).read() as conn:
        sel = select_streams(conn, principal, text)
    _query(request, sel.pks)  # a bad start/end is a 400 before the answer starts
    if flags["pivot"] and sel.has_record and not two_columns:
        body = _pivot(request, sel, fmt, flags["apply_mdo"], flags["stats"] and flags["apply_mdo"])
    else:
        body = _flat(request, sel, fmt, flags["apply_mdo"], flags["extended"], two_columns)
    return StreamingResponse(body, media_type=MEDIA[fmt])
