"""Notes on streams and devices (``/note/``) and device location history (``/location/``)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.engine import Connection

from iotile_cloud.server import db, serialize
from iotile_cloud.server.context import Principal, state, user_only
from iotile_cloud.server.db import iso
from iotile_cloud.server.http import (
    JSON,
    LARGE,
    REQUIRED,
    APIError,
    Fields,
    Pager,
    body_doc,
    flag,
    forbidden,
    json_body,
    not_found,
    query_datetime,
)
from iotile_cloud.server.routes.data import lastn, validated_items
from iotile_cloud.server.routes.targets import Target, can_access, resolve

router = APIRouter()
Body = Any


def pk_of(raw: str, what: str) -> int:
    """An integer id from the path; the original's 400 (a bare list) otherwise."""
    try:
        return int(raw)
    except ValueError:
        raise APIError(400, [f"{what} ID must be a integer"]) from None


def _item_fields(item: Any, required: tuple[str, ...]) -> Fields:
    fields = Fields(item if isinstance(item, dict) else {})
    if not isinstance(item, dict):
        fields.error("non_field_errors", "Invalid data. Expected a dictionary.")
    for name in required:
        if item is not None and isinstance(item, dict) and item.get(name) is None:
            fields.error(name, REQUIRED)
    return fields


def _writable_target(conn: Connection, principal: Principal, text: str, denied: str | None) -> Target:
    target = resolve(conn, text)
    if target is None or not can_access(conn, principal, target):
        raise APIError(400, {"target": [f"Object with slug={text} does not exist."]})
    if not can_access(conn, principal, target, write=True):
        raise forbidden(denied) if denied else forbidden()
    return target


def _time_filtered(request: Request, query: sa.Select[Any], column: Any, order: Any) -> tuple[sa.Select[Any], Any]:
    start = query_datetime(request, "start")
    end = query_datetime(request, "end")
    if start is not None:
        query = query.where(column >= start)
    if end is not None:
        query = query.where(column < end)
    count = lastn(request)
    if count is not None:  # the last n, still oldest first
        newest = query.order_by(column.desc(), order.desc()).limit(count).subquery()
        query = sa.select(newest)
    return query, count


# -- notes --------------------------------------------------------------------------------------


def note_body(row: Any, lk: serialize.Lookup) -> dict[str, Any]:
    user = lk.user(row.created_by)
    return {
        "id": row.id,
        "target": row.target,
        "timestamp": iso(row.ts),
        "note": row.note,
        "type": row.type,
        "user_info": {
            "username": f"@{user.username}" if user is not None else None,
            "slug": user.slug if user is not None else None,
            "tiny_avatar": serialize.avatar(user.email, {"tiny": 28})["tiny"] if user is not None else None,
        },
        "attachment": None,
    }


def add_note(conn: Connection, target: str, note: str, user_id: int, kind: str = "ui", ts: int | None = None) -> int:
    """Store a note (routes and system actions such as configuration changes use it)."""
    now = db.now_us()
    return int(
        db.new_id(
            conn.execute(
                sa.insert(db.notes).values(
                    target=target,
                    ts=now if ts is None else ts,
                    note=note,
                    type=kind,
                    created_on=now,
                    created_by=user_id,
                )
            )
        )
    )


@router.get("/note/", summary="Notes of a target: ?target=d--...|s--... (required); ?start=, ?end=, ?lastn=")
def note_list(request: Request, principal: Principal = Depends(user_only)) -> Response:
    text = request.query_params.get("target")
    if not text:
        raise APIError(400, {"target": [REQUIRED]})
    pager = Pager(request, LARGE)
    with state(request).read() as conn:
        target = resolve(conn, text)
        if target is None or not can_access(conn, principal, target):
            return pager.respond(0, lambda off, lim: [])
        query, _ = _time_filtered(
            request, sa.select(db.notes).where(db.notes.c.target == target.slug), db.notes.c.ts, db.notes.c.id
        )
        lk = serialize.Lookup(conn)
        sub = query.subquery()
        return pager.respond_query(conn, sa.select(sub), [sub.c.ts, sub.c.id], lambda r: note_body(r, lk))


def _note_fields(item: Any) -> tuple[dict[str, Any] | None, dict[str, list[str]]]:
    fields = _item_fields(item, ("target", "timestamp", "note"))
    values = {
        "target": fields.text("target", max_length=64, allow_blank=False),
        "ts": fields.datetime("timestamp"),
        "note": fields.text("note", max_length=100_000, allow_blank=False),
    }
    return (values if not fields.errors else None), fields.errors


@router.post(
    "/note/",
    openapi_extra=body_doc(
        ["target", "timestamp", "note"], many=True, target="string", timestamp="datetime", note="string"
    ),
    status_code=201,
    summary="Add a note (or a list of notes) to a device or stream (members)",
)
def note_create(
    request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    many, checked = validated_items(body, _note_fields)
    with state(request).write() as conn:
        ids = []
        for values, _ in checked:
            assert values is not None
            target = _writable_target(
                conn, principal, str(values["target"]), f"Not allowed to upload to {values['target']}"
            )
            ids.append(add_note(conn, target.slug, str(values["note"]), principal.user_id, ts=values["ts"]))
        if many:
            return JSON({"count": len(ids)}, status_code=201)
        row = conn.execute(sa.select(db.notes).where(db.notes.c.id == ids[0])).one()
        return JSON(note_body(row, serialize.Lookup(conn)), status_code=201)


def _own_record(conn: Connection, principal: Principal, table: sa.Table, raw: str, what: str, write: bool) -> Any:
    """A note or location by id: 400 for a non-integer id, 404 unknown, 403 when its target is not yours."""
    row = conn.execute(sa.select(table).where(table.c.id == pk_of(raw, what))).first()
    if row is None:
        raise not_found()
    target = resolve(conn, row.target)
    if target is None or not can_access(conn, principal, target, write=write):
        raise forbidden()
    return row


def _own_note(conn: Connection, principal: Principal, raw: str, write: bool) -> Any:
    return _own_record(conn, principal, db.notes, raw, "Note", write)


@router.get("/note/{note_id}/", summary="One note")
def note_detail(note_id: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).read() as conn:
        return JSON(note_body(_own_note(conn, principal, note_id, write=False), serialize.Lookup(conn)))


@router.patch("/note/{note_id}/", openapi_extra=body_doc(note="string", timestamp="datetime"), summary="Edit a note")
@router.put("/note/{note_id}/", include_in_schema=False)
def note_update(
    note_id: str, request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    with state(request).write() as conn:
        row = _own_note(conn, principal, note_id, write=True)
        fields = _item_fields(
            body if body is not None else {}, ("note", "timestamp") if request.method == "PUT" else ()
        )
        values: dict[str, Any] = {}
        if isinstance(body, dict) and "note" in body:
            values["note"] = fields.text("note", max_length=100_000, allow_blank=False)
        if isinstance(body, dict) and "timestamp" in body:
            values["ts"] = fields.datetime("timestamp", required=True)
        fields.check()
        row = db.update_row(conn, db.notes, "id", row.id, values)
        return JSON(note_body(row, serialize.Lookup(conn)))


@router.delete("/note/{note_id}/", status_code=204, summary="Delete a note")
def note_delete(note_id: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).write() as conn:
        row = _own_note(conn, principal, note_id, write=True)
        conn.execute(sa.delete(db.notes).where(db.notes.c.id == row.id))
    return Response(status_code=204)


# -- locations ----------------------------------------------------------------------------------


def location_body(row: Any, lk: serialize.Lookup) -> dict[str, Any]:
    return {
        "id": row.id,
        "timestamp": iso(row.ts),
        "target": row.target,
        "lat": serialize.decimal_text(row.lat),
        "lon": serialize.decimal_text(row.lon),
        "user": lk.username(row.user_id),
    }


def device_mask(conn: Connection, device_id: int | None) -> tuple[int | None, int | None]:
    """A device's data mask (start, end) in microseconds; (None, None) without one."""
    if device_id is None:
        return (None, None)
    row = conn.execute(
        sa.select(db.device_status.c.mask_start, db.device_status.c.mask_end).where(
            db.device_status.c.device_id == device_id
        )
    ).first()
    return (row.mask_start, row.mask_end) if row is not None else (None, None)


@router.get("/location/", summary="Location history of a device: ?target=d--... (?mask=1 keeps to its data mask)")
def location_list(request: Request, principal: Principal = Depends(user_only)) -> Response:
    text = request.query_params.get("target")
    pager = Pager(request, LARGE)
    with state(request).read() as conn:
        target = resolve(conn, text) if text else None
        if target is None or target.org_id is None or not can_access(conn, principal, target):
            return pager.respond(0, lambda off, lim: [])
        query = sa.select(db.device_locations).where(db.device_locations.c.target == target.slug)
        if flag(request, "mask"):
            start, end = device_mask(conn, target.device_id)
            if start is not None:
                query = query.where(db.device_locations.c.ts >= start)
            if end is not None:
                query = query.where(db.device_locations.c.ts < end)
        lk = serialize.Lookup(conn)
        return pager.respond_query(
            conn, query, [db.device_locations.c.ts, db.device_locations.c.id], lambda r: location_body(r, lk)
        )


def _location_fields(item: Any) -> tuple[dict[str, Any] | None, dict[str, list[str]]]:
    fields = _item_fields(item, ("target", "timestamp", "lat", "lon"))
    values = {
        "target": fields.text("target", max_length=64, allow_blank=False),
        "ts": fields.datetime("timestamp"),
        "lat": fields.number("lat"),
        "lon": fields.number("lon"),
    }
    for name, limit in (("lat", 90.0), ("lon", 180.0)):
        coordinate = values[name]
        if isinstance(coordinate, float) and abs(coordinate) > limit:
            fields.error(name, f"Ensure this value is between -{limit:g} and {limit:g}.")
    return (values if not fields.errors else None), fields.errors


@router.post(
    "/location/",
    openapi_extra=body_doc(
        ["target", "timestamp", "lat", "lon"],
        many=True,
        target="string",
        timestamp="datetime",
        lat="number",
        lon="number",
    ),
    status_code=201,
    summary="Add a device location (or a list, all for one target); the device's lat/lon follow the last",
)
def location_create(
    request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    many, checked = validated_items(body, _location_fields)
    items = [values for values, _ in checked if values is not None]
    if many and len({str(v["target"]) for v in items}) != 1:
        raise APIError(400, ["Found more than one target. All entries must be for same target."])
    with state(request).write() as conn:
        target = _writable_target(conn, principal, str(items[0]["target"]), None)
        ids = [
            db.new_id(
                conn.execute(
                    sa.insert(db.device_locations).values(
                        target=target.slug, ts=v["ts"], lat=v["lat"], lon=v["lon"], user_id=principal.user_id
                    )
                )
            )
            for v in items
        ]
        if target.kind == "device":
            last = items[-1]
            conn.execute(
                sa.update(db.devices)
                .where(db.devices.c.id == target.device_id)
                .values(lat=last["lat"], lon=last["lon"])
            )
        lk = serialize.Lookup(conn)
        last_row = conn.execute(sa.select(db.device_locations).where(db.device_locations.c.id == ids[-1])).one()
        if many:
            return JSON({"count": len(ids), "last": location_body(last_row, lk)}, status_code=201)
        return JSON(location_body(last_row, lk), status_code=201)


def _own_location(conn: Connection, principal: Principal, raw: str, write: bool) -> Any:
    return _own_record(conn, principal, db.device_locations, raw, "Location", write)


@router.get("/location/{location_id}/", summary="One location record")
def location_detail(location_id: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).read() as conn:
        return JSON(location_body(_own_location(conn, principal, location_id, write=False), serialize.Lookup(conn)))


@router.delete("/location/{location_id}/", status_code=204, summary="Delete a location record")
def location_delete(location_id: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).write() as conn:
        row = _own_location(conn, principal, location_id, write=True)
        conn.execute(sa.delete(db.device_locations).where(db.device_locations.c.id == row.id))
    return Response(status_code=204)
