"""Device sub-routes: health settings and status, data mask, reset, trim, firmware upgrade notice,
sensor graph and template, versions and filter logs.

The original scheduled resets and trims on a worker and answered 202 at once; a local server does
the work in the request (one transaction) and answers the same 202 body.
"""

from __future__ import annotations

import inspect
import uuid
from typing import Any

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from sqlalchemy.engine import Connection

from iotile_cloud.server import db, points
from iotile_cloud.server.context import Principal, state, user_only
from iotile_cloud.server.db import iso
from iotile_cloud.server.http import JSON, APIError, Fields, as_object, body_doc, forbidden, json_body, not_found
from iotile_cloud.server.routes.devices import readable_device
from iotile_cloud.server.routes.notes import add_note
from iotile_cloud.utils.gid import int2did

router = APIRouter()
Body = Any


def _status_row(conn: Connection, device_id: int) -> Any:
    row = conn.execute(sa.select(db.device_status).where(db.device_status.c.device_id == device_id)).first()
    if row is None:  # made on first use, as the original's DeviceStatus.get_or_create
        conn.execute(sa.insert(db.device_status).values(device_id=device_id))
        row = conn.execute(sa.select(db.device_status).where(db.device_status.c.device_id == device_id)).one()
    return row


def _writable(conn: Connection, principal: Principal, slug: str, admin: bool = False) -> Any:
    """A device the caller may change: members (``admin``: owners and admins, the original's
    ``can_reset_device``); never while busy."""
    row = readable_device(conn, principal, slug)
    allowed = principal.can_admin(conn, row.org_id) if admin else principal.can_write_data(conn, row.org_id)
    if not allowed:
        raise forbidden()
    if row.state.startswith("B"):
        raise forbidden("Device is busy. Operation cannot be completed at this time")
    return row


# -- health and status ----------------------------------------------------------------------------


def status_body(conn: Connection, device: Any, settings: Any) -> dict[str, Any]:
    last = conn.execute(
        sa.select(sa.func.max(db.streamer_reports.c.created_on), sa.func.max(db.streamers.c.last_id))
        .select_from(db.streamers)
        .outerjoin(db.streamer_reports, db.streamer_reports.c.streamer_id == db.streamers.c.id)
        .where(db.streamers.c.device_id == device.id)
    ).one()
    last_report, last_id = last
    if not settings.health_check_enabled:
        alert = "DSBL"
    elif last_report is None:
        alert = "UNK"
    else:
        late = db.now_us() - last_report > settings.health_check_period * 1_000_000
        alert = "FAIL" if late else "OK"
    return {
        "alert": alert,
        "last_report_ts": iso(last_report),
        "last_known_id": last_id if last_id is not None else 1,
        "last_known_state": alert if alert in ("OK", "FAIL") else "UNK",
        "health_check_enabled": bool(settings.health_check_enabled),
        "health_check_period": settings.health_check_period,
        "notification_recipients": orjson.loads(settings.notification_recipients),
    }


@router.get("/device/{slug}/status/", summary="A device's last upload and health state")
def device_status(slug: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).write() as conn:
        device = readable_device(conn, principal, slug)
        return JSON(status_body(conn, device, _status_row(conn, device.id)))


@router.get("/device/{slug}/health/", summary="A device's health-check settings")
def device_health(slug: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    return device_status(slug, request, principal)


@router.patch(
    "/device/{slug}/health/",
    openapi_extra=body_doc(
        health_check_enabled="boolean", health_check_period="integer", notification_recipients="strings"
    ),
    summary="Change a device's health-check settings (members)",
)
def device_health_update(
    slug: str, request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    fields = Fields(as_object(body))
    values: dict[str, Any] = {}
    if "health_check_enabled" in fields.body:
        values["health_check_enabled"] = fields.boolean("health_check_enabled")
    if "health_check_period" in fields.body:
        values["health_check_period"] = fields.integer("health_check_period", min_value=0, max_value=(1 << 31) - 1)
    if "notification_recipients" in fields.body:
        recipients = fields.body["notification_recipients"]
        if not isinstance(recipients, list) or not all(isinstance(r, str) and len(r) <= 64 for r in recipients):
            fields.error("notification_recipients", 'Expected a list of items but got type "str".')
        else:
            values["notification_recipients"] = orjson.dumps(recipients).decode()
    fields.check()
    with state(request).write() as conn:
        device = _writable(conn, principal, slug)
        _status_row(conn, device.id)
        row = db.update_row(conn, db.device_status, "device_id", device.id, values)
        body_out = status_body(conn, device, row)
        keys = ("health_check_enabled", "health_check_period", "notification_recipients")
        return JSON({k: body_out[k] for k in keys})


# -- data mask ------------------------------------------------------------------------------------


def _mask_time(value: int | None) -> str | None:
    return None if value is None else db.from_us(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def _range(body: Any) -> tuple[int | None, int | None]:
    """``start``/``end`` of a mask or trim body: at least one, start before end."""
    fields = Fields(as_object(body))
    start = fields.datetime("start")
    end = fields.datetime("end")
    fields.check()
    if start is None and end is None:
        raise APIError(400, {"non_field_errors": ["At least one of start/end should be defined"]})
    if start is not None and end is not None and start > end:
        raise APIError(400, {"non_field_errors": ["Start is after end"]})
    return start, end


@router.get("/device/{slug}/mask/", summary="A device's data mask: the time range its data is shown in")
def device_mask(slug: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).read() as conn:
        device = readable_device(conn, principal, slug)
        row = conn.execute(sa.select(db.device_status).where(db.device_status.c.device_id == device.id)).first()
    start, end = (row.mask_start, row.mask_end) if row is not None else (None, None)
    return JSON({"start": _mask_time(start), "end": _mask_time(end)})


@router.patch(
    "/device/{slug}/mask/",
    openapi_extra=body_doc(start="datetime", end="datetime"),
    status_code=202,
    summary="Set a device's data mask (org admins)",
)
def device_mask_set(
    slug: str, request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    start, end = _range(body)
    with state(request).write() as conn:
        device = _writable(conn, principal, slug, admin=True)
        _status_row(conn, device.id)
        db.update_row(conn, db.device_status, "device_id", device.id, {"mask_start": start, "mask_end": end})
    return JSON({"start": _mask_time(start), "end": _mask_time(end)}, status_code=202)


@router.delete("/device/{slug}/mask/", status_code=204, summary="Clear a device's data mask (org admins)")
def device_mask_clear(slug: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).write() as conn:
        device = _writable(conn, principal, slug, admin=True)
        _status_row(conn, device.id)
        db.update_row(conn, db.device_status, "device_id", device.id, {"mask_start": None, "mask_end": None})
    return Response(status_code=204)


# -- reset, trim, upgrade -----------------------------------------------------------------------------


def _device_stream_pks(conn: Connection, device_id: int) -> list[int]:
    return list(conn.execute(sa.select(db.streams.c.pk).where(db.streams.c.device_id == device_id)).scalars())


@router.post(
    "/device/{slug}/reset/",
    openapi_extra=body_doc(full="boolean", include_properties="boolean", include_notes_and_locations="boolean"),
    status_code=202,
    summary="Delete a device's data (and, by default, its properties, notes and locations) (org admins)",
)
def device_reset(
    slug: str, request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    fields = Fields(as_object(body))
    full = fields.boolean("full", default=True)
    include_properties = fields.boolean("include_properties", default=True)
    include_notes = fields.boolean("include_notes_and_locations", default=True)
    fields.check()
    with state(request).write() as conn:
        device = _writable(conn, principal, slug, admin=True)
        device_slug = f"d--{int2did(device.id)}"
        pks = _device_stream_pks(conn, device.id)
        points.delete_streams(conn, pks)
        conn.execute(sa.delete(db.events).where(db.events.c.stream_pk.in_(pks)))
        if full:  # forget what was acknowledged, so the same readings can be uploaded again
            conn.execute(sa.delete(db.streamers).where(db.streamers.c.device_id == device.id))
        if include_properties:
            conn.execute(sa.delete(db.properties).where(db.properties.c.target == device_slug))
        if include_notes:
            stream_slugs = sa.select(db.streams.c.slug).where(db.streams.c.device_id == device.id)
            conn.execute(
                sa.delete(db.notes).where(sa.or_(db.notes.c.target == device_slug, db.notes.c.target.in_(stream_slugs)))
            )
            conn.execute(sa.delete(db.device_locations).where(db.device_locations.c.target == device_slug))
        add_note(conn, device_slug, "Device data was reset", principal.user_id, "si")
    return JSON({"reset": "scheduled", "pid": str(uuid.uuid4())}, status_code=202)


@router.post(
    "/device/{slug}/trim/",
    openapi_extra=body_doc(start="datetime", end="datetime"),
    status_code=202,
    summary="Delete a device's data before start and after end (members)",
)
def device_trim(
    slug: str, request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    start, end = _range(body)
    with state(request).write() as conn:
        device = _writable(conn, principal, slug)
        pks = _device_stream_pks(conn, device.id)
        points.trim(conn, pks, start, end)
        events = db.events
        outside = []
        if start is not None:
            outside.append(events.c.ts < start)
        if end is not None:
            outside.append(events.c.ts > end)
        conn.execute(sa.delete(events).where(events.c.stream_pk.in_(pks), sa.or_(*outside)))
    return JSON({"trim": "scheduled"}, status_code=202)


@router.post(
    "/device/{slug}/upgrade/",
    openapi_extra=body_doc(["firmware"], firmware="string"),
    status_code=202,
    summary="Record that a device's firmware was upgraded (a system note; members)",
)
def device_upgrade(
    slug: str, request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    fields = Fields(as_object(body))
    firmware = fields.text("firmware", required=True, allow_blank=False, max_length=10)
    fields.check()
    with state(request).write() as conn:
        device = readable_device(conn, principal, slug)
        if not principal.can_write_data(conn, device.org_id):  # a note is a write: not for read-only members
            raise forbidden()
        msg = f"Device {slug} firmware upgraded to {firmware}"
        # The original e-mailed the org; locally the notice is kept as a system note on the device.
        add_note(conn, f"d--{int2did(device.id)}", msg, principal.user_id, "si")
    return JSON({"slug": slug, "msg": msg}, status_code=202)


# -- sensor graph, template, versions, filter logs ------------------------------------------------


async def catalog_item(request: Request, principal: Principal, path: str, slug: str | None) -> Response:
    """The body of ``GET <path>`` for ``slug``: the same answer the catalog route gives."""
    if slug is None:
        raise not_found()
    from iotile_cloud.server.app import routers  # the catalog routes live in whichever module serves them

    routes = [route for module_router in routers() for route in module_router.routes]
    for route in routes:
        if isinstance(route, APIRoute) and route.path == path and "GET" in (route.methods or ()):
            wanted = inspect.signature(route.endpoint).parameters
            offered = {"slug": slug, "request": request, "principal": principal}
            result = route.endpoint(**{k: v for k, v in offered.items() if k in wanted})
            answer: Response = await result if inspect.isawaitable(result) else result
            return answer
    raise not_found()


@router.get("/device/{slug}/sg/", summary="A device's sensor graph")
async def device_sg(slug: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).read() as conn:
        device = readable_device(conn, principal, slug)
    return await catalog_item(request, principal, "/sg/{slug}/", device.sg)


@router.get("/device/{slug}/template/", summary="A device's device template")
async def device_template(slug: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).read() as conn:
        device = readable_device(conn, principal, slug)
    return await catalog_item(request, principal, "/dt/{slug}/", device.template)


@router.get("/device/{slug}/versions/", summary="A device's current OS and app versions (plain list)")
def device_versions(slug: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).read() as conn:
        readable_device(conn, principal, slug)
    # Versions came from over-the-air deployments, which a local server does not run.
    return JSON([])


@router.get("/device/{slug}/filterlog/", summary="Stream filter logs of a device")
def device_filterlog(slug: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).read() as conn:
        device = readable_device(conn, principal, slug)
    # Stream filters (the original's rule engine) do not run on a local server: no logs.
    return JSON({"slug": f"d--{int2did(device.id)}", "device_filter_logs": []})
