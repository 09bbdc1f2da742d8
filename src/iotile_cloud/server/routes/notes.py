"""Notes on streams and devices (``/note/``) with their attached files, and device location history
(``/location/``).

A note's attachment is kept in ``<data dir>/notes/<note id>/<uuid>/<name>`` (owner-only files);
``uploadurl/``, ``upload/`` and ``uploadsuccess/`` follow the original's S3 flow (see ``uploads``).
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response
from sqlalchemy.engine import Connection

from iotile_cloud.server import db, serialize
from iotile_cloud.server.context import Principal, state, user_only
from iotile_cloud.server.db import iso
from iotile_cloud.server.http import (
    JSON,
    LARGE,
    NOT_NULL,
    REQUIRED,
    APIError,
    Fields,
    Pager,
    as_object,
    body_doc,
    flag,
    forbidden,
    is_uuid,
    json_body,
    not_found,
    query_datetime,
)
from iotile_cloud.server.routes.data import lastn, validated_items
from iotile_cloud.server.routes.targets import Target, can_access, resolve
from iotile_cloud.server.security import write_private
from iotile_cloud.server.uploads import file_name_field, is_plain_name, keyed_upload, private_path

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


# The original's upload policy for note attachments, and its S3File.file_type by file extension.
ATTACHMENT_LIMIT = 4_096_000
FILE_TYPES = {
    ".jpg": "image",
    ".jpeg": "image",
    ".png": "image",
    ".sgf": "sgf",
    ".trub": "device-script",
    ".html": "html",
    ".sxd": "SXd",
}


def attachment_body(row: Any, base: str = "") -> dict[str, Any] | None:
    """The original's S3File shape; ``url`` is this server's download route (``base`` + path)."""
    if row.attachment_id is None:
        return None
    title = str(row.attachment_title)
    return {
        "id": row.attachment_id,
        "title": title,
        "url": f"{base}/api/v1/note/{row.id}/attachment/",
        "file_type": FILE_TYPES.get(Path(title).suffix, "unk"),
        "created_on": iso(row.attachment_on),
        "created_by": row.attachment_by,
    }


def note_body(row: Any, lk: serialize.Lookup, base: str = "") -> dict[str, Any]:
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
        "attachment": attachment_body(row, base),
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
        base = _base(request)
        return pager.respond_query(conn, sa.select(sub), [sub.c.ts, sub.c.id], lambda r: note_body(r, lk, base))


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
        return JSON(note_body(row, serialize.Lookup(conn), _base(request)), status_code=201)


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
        row = _own_note(conn, principal, note_id, write=False)
        return JSON(note_body(row, serialize.Lookup(conn), _base(request)))


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
        return JSON(note_body(row, serialize.Lookup(conn), _base(request)))


@router.delete("/note/{note_id}/", status_code=204, summary="Delete a note (and its attachment)")
def note_delete(note_id: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    app = state(request)
    with app.write() as conn:
        row = _own_note(conn, principal, note_id, write=True)
        conn.execute(sa.delete(db.notes).where(db.notes.c.id == row.id))
    shutil.rmtree(_note_folder(app.data_dir, row.id), ignore_errors=True)
    return Response(status_code=204)


# -- note attachments ---------------------------------------------------------------------------


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _note_folder(data_dir: Path, note_id: int) -> Path:
    return data_dir / "notes" / str(note_id)


@router.post(
    "/note/{note_id}/uploadurl/",
    openapi_extra=body_doc(["name"], name="string"),
    status_code=202,
    summary="Where to upload a file to attach to the note (members)",
)
def note_upload_url(
    note_id: str, request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    fields = Fields(as_object(body))
    name = file_name_field(fields)
    with state(request).read() as conn:
        row = _own_note(conn, principal, note_id, write=True)
    file_uuid = str(uuid.uuid4())
    url = str(request.url_for("note_upload", note_id=str(row.id)))
    return JSON({"url": url, "fields": {"key": f"{file_uuid}/{name}"}, "uuid": file_uuid}, status_code=202)


@router.post(
    "/note/{note_id}/upload/",
    openapi_extra=body_doc(["key", "file"], multipart=True, key="string", file="binary"),
    status_code=204,
    summary="Upload the file the note's uploadurl/ names (multipart `key` and `file`, at most 4,096,000 bytes)",
    name="note_upload",
)
async def note_upload(note_id: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    app = state(request)
    with app.read() as conn:
        row = _own_note(conn, principal, note_id, write=True)
    folder, name, data = await keyed_upload(request, "note", limit=ATTACHMENT_LIMIT)

    def save() -> None:
        write_private(private_path(app.data_dir, "notes", str(row.id), folder) / name, data)

    await run_in_threadpool(save)
    return Response(status_code=204)


@router.post(
    "/note/{note_id}/uploadsuccess/",
    openapi_extra=body_doc(["name", "uuid"], name="string", uuid="string"),
    status_code=202,
    summary="Attach the uploaded file to the note (members); a new file replaces the old one",
)
def note_upload_success(
    note_id: str, request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    fields = Fields(as_object(body))
    file_uuid = fields.text("uuid", required=True, allow_blank=False, max_length=36)
    if file_uuid is not None and not is_uuid(file_uuid):
        fields.error("uuid", "Must be a valid UUID.")
    name = file_name_field(fields)
    file_uuid = str(uuid.UUID(str(file_uuid)))
    app = state(request)
    with app.write() as conn:
        row = _own_note(conn, principal, note_id, write=True)
        if not (_note_folder(app.data_dir, row.id) / file_uuid / name).is_file():
            raise APIError(400, {"name": [f"No file {name} was uploaded for this note."]})
        if conn.execute(sa.select(db.notes.c.id).where(db.notes.c.attachment_id == file_uuid)).first():
            raise APIError(400, {"detail": "Illegal or duplicate UUID"})
        values = {
            "attachment_id": file_uuid,
            "attachment_title": name,
            "attachment_on": db.now_us(),
            "attachment_by": principal.user_id,
        }
        row = db.update_row(conn, db.notes, "id", row.id, values)
    _drop_other_uploads(app.data_dir, row.id, keep=file_uuid)
    return JSON(attachment_body(row, _base(request)), status_code=202)


def _drop_other_uploads(data_dir: Path, note_id: int, keep: str) -> None:
    """Files uploaded for the note but not (or no longer) attached: the new attachment replaces them."""
    folder = _note_folder(data_dir, note_id)
    for child in folder.iterdir() if folder.is_dir() else ():
        if child.name != keep:
            shutil.rmtree(child, ignore_errors=True)


@router.get("/note/{note_id}/attachment/", summary="Download the note's attached file")
def note_attachment(note_id: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    app = state(request)
    with app.read() as conn:
        row = _own_note(conn, principal, note_id, write=False)
    if row.attachment_id is None or not is_plain_name(str(row.attachment_title)):
        raise not_found()
    path = _note_folder(app.data_dir, row.id) / row.attachment_id / row.attachment_title
    if not path.is_file():
        raise not_found()
    # Always a download: an uploaded HTML page must not run in the API's origin.
    return FileResponse(
        path,
        filename=row.attachment_title,
        content_disposition_type="attachment",
        headers={"X-Content-Type-Options": "nosniff"},
    )


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


LOCATION_FIELDS = ("target", "timestamp", "lat", "lon")


def _location_fields(
    item: Any, required: tuple[str, ...] = LOCATION_FIELDS
) -> tuple[dict[str, Any] | None, dict[str, list[str]]]:
    fields = _item_fields(item, required)
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


@router.patch(
    "/location/{location_id}/",
    openapi_extra=body_doc(target="string", timestamp="datetime", lat="number", lon="number"),
    summary="Change a location record (members)",
)
@router.put(
    "/location/{location_id}/",
    openapi_extra=body_doc(list(LOCATION_FIELDS), target="string", timestamp="datetime", lat="number", lon="number"),
    summary="Replace a location record (members)",
)
def location_update(
    location_id: str, request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    # As the original: the record changes, the device's own lat/lon (set by the newest POST) stay.
    item = body if body is not None else {}
    given, errors = _location_fields(item, LOCATION_FIELDS if request.method == "PUT" else ())
    if isinstance(item, dict):
        for name in LOCATION_FIELDS:
            if name in item and item[name] is None:
                errors[name] = [NOT_NULL]
    if given is None or errors:
        raise APIError(400, errors)
    values = {name: value for name, value in given.items() if value is not None}
    with state(request).write() as conn:
        row = _own_location(conn, principal, location_id, write=True)
        if "target" in values:
            values["target"] = _writable_target(conn, principal, str(values["target"]), None).slug
        row = db.update_row(conn, db.device_locations, "id", row.id, values)
        return JSON(location_body(row, serialize.Lookup(conn)))


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
