"""Over-the-air updates: scripts, deployment requests, deployment actions, device versions, device view.

Shapes and permissions follow the original server's OTA API: org members read, org admins create
requests and scripts, anyone with access to a deployment and a device records an attempt (a device
token only for its own device), and device versions are written by staff only.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.engine import Connection, Row

from iotile_cloud.server import db
from iotile_cloud.server.context import Principal, current_user, device_or_user, state, user_only
from iotile_cloud.server.db import iso
from iotile_cloud.server.http import (
    JSON,
    STANDARD,
    APIError,
    Fields,
    Pager,
    as_object,
    body_doc,
    device_slug_or_none,
    forbidden,
    json_body,
    not_found,
)
from iotile_cloud.server.routes.devices import readable_device
from iotile_cloud.server.serialize import Lookup
from iotile_cloud.utils.gid import IOTileFleetSlug, int2did, int2fid

router = APIRouter()
Body = Any
RESTRICTED = {"error": "Restricted Access. Contact Arch"}
VERSION_TYPES = ("os", "app", "sg")


def script_slug(script_id: int) -> str:
    return f"z--{script_id >> 16:04x}-{script_id & 0xFFFF:04x}"


def script_id_of(slug: str) -> int | None:
    parts = slug.split("--")
    if len(parts) != 2 or parts[0] != "z":
        return None
    try:
        return int(parts[1].replace("-", ""), 16)
    except ValueError:
        return None


# -- bodies ---------------------------------------------------------------------------------------


def script_body(row: Row[Any], lk: Lookup) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "slug": script_slug(row.id),
        "org": lk.org_slug(row.org_id),
        "major_version": row.major_version,
        "minor_version": row.minor_version,
        "patch_version": row.patch_version,
        "version": f"v{row.major_version}.{row.minor_version}.{row.patch_version}",
        "released": bool(row.released),
        "created_on": iso(row.created_on),
    }


def deployment_body(row: Row[Any], lk: Lookup) -> dict[str, Any]:
    return {
        "id": row.id,
        "script": script_slug(row.script_id),
        "selection_criteria": json.loads(row.selection_criteria),
        "org": lk.org_slug(row.org_id),
        "fleet": f"g--{int2fid(row.fleet_id)}" if row.fleet_id is not None else None,
        "released_on": iso(row.released_on),
        "completed_on": iso(row.completed_on),
    }


def action_body(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "deployment": row.deployment_id,
        "device": f"d--{int2did(row.device_id)}",
        "created_on": iso(row.created_on),
        "last_attempt_on": iso(row.last_attempt_on),
        "attempt_successful": bool(row.attempt_successful),
        "device_confirmation": bool(row.device_confirmation),
        "log": row.log,
    }


def version_body(row: Row[Any], with_device: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {"device": f"d--{int2did(row.device_id)}"} if with_device else {}
    body.update(
        {
            "type": row.type,
            "tag": row.tag,
            "version": f"v{row.major_version}.{row.minor_version}",
            "streamer_local_id": row.streamer_local_id,
            "updated_ts": iso(row.updated_ts),
        }
    )
    if with_device:
        body["created_on"] = iso(row.created_on)
    return body


def device_deployments(conn: Connection, device: Row[Any]) -> list[Row[Any]]:
    """Released requests that target the device: itself, a fleet it is in, or its whole org."""
    table = db.ota_deployments
    fleets = sa.select(db.fleet_members.c.fleet_id).where(db.fleet_members.c.device_id == device.id)
    targets = sa.or_(
        table.c.device_id == device.id,
        sa.and_(table.c.device_id.is_(None), table.c.fleet_id.in_(fleets)),
        sa.and_(table.c.device_id.is_(None), table.c.fleet_id.is_(None), table.c.org_id == device.org_id),
    )
    query = sa.select(table).where(targets, table.c.released_on.is_not(None)).order_by(table.c.id)
    return list(conn.execute(query).all())


def device_info(conn: Connection, device: Row[Any]) -> dict[str, Any]:
    lk = Lookup(conn)
    actions = conn.execute(
        sa.select(db.ota_actions)
        .where(db.ota_actions.c.device_id == device.id)
        .order_by(db.ota_actions.c.last_attempt_on, db.ota_actions.c.id)
    ).all()
    return {
        "slug": f"d--{int2did(device.id)}",
        "template": device.template,
        "sg": device.sg,
        "deployments": [deployment_body(r, lk) for r in device_deployments(conn, device)],
        "actions": [
            {k: v for k, v in action_body(r).items() if k not in ("device", "created_on", "log")} for r in actions
        ],
        "versions": [version_body(r, with_device=False) for r in _current_versions(conn, device.id)],
    }


def _current_versions(conn: Connection, device_id: int) -> list[Row[Any]]:
    """The newest version record of each type."""
    table = db.device_versions
    rows = conn.execute(
        sa.select(table).where(table.c.device_id == device_id).order_by(table.c.type, table.c.id.desc())
    ).all()
    newest: dict[str, Row[Any]] = {}
    for row in rows:
        newest.setdefault(row.type, row)
    return list(newest.values())


# -- device view ----------------------------------------------------------------------------------


@router.get("/ota/device/{slug}/", summary="A device's deployment requests, update attempts and versions")
def ota_device(slug: str, request: Request, principal: Principal = Depends(device_or_user)) -> Response:
    with state(request).read() as conn:
        device = readable_device(conn, principal, slug)
        if not device.active:
            raise forbidden("User has no access to Device")
        return JSON(device_info(conn, device))


# -- scripts --------------------------------------------------------------------------------------


def _org_id(conn: Connection, slug: str | None) -> str | None:
    if not slug:
        return None
    return conn.execute(sa.select(db.orgs.c.id).where(db.orgs.c.slug == slug)).scalar()


@router.get("/ota/script/", summary="Update scripts of your organisations")
def script_list(request: Request, principal: Principal = Depends(user_only)) -> Response:
    query = sa.select(db.ota_scripts).where(principal.org_filter(db.ota_scripts.c.org_id))
    with state(request).read() as conn:
        lk = Lookup(conn)
        return Pager(request, STANDARD).respond_query(conn, query, [db.ota_scripts.c.id], lambda r: script_body(r, lk))


@router.post(
    "/ota/script/",
    openapi_extra=body_doc(
        ["name", "org"],
        name="string",
        org="string",
        major_version="integer",
        minor_version="integer",
        patch_version="integer",
        released="boolean",
    ),
    status_code=201,
    summary="Register an update script (org admins)",
)
def script_create(
    request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    fields = Fields(as_object(body))
    name = fields.text("name", required=True, allow_blank=False, max_length=50)
    org = fields.text("org", required=True, allow_blank=False)
    versions = {
        f"{part}_version": fields.integer(f"{part}_version", default=0, min_value=0, max_value=0x7FFFFFFF)
        for part in ("major", "minor", "patch")
    }
    released = fields.boolean("released", default=False)
    fields.check()
    with state(request).write() as conn:
        org_id = _org_id(conn, org)
        if org_id is None:
            raise APIError(400, {"org": [f"Object with slug={org} does not exist."]})
        if not principal.can_admin(conn, org_id):
            raise forbidden()
        script_id = db.new_id(
            conn.execute(
                sa.insert(db.ota_scripts).values(
                    name=name, org_id=org_id, released=released, created_on=db.now_us(), **versions
                )
            )
        )
        row = conn.execute(sa.select(db.ota_scripts).where(db.ota_scripts.c.id == script_id)).one()
        return JSON(script_body(row, Lookup(conn)), status_code=201)


def _readable_script(conn: Connection, principal: Principal, slug: str) -> Row[Any]:
    script_id = script_id_of(slug)
    row = (
        conn.execute(sa.select(db.ota_scripts).where(db.ota_scripts.c.id == script_id)).first()
        if script_id is not None and 0 < script_id < 1 << 31
        else None
    )
    if row is None:
        raise not_found()
    if not principal.can_read(conn, row.org_id):
        raise forbidden()
    return row


@router.get("/ota/script/{slug}/", summary="One update script")
def script_detail(slug: str, request: Request, principal: Principal = Depends(current_user)) -> Response:
    with state(request).read() as conn:
        return JSON(script_body(_readable_script(conn, principal, slug), Lookup(conn)))


@router.get("/ota/script/{slug}/file/", summary="Where to download an update script")
def script_file(slug: str, request: Request, principal: Principal = Depends(current_user)) -> Response:
    with state(request).read() as conn:
        row = _readable_script(conn, principal, slug)
        return JSON({**script_body(row, Lookup(conn)), "url": row.url, "key": row.key})


# -- deployment requests ------------------------------------------------------------------------


@router.get("/ota/request/", summary="Released deployment requests; ?fleet=, ?org= (required unless staff)")
def request_list(request: Request, principal: Principal = Depends(user_only)) -> Response:
    params = request.query_params
    table = db.ota_deployments
    query = sa.select(table).where(principal.org_filter(table.c.org_id))
    with state(request).read() as conn:
        if not principal.staff_view:
            if not any(params.get(k) for k in ("fleet", "org", "scope")):
                query = query.where(sa.false())
            query = query.where(table.c.released_on.is_not(None), table.c.completed_on.is_(None))
        if params.get("org"):
            query = query.where(table.c.org_id == _org_id(conn, params["org"]))
        if params.get("fleet"):
            try:
                fleet_id = IOTileFleetSlug(params["fleet"]).get_id()
            except (ValueError, TypeError):
                fleet_id = -1
            query = query.where(table.c.fleet_id == fleet_id)
        lk = Lookup(conn)
        return Pager(request, STANDARD).respond_query(conn, query, [table.c.id], lambda r: deployment_body(r, lk))


@router.post(
    "/ota/request/",
    openapi_extra=body_doc(
        ["script", "org"], script="string", org="string", fleet="string", selection_criteria="strings"
    ),
    status_code=201,
    summary="Create a deployment request (org admins)",
)
def request_create(
    request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    fields = Fields(as_object(body))
    script = fields.text("script", required=True, allow_blank=False)
    org = fields.text("org", required=True, allow_blank=False)
    fleet = fields.text("fleet")
    criteria = fields.body.get("selection_criteria", [])
    if not isinstance(criteria, list) or not all(isinstance(c, str) for c in criteria):
        fields.error("selection_criteria", "Expected a list of items.")
    fields.check()
    with state(request).write() as conn:
        org_id = _org_id(conn, org)
        script_id = script_id_of(str(script))
        script_row = (
            conn.execute(sa.select(db.ota_scripts).where(db.ota_scripts.c.id == script_id)).first()
            if script_id is not None and 0 < script_id < 1 << 31
            else None
        )
        if org_id is None:
            fields.error("org", f"Object with slug={org} does not exist.")
        # The script and the fleet must be the org's own: a request is served to every device of
        # its fleet, so another org's fleet would put this org's update in front of their devices.
        if script_row is None or script_row.org_id != org_id:
            fields.error("script", f"Object with slug={script} does not exist.")
        fleet_id = None
        if fleet:
            try:
                fleet_id = IOTileFleetSlug(fleet).get_id()
            except (ValueError, TypeError):
                fleet_id = None
            exists = fleet_id is not None and 0 < fleet_id < 1 << 31
            fleet_org = conn.execute(sa.select(db.fleets.c.org_id).where(db.fleets.c.id == fleet_id)).first()
            if not exists or fleet_org is None or fleet_org.org_id != org_id:
                fields.error("fleet", f"Object with slug={fleet} does not exist.")
        fields.check()
        if not principal.can_admin(conn, org_id):
            raise forbidden("User has no permissions to manage devices")
        now = db.now_us()
        new = db.new_id(
            conn.execute(
                sa.insert(db.ota_deployments).values(
                    script_id=script_row.id if script_row else 0,
                    org_id=org_id,
                    fleet_id=fleet_id,
                    selection_criteria=json.dumps(criteria),
                    released_on=now,
                    created_on=now,
                )
            )
        )
        row = conn.execute(sa.select(db.ota_deployments).where(db.ota_deployments.c.id == new)).one()
        return JSON(deployment_body(row, Lookup(conn)), status_code=201)


def _readable_deployment(conn: Connection, principal: Principal, deployment_id: str | int) -> Row[Any]:
    try:
        number = int(deployment_id)
    except (TypeError, ValueError):
        raise not_found() from None
    row = (
        conn.execute(sa.select(db.ota_deployments).where(db.ota_deployments.c.id == number)).first()
        if 0 < number < 1 << 31
        else None
    )
    if row is None:
        raise not_found()
    if not principal.can_read(conn, row.org_id):
        raise forbidden()
    return row


@router.get("/ota/request/{deployment_id}/", summary="One deployment request")
def request_detail(deployment_id: str, request: Request, principal: Principal = Depends(current_user)) -> Response:
    with state(request).read() as conn:
        return JSON(deployment_body(_readable_deployment(conn, principal, deployment_id), Lookup(conn)))


# -- deployment actions ---------------------------------------------------------------------------


@router.get("/ota/action/", summary="Update attempts; ?device= or ?request= (required unless staff)")
def action_list(request: Request, principal: Principal = Depends(device_or_user)) -> Response:
    params = request.query_params
    table = db.ota_actions
    query = (
        sa.select(table)
        .join(db.devices, db.devices.c.id == table.c.device_id)
        .where(principal.org_filter(db.devices.c.org_id))
    )
    if principal.device_scope is not None:
        query = query.where(table.c.device_id == principal.device_scope)
    if not principal.staff_view and not (params.get("device") or params.get("request")):
        query = query.where(sa.false())
    if params.get("device"):
        slug = device_slug_or_none(params["device"])
        query = query.where(table.c.device_id == (slug.get_id() if slug else -1))
    if params.get("request"):
        try:
            query = query.where(table.c.deployment_id == int(params["request"]))
        except ValueError:
            query = query.where(sa.false())
    with state(request).read() as conn:
        return Pager(request, STANDARD).respond_query(conn, query, [table.c.id], action_body)


@router.post(
    "/ota/action/",
    openapi_extra=body_doc(
        ["deployment", "device"],
        deployment="integer",
        device="string",
        attempt_successful="boolean",
        last_attempt_on="datetime",
        log="string",
    ),
    status_code=201,
    summary="Record an update attempt of a device",
)
def action_create(
    request: Request, body: Body = Depends(json_body), principal: Principal = Depends(device_or_user)
) -> Response:
    fields = Fields(as_object(body))
    deployment = fields.integer("deployment", required=True, min_value=1, max_value=0x7FFFFFFF)
    device = fields.text("device", required=True, allow_blank=False)
    successful = fields.boolean("attempt_successful", default=False)
    attempted = fields.datetime("last_attempt_on")
    log = fields.text("log", max_length=100_000)
    slug = device_slug_or_none(str(device)) if device else None
    if device and slug is None:
        fields.error("device", f"Object with slug={device} does not exist.")
    fields.check()
    assert slug is not None and deployment is not None
    with state(request).write() as conn:
        row = conn.execute(sa.select(db.ota_deployments).where(db.ota_deployments.c.id == deployment)).first()
        if row is None:
            raise APIError(400, {"deployment": [f'Invalid pk "{deployment}" - object does not exist.']})
        device_row = conn.execute(sa.select(db.devices).where(db.devices.c.id == slug.get_id())).first()
        if device_row is None:
            raise APIError(400, {"device": [f"Object with slug={device} does not exist."]})
        principal.check_device(device_row.id)
        if not principal.can_read(conn, row.org_id):
            raise forbidden("User has no access to deployment")
        if not principal.can_read(conn, device_row.org_id):
            raise forbidden("User has no access to device")
        new = db.new_id(
            conn.execute(
                sa.insert(db.ota_actions).values(
                    deployment_id=row.id,
                    device_id=device_row.id,
                    created_on=db.now_us(),
                    last_attempt_on=attempted,
                    attempt_successful=bool(successful),
                    log=log,
                )
            )
        )
        action = conn.execute(sa.select(db.ota_actions).where(db.ota_actions.c.id == new)).one()
        return JSON(action_body(action), status_code=201)


# -- device versions ------------------------------------------------------------------------------


@router.get("/ota/version/", summary="Version records of your devices; ?device=, ?type=")
def version_list(request: Request, principal: Principal = Depends(device_or_user)) -> Response:
    params = request.query_params
    table = db.device_versions
    query = (
        sa.select(table)
        .join(db.devices, db.devices.c.id == table.c.device_id)
        .where(principal.org_filter(db.devices.c.org_id), db.devices.c.project_id.is_not(None))
    )
    if principal.device_scope is not None:
        query = query.where(table.c.device_id == principal.device_scope)
    if params.get("device"):
        slug = device_slug_or_none(params["device"])
        query = query.where(table.c.device_id == (slug.get_id() if slug else -1))
    if params.get("type"):
        query = query.where(table.c.type == params["type"])
    with state(request).read() as conn:
        return Pager(request, STANDARD).respond_query(conn, query, [table.c.id], version_body)


@router.post(
    "/ota/version/",
    openapi_extra=body_doc(
        ["device", "type", "tag"],
        device="string",
        type="string",
        tag="integer",
        major_version="integer",
        minor_version="integer",
        streamer_local_id="integer",
        updated_ts="datetime",
    ),
    status_code=201,
    summary="Record a device version (staff, with ?staff=1)",
)
def version_create(
    request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    if not principal.staff_view:
        raise APIError(403, RESTRICTED)
    fields = Fields(as_object(body))
    device = fields.text("device", required=True, allow_blank=False)
    kind = fields.choice("type", VERSION_TYPES)
    if not fields.has("type"):
        fields.error("type", "This field is required.")
    tag = fields.integer("tag", required=True, min_value=0, max_value=0xFFFFF)
    major = fields.integer("major_version", default=0, min_value=0, max_value=0xFFFF)
    minor = fields.integer("minor_version", default=0, min_value=0, max_value=0xFFFF)
    local_id = fields.integer("streamer_local_id", default=0, min_value=0, max_value=(1 << 63) - 1)
    updated = fields.datetime("updated_ts")
    slug = device_slug_or_none(str(device)) if device else None
    if device and slug is None:
        fields.error("device", f"Object with slug={device} does not exist.")
    fields.check()
    assert slug is not None
    with state(request).write() as conn:
        if conn.execute(sa.select(db.devices.c.id).where(db.devices.c.id == slug.get_id())).first() is None:
            raise APIError(400, {"device": [f"Object with slug={device} does not exist."]})
        new = db.new_id(
            conn.execute(
                sa.insert(db.device_versions).values(
                    device_id=slug.get_id(),
                    type=kind,
                    tag=tag,
                    major_version=major,
                    minor_version=minor,
                    streamer_local_id=local_id,
                    updated_ts=updated,
                    created_on=db.now_us(),
                )
            )
        )
        row = conn.execute(sa.select(db.device_versions).where(db.device_versions.c.id == new)).one()
        return JSON(version_body(row), status_code=201)
