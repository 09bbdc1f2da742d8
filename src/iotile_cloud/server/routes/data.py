"""Stream data (``/data/``, ``/stream/<slug>/data/``, ``/df/``) and events (``/event/``)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from sqlalchemy.engine import Connection, Row

from iotile_cloud import wire
from iotile_cloud.server import db, model, points
from iotile_cloud.server.context import Principal, device_or_user, state, write_file
from iotile_cloud.server.db import iso
from iotile_cloud.server.http import (
    JSON,
    LARGE,
    REQUIRED,
    SUPER_LARGE,
    APIError,
    Fields,
    Pager,
    as_object,
    body_doc,
    database_id,
    device_id_or_none,
    json_body,
    not_found,
    query_datetime,
    query_int64,
)
from iotile_cloud.server.limits import inflated_chunks
from iotile_cloud.server.routes.streams import stream_by_slug
from iotile_cloud.server.security import private_dir
from iotile_cloud.utils.basic import iso_from_micros
from iotile_cloud.utils.gid import IOTileDeviceSlug, IOTileStreamSlug, IOTileVariableSlug, int2did, int2pid

router = APIRouter()
Body = Any
MAX_LASTN = 100_000
_FULL_DEVICE = re.compile(r"^d--[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}$")


# -- which streams a filter selects ----------------------------------------------------------------


def _illegal(what: str, why: str) -> APIError:
    return APIError(400, {"detail": f"Illegal filter argument format ({what}). {why}"})


def filter_streams(conn: Connection, principal: Principal, text: str | None) -> list[Row[Any]]:
    """The visible streams a ``filter=`` selects: ``s--`` one, ``d--`` a device's, ``v--`` a variable's.

    Unknown or foreign selections give no streams (the original answered 200 with nothing).
    """
    if not text:
        return []
    kind = text[:3].lower()
    query = sa.select(db.streams).join(db.projects, db.projects.c.id == db.streams.c.project_id)
    if kind == "s--":
        try:
            slug = IOTileStreamSlug(text)
        except ValueError:
            raise _illegal("Illegal Stream", "Stream slug must have three terms: s--<prj>--<dev>--<var>") from None
        query = query.where(db.streams.c.slug == str(slug))
    elif kind == "d--":
        try:
            IOTileDeviceSlug(text)
        except ValueError:
            raise _illegal("Illegal Device", "Expected d--XXXX-XXXX-XXXX-XXXX") from None
        device_id = device_id_or_none(text)
        if not _FULL_DEVICE.match(text) or device_id is None:
            return []  # the original matched the slug text exactly: short forms select nothing
        query = query.where(db.streams.c.device_id == device_id)
    elif kind == "v--":
        try:
            var = IOTileVariableSlug(text)
        except ValueError:
            raise _illegal("Illegal Variable", "Expected v--<prj>--<var>") from None
        query = query.where(
            db.projects.c.gid == var.get_project_slug().get_id(),
            db.streams.c.variable_id.in_(sa.select(db.variables.c.id).where(db.variables.c.lid == var.get_lid())),
        )
    elif kind in ("p--", "b--"):
        return []
    else:
        raise _illegal("Unknown", "Expected a s--, d-- or v-- slug")
    query = query.where(principal.visible(db.projects.c.org_id, db.streams.c.device_id))
    return list(conn.execute(query).all())


def _bounds(request: Request) -> tuple[int | None, int | None, int | None, int | None]:
    """``start``, ``end`` (microseconds), ``streamer_id_min`` and ``streamer_id_max`` of a request."""
    return (
        query_datetime(request, "start"),
        query_datetime(request, "end"),
        query_int64(request, "streamer_id_min"),
        query_int64(request, "streamer_id_max"),
    )


def _range_query(request: Request, table: sa.Table, pks: Sequence[int]) -> sa.Select[Any]:
    query = sa.select(table).where(table.c.stream_pk.in_(pks) if len(pks) != 1 else table.c.stream_pk == pks[0])
    start, end, sid_min, sid_max = _bounds(request)
    if start is not None:
        query = query.where(table.c.ts >= start)
    if end is not None:
        query = query.where(table.c.ts < end)
    if sid_min is not None:
        query = query.where(table.c.streamer_local_id >= sid_min)
    if sid_max is not None:
        query = query.where(table.c.streamer_local_id <= sid_max)
    return query


def point_query(request: Request, pks: Sequence[int]) -> points.Query:
    """The stored points a request selects (the same parameters as :func:`ordered_selection`)."""
    start, end, sid_min, sid_max = _bounds(request)
    return points.Query(pks, start, end, sid_min, sid_max, lastn(request))


def lastn(request: Request) -> int | None:
    raw = request.query_params.get("lastn")
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_LASTN:
        raise APIError(400, {"detail": f"lastn must be an integer between 1 and {MAX_LASTN}"})
    return value


def ordered_selection(request: Request, table: sa.Table, pks: Sequence[int]) -> tuple[Any, tuple[Any, ...]]:
    """The rows a request selects and their order (time, then id); ``lastn``: the newest N, ascending.
    A row without a time (a fixture's event) comes last on every database (SQLite would put it first)."""
    query = _range_query(request, table, pks)
    n = lastn(request)
    if n is None:
        return query, (table.c.ts.asc().nulls_last(), table.c.id)
    newest = query.order_by(table.c.ts.desc().nulls_first(), table.c.id.desc()).limit(n).subquery()
    return sa.select(newest), (newest.c.ts.asc().nulls_last(), newest.c.id)


def paged_rows(
    conn: Connection, request: Request, table: sa.Table, pks: Sequence[int], size_class: tuple[int, int]
) -> tuple[Pager, int, list[Row[Any]]]:
    """Count and fetch one page of a selection."""
    pager = Pager(request, size_class)
    if not pks:
        return pager, 0, []
    query, order = ordered_selection(request, table, pks)
    count = int(conn.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one())
    pager.check(count)
    rows = list(conn.execute(query.order_by(*order).offset(pager.offset).limit(pager.size))) if count else []
    return pager, count, rows


def data_page(
    conn: Connection, request: Request, pks: Sequence[int], size_class: tuple[int, int]
) -> tuple[Pager, int, points.Points]:
    """One page of data points (the fast path of ``/data/`` and ``/stream/<slug>/data/``)."""
    pager = Pager(request, size_class)
    if not pks:
        return pager, 0, points.Points.concat_or_empty([])
    selection = points.select(conn, point_query(request, pks))
    count = selection.count()
    pager.check(count)
    if not count:
        return pager, count, points.Points.concat_or_empty([])
    return pager, count, selection.page(pager.offset, pager.size)


def _stream_info(stream: Row[Any], conn: Connection) -> dict[str, Any]:
    project = conn.execute(sa.select(db.projects.c.gid).where(db.projects.c.id == stream.project_id)).scalar_one()
    lid = int(stream.slug.rsplit("--", 1)[1], 16)
    return {
        "stream": stream.slug,
        "project": f"p--{int2pid(project)}",
        "device": f"d--{int2did(stream.device_id or 0)}",
        "variable": f"v--{int2pid(project)}--{lid:04x}",
    }


def data_item(row: Mapping[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        **info,
        "type": row["type"],
        "device_timestamp": row["device_timestamp"],
        "timestamp": iso(row["ts"]),
        "int_value": row["int_value"],
        "value": row["value"],
        "streamer_local_id": row["streamer_local_id"],
        "dirty_ts": bool(row["dirty_ts"]),
        "status": row["status"],
    }


# -- GET /data/ ---------------------------------------------------------------------------------


def _wants_columns(request: Request) -> bool:
    return wire.COLUMNS_MEDIA_TYPE in request.headers.get("accept", "")


class _ColumnsJSON(JSON):
    """A columns page: numpy arrays are written by orjson in C (datetime64 as ISO text with ``Z``)."""

    media_type = wire.COLUMNS_MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC)


# orjson writes datetime64[us] exactly as iso_from_micros does (``Z``, a fraction only when there is
# one) from year 1 to late 9999; stamps beyond go as text made in Python.
_DATETIME64_RANGE = (-62_135_596_800_000_000, 253_402_207_199_999_999)


def _json_column(page: points.Points, name: str) -> Any:
    """One field of a page, for a columns answer: a numpy array where orjson writes it as the list
    of the item pages would be written (floats with NaN for null, integers without nulls, flags,
    stamps), else that list."""
    if name == "timestamp":
        low, high = _DATETIME64_RANGE
        in_range = not len(page) or (low <= int(page.ts.min()) and int(page.ts.max()) <= high)
        return page.ts.view("datetime64[us]") if in_range else iso_from_micros(page.ts)
    if name == "value":
        return np.where(page.nulls(points.VALUE_NULL), np.nan, page.value)
    if name == "dirty_ts":
        return page.dirty()
    nullable = {"int_value": points.INT_NULL, "device_timestamp": points.DEVICE_TS_NULL}
    if name in nullable and page.nulls(nullable[name]).any():
        return page.as_lists([name])[name]
    if name in ("id", "stream_pk", "int_value", "device_timestamp", "streamer_local_id"):
        return getattr(page, name)
    return page.as_lists([name])[name]


def _as_list(values: Any) -> list[Any]:
    """A column of :func:`_json_column` as a list (NaN floats as None)."""
    if not isinstance(values, np.ndarray):
        return list(values)
    if values.dtype.kind == "M":
        return iso_from_micros(values.view(np.int64))
    out: list[Any] = values.tolist()
    if values.dtype.kind == "f":
        for index in np.flatnonzero(np.isnan(values)).tolist():
            out[index] = None
    return out


def _columns_answer(pager: Pager, count: int, columns: list[Any]) -> Response:
    """A page as one list per item field (``docs/columnar.md``)."""
    returned = len(columns[0]) if columns else 0
    return _ColumnsJSON({**pager.links(count, returned), "columns": columns})


@router.get("/data/", summary="Data points of a stream, device or variable: ?filter=s--|d--|v--")
def data_list(request: Request, principal: Principal = Depends(device_or_user)) -> Response:
    """Item pages as the original; as columns with ``Accept: application/vnd.iotile.columns+json``
    (see ``stream_data``)."""
    as_columns = _wants_columns(request)
    with state(request).read() as conn:
        streams = filter_streams(conn, principal, request.query_params.get("filter"))
        infos = {s.pk: _stream_info(s, conn) for s in streams}
        sizes = (LARGE[0], wire.COLUMN_PAGE_SIZE) if as_columns else LARGE
        pager, count, page = data_page(conn, request, list(infos), sizes)
    pks = page.stream_pk.tolist()
    named = {key: [infos[pk][key] for pk in pks] for key in ("stream", "project", "device", "variable")}
    columns = [named[name] if name in named else _json_column(page, name) for name in wire.DATA_ITEM_FIELDS]
    if as_columns:
        return _columns_answer(pager, count, columns)
    columns = [_as_list(column) for column in columns]
    items = wire.data_items(columns)
    return JSON(pager.body(count, items))


@router.get("/stream/{slug}/data/", summary="Data of one stream with output values")
def stream_data(slug: str, request: Request, principal: Principal = Depends(device_or_user)) -> Response:
    """Items pages as the original; with ``Accept: application/vnd.iotile.columns+json`` the same
    page as one list per field (``columns``), up to 100,000 points a page (``docs/columnar.md``)."""
    as_columns = _wants_columns(request)
    sizes = (SUPER_LARGE[0], wire.COLUMN_PAGE_SIZE) if as_columns else SUPER_LARGE
    with state(request).read() as conn:
        stream = stream_by_slug(conn, principal, slug)
        conv = model.converter(conn, stream)
        pager, count, page = data_page(conn, request, [stream.pk], sizes)
    outputs, shown = conv.page_outputs(page.value, page.nulls(points.VALUE_NULL))
    fields: dict[str, Any] = {"display_value": shown, "output_value": outputs}
    columns = [fields[name] if name in fields else _json_column(page, name) for name in wire.ITEM_FIELDS]
    if as_columns:
        return _columns_answer(pager, count, columns)
    columns = [_as_list(column) for column in columns]
    items = wire.stream_items(columns)
    return JSON(pager.body(count, items))


# -- POST /data/ --------------------------------------------------------------------------------


def _point_fields(item: Any) -> tuple[dict[str, Any] | None, dict[str, list[str]]]:
    """Validate one posted point; (values, errors)."""
    if not isinstance(item, dict):
        return None, {"non_field_errors": ["Invalid data. Expected a dictionary."]}
    fields = Fields(item)
    stream = fields.text("stream", required=True, allow_blank=False, max_length=64)
    ts = fields.datetime("timestamp", required=True)
    int_value = fields.integer("int_value", min_value=-(1 << 63), max_value=(1 << 63) - 1)
    value = fields.number("value")
    kind = fields.choice("type", ["Num", "ITR"])
    device_ts = fields.integer("device_timestamp", min_value=0, max_value=(1 << 63) - 1)
    local_id = fields.integer("streamer_local_id", default=0, min_value=0, max_value=(1 << 63) - 1)
    dirty = fields.boolean("dirty_ts", default=False)
    status = fields.choice("status", ["unk", "cln", "drt", "utc"], default="unk")
    if fields.errors:
        return None, fields.errors
    if "int_value" in item and item["int_value"] is not None and "value" in item and item["value"] is not None:
        return None, {"non_field_errors": ["Only int_value or value should be used"]}
    if int_value is None and value is None:
        return None, {"non_field_errors": ["Either int_value or value should be used"]}
    if value is not None and kind != "ITR":
        return None, {"non_field_errors": ["type should be 'ITR' or None if value is used"]}
    if int_value is not None and kind not in (None, "Num"):
        return None, {"non_field_errors": ["type should be 'Num' if int_value is used"]}
    return {
        "stream": stream,
        "ts": ts,
        "int_value": int_value,
        "value": value,
        "device_timestamp": device_ts,
        "streamer_local_id": local_id,
        "dirty_ts": dirty,
        "status": status,
    }, {}


def writable_stream(conn: Connection, principal: Principal, slug: str, cache: dict[str, Any]) -> Any:
    if slug not in cache:
        try:
            normal = str(IOTileStreamSlug(slug))
        except ValueError:
            raise not_found() from None
        row = conn.execute(sa.select(db.streams).where(db.streams.c.slug == normal)).first()
        if row is None:
            raise not_found()
        org_id = conn.execute(sa.select(db.projects.c.org_id).where(db.projects.c.id == row.project_id)).scalar_one()
        principal.authorize(conn, org_id, row.device_id, write=True)
        cache[slug] = (row, model.converter(conn, row))
    return cache[slug]


def validated_items(body: Any, validate: Any) -> tuple[bool, list[tuple[dict[str, Any], Any]]]:
    """One object or a list of them, each validated; DRF's error shape (a list for a list) on failure."""
    many = isinstance(body, list)
    items = body if many else [as_object(body)]
    checked = [validate(item) for item in items]
    if any(errors for _, errors in checked):
        errors = [e for _, e in checked]
        raise APIError(400, errors if many else errors[0])
    return many, checked


@router.post(
    "/data/",
    openapi_extra=body_doc(
        ["stream", "timestamp"],
        many=True,
        stream="string",
        timestamp="datetime",
        int_value="integer",
        value="number",
        type="string",
        device_timestamp="integer",
        streamer_local_id="integer",
        dirty_ts="boolean",
        status="string",
    ),
    status_code=201,
    summary="Add one point or a list of points (members)",
)
def data_create(
    request: Request, body: Body = Depends(json_body), principal: Principal = Depends(device_or_user)
) -> Response:
    many, checked = validated_items(body, _point_fields)
    with state(request).write() as conn:
        cache: dict[str, Any] = {}
        rows = []
        for values, _ in checked:
            assert values is not None
            stream, conv = writable_stream(conn, principal, values.pop("stream"), cache)
            if values["int_value"] is not None:
                values["value"], values["type"] = conv.value(values["int_value"])
            else:
                values["type"] = "ITR"
            rows.append({"stream_pk": stream.pk, **values})
        if not rows:
            return JSON({"count": 0}, status_code=201)
        ids = points.append_rows(conn, rows)
        if many:
            return JSON({"count": len(rows)}, status_code=201)
        stream = next(iter(cache.values()))[0]
        stored = points.find(conn, ids[0])
        assert stored is not None
        return JSON(data_item(stored.row(), _stream_info(stream, conn)), status_code=201)


def _authorized_stream(conn: Connection, principal: Principal, stream_pk: int, write: bool) -> Any:
    """The stream holding a point or event, once the caller may read (or write) it."""
    stream = conn.execute(sa.select(db.streams).where(db.streams.c.pk == stream_pk)).one()
    org_id = conn.execute(sa.select(db.projects.c.org_id).where(db.projects.c.id == stream.project_id)).scalar_one()
    principal.authorize(conn, org_id, stream.device_id, write)
    return stream


def _data_point(
    conn: Connection, principal: Principal, point_id: str, write: bool
) -> tuple[points.Located, dict[str, Any], Any]:
    located = points.find(conn, _row_id(point_id))
    if located is None:
        raise not_found()
    return located, located.row(), _authorized_stream(conn, principal, located.stream_pk, write)


@router.get("/data/{point_id}/", summary="One data point")
def data_detail(point_id: str, request: Request, principal: Principal = Depends(device_or_user)) -> Response:
    with state(request).read() as conn:
        _, row, stream = _data_point(conn, principal, point_id, write=False)
        return JSON(data_item(row, _stream_info(stream, conn)))


@router.put("/data/{point_id}/", summary="Replace one data point (members)")
@router.patch(
    "/data/{point_id}/",
    openapi_extra=body_doc(stream="string", timestamp="datetime", int_value="integer", value="number", type="string"),
    summary="Change one data point (members)",
)
def data_update(
    point_id: str, request: Request, body: Body = Depends(json_body), principal: Principal = Depends(device_or_user)
) -> Response:
    payload = as_object(body)
    with state(request).write() as conn:
        located, row, stream = _data_point(conn, principal, point_id, write=True)
        if request.method == "PUT":
            missing = {k: [REQUIRED] for k in ("stream", "timestamp") if payload.get(k) is None}
            if missing:
                raise APIError(400, missing)
        merged = {
            "stream": stream.slug,
            "timestamp": iso(row["ts"]),
            "streamer_local_id": row["streamer_local_id"],
            "device_timestamp": row["device_timestamp"],
            "dirty_ts": row["dirty_ts"],
            "status": row["status"],
        }
        if "int_value" not in payload and "value" not in payload:
            int_value = row["int_value"]
            merged.update({"int_value": int_value} if int_value is not None else {"value": row["value"], "type": "ITR"})
        merged.update(payload)
        values, errors = _point_fields(merged)
        if errors:
            raise APIError(400, errors)
        assert values is not None
        target, conv = writable_stream(conn, principal, values.pop("stream"), {})
        if values["int_value"] is not None:
            values["value"], values["type"] = conv.value(values["int_value"])
        else:
            values["type"] = "ITR"
        row = points.replace(conn, located, target.pk, values)
        return JSON(data_item(row, _stream_info(target, conn)))


@router.delete("/data/{point_id}/", status_code=204, summary="Delete one data point (members)")
def data_delete(point_id: str, request: Request, principal: Principal = Depends(device_or_user)) -> Response:
    with state(request).write() as conn:
        located, _, _ = _data_point(conn, principal, point_id, write=True)
        points.delete(conn, located)
    return Response(status_code=204)


# -- /df/ ---------------------------------------------------------------------------------------


@router.get(
    "/df/",
    summary="A selection as one table: ?filter=s--|d--|v--&format=csv|json|arrow (or Accept: Arrow IPC)",
)
def data_frame(request: Request, principal: Principal = Depends(device_or_user)) -> Response:
    """CSV/JSON with the original's columns, streamed (``routes/frames.py``), or the columnar Arrow IPC stream.

    The Arrow stream (``format=arrow`` or ``Accept: application/vnd.apache.arrow.stream``) carries
    every column of the selection and works for device and variable filters too; see
    ``docs/columnar.md``.
    """
    params = request.query_params
    text = params.get("filter", "")
    accept = request.headers.get("accept", "")
    fmt = params.get("format") or ("arrow" if "application/vnd.apache.arrow.stream" in accept else "csv")
    if fmt not in ("csv", "json", "arrow"):
        raise APIError(400, {"detail": "format must be csv, json or arrow"})
    if fmt == "arrow":
        if not text.lower().startswith(("s--", "d--", "v--")):
            raise APIError(400, {"detail": "filter argument with a s--, d-- or v-- slug is required"})
        from iotile_cloud.server import columnar  # needs pyarrow: a 406 saying so without the [arrow] extra

        return columnar.arrow_response(request, principal, text)
    from iotile_cloud.server.routes.frames import frame_response

    return frame_response(request, principal, text, fmt)


# -- events -------------------------------------------------------------------------------------


@router.get("/event/", summary="Events of a stream or device: ?filter=s--|d--")
def event_list(request: Request, principal: Principal = Depends(device_or_user)) -> Response:
    from iotile_cloud.server import serialize

    with state(request).read() as conn:
        streams = filter_streams(conn, principal, request.query_params.get("filter"))
        infos = {s.pk: _stream_info(s, conn) for s in streams}
        pager, count, rows = paged_rows(conn, request, db.events, list(infos), LARGE)
        return JSON(pager.body(count, [serialize.event(r, infos[r.stream_pk]) for r in rows]))


def _event_fields(item: Any) -> tuple[dict[str, Any] | None, dict[str, list[str]]]:
    if not isinstance(item, dict):
        return None, {"non_field_errors": ["Invalid data. Expected a dictionary."]}
    fields = Fields(item)
    stream = fields.text("stream", required=True, allow_blank=False, max_length=64)
    ts = fields.datetime("timestamp", required=True)
    device_ts = fields.integer("device_timestamp", min_value=0, max_value=(1 << 63) - 1)
    local_id = fields.integer("streamer_local_id", default=0, min_value=0, max_value=(1 << 63) - 1)
    dirty = fields.boolean("dirty_ts", default=False)
    status = fields.choice("status", ["unk", "cln", "drt", "utc"], default="unk")
    extra = item.get("extra_data")
    if extra is None:
        extra = {}
    if not isinstance(extra, dict):
        fields.error("extra_data", "extra_data must be a valid dictionary object")
    raw = item.get("data")
    if raw is not None and not isinstance(raw, (dict, list)):
        fields.error("data", "data must be a JSON object or list")
    if fields.errors:
        return None, fields.errors
    return {
        "stream": stream,
        "ts": ts,
        "device_timestamp": device_ts,
        "streamer_local_id": local_id,
        "dirty_ts": dirty,
        "status": status,
        "extra_data": orjson.dumps(extra).decode(),
        "raw": raw,
    }, {}


def event_dir(request: Request) -> Path:
    return private_dir(state(request).data_dir / "events")


def insert_event(
    conn: Connection, values: dict[str, Any], stream_pk: int, folder: Path, raw: bytes | None = None, ext: str = "json"
) -> int:
    """Store an event; its attached data goes to ``<data dir>/events/<id>.<ext>``."""
    event_id = int(db.new_id(conn.execute(sa.insert(db.events).values(stream_pk=stream_pk, ext=ext, **values))))
    if raw is not None:
        name = f"{event_id}.{ext}"
        write_file(conn, folder / name, raw)  # gone again if the transaction rolls back
        conn.execute(sa.update(db.events).where(db.events.c.id == event_id).values(data_path=f"events/{name}"))
    return event_id


@router.post(
    "/event/",
    openapi_extra=body_doc(
        ["stream", "timestamp"],
        many=True,
        stream="string",
        timestamp="datetime",
        device_timestamp="integer",
        streamer_local_id="integer",
        extra_data="object",
        data="object",
    ),
    status_code=201,
    summary="Add one event or a list of events (members)",
)
def event_create(
    request: Request, body: Body = Depends(json_body), principal: Principal = Depends(device_or_user)
) -> Response:
    from iotile_cloud.server import serialize

    many, checked = validated_items(body, _event_fields)
    folder = event_dir(request)
    with state(request).write() as conn:
        cache: dict[str, Any] = {}
        ids = []
        for values, _ in checked:
            assert values is not None
            stream, _conv = writable_stream(conn, principal, values.pop("stream"), cache)
            raw = values.pop("raw")
            ids.append(
                (insert_event(conn, values, stream.pk, folder, orjson.dumps(raw) if raw is not None else None), stream)
            )
        if many:
            return JSON({"count": len(ids)}, status_code=201)
        event_id, stream = ids[0]
        row = conn.execute(sa.select(db.events).where(db.events.c.id == event_id)).one()
        return JSON(serialize.event(row, _stream_info(stream, conn)), status_code=201)


def _row_id(raw: str) -> int:
    """A point or event id from the path, refused as the original did when it is not an integer."""
    return database_id(raw, APIError(400, {"detail": "Bad Request: Expected an integer database ID"}))


def readable_event(conn: Connection, principal: Principal, raw_id: str) -> tuple[Any, Any]:
    row = conn.execute(sa.select(db.events).where(db.events.c.id == _row_id(raw_id))).first()
    if row is None:
        raise not_found()
    return row, _authorized_stream(conn, principal, row.stream_pk, write=False)


@router.get("/event/{event_id}/", summary="One event")
def event_detail(event_id: str, request: Request, principal: Principal = Depends(device_or_user)) -> Response:
    from iotile_cloud.server import serialize

    with state(request).read() as conn:
        row, stream = readable_event(conn, principal, event_id)
        return JSON(serialize.event(row, _stream_info(stream, conn)))


@router.get("/event/{event_id}/data/", summary="The data file attached to an event")
def event_data(event_id: str, request: Request, principal: Principal = Depends(device_or_user)) -> Response:
    with state(request).read() as conn:
        row, _ = readable_event(conn, principal, event_id)
    if not row.data_path:
        raise APIError(404, {"error": "Event has no data"})
    path = state(request).data_dir / row.data_path
    if not path.is_file():
        raise APIError(404, {"error": "Event has no data"})
    if path.suffix == ".gz":
        return StreamingResponse(inflated_chunks(path), media_type="application/json")
    return FileResponse(path, media_type="application/json")
