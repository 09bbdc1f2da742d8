"""Devices (staff create, claim, unclaim, extra, key), their properties and streamers."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.engine import Connection

from iotile_cloud.server import db, model, points, serialize
from iotile_cloud.server.catalog import registry
from iotile_cloud.server.context import Principal, device_or_user, state, user_only
from iotile_cloud.server.http import (
    JSON,
    LARGE,
    STANDARD,
    APIError,
    Fields,
    Pager,
    as_object,
    body_doc,
    database_id,
    device_id_or_none,
    device_slug_or_none,
    flag,
    forbidden,
    json_body,
    not_found,
    parse_bool,
    restricted,
)
from iotile_cloud.server.routes.orgs import find_project
from iotile_cloud.server.routes.targets import normal_slug, resolve
from iotile_cloud.server.serialize import Lookup
from iotile_cloud.utils.gid import IOTileDeviceSlug, int2did

router = APIRouter()
Body = Any


def device_id_of(slug: str) -> int:
    device_id = device_id_or_none(slug)
    if device_id is None:
        raise not_found()
    return device_id


def readable_device(conn: Connection, principal: Principal, slug: str) -> Any:
    """404 when unknown; 403 when it exists outside the caller's orgs (as the original did)."""
    row = conn.execute(sa.select(db.devices).where(db.devices.c.id == device_id_of(slug))).first()
    if row is None:
        raise not_found()
    principal.authorize(conn, row.org_id, row.id)
    return row


# -- list, create, detail -------------------------------------------------------------------------


@router.get("/device/", summary="Devices of your organisations (active ones unless ?all=1)")
def device_list(request: Request, principal: Principal = Depends(user_only)) -> Response:
    params = request.query_params
    query = sa.select(db.devices).where(principal.org_filter(db.devices.c.org_id))
    if not (flag(request, "all") or principal.staff_view):
        query = query.where(db.devices.c.active.is_(True))
    pager = Pager(request, LARGE)
    with state(request).read() as conn:
        if params.get("project"):
            project = find_project(conn, params["project"])
            query = query.where(db.devices.c.project_id == (project.id if project else None))
        org_slug = params.get("org__slug") or params.get("org")
        if org_slug:
            query = query.where(db.devices.c.org_id.in_(sa.select(db.orgs.c.id).where(db.orgs.c.slug == org_slug)))
        if params.get("external_id"):
            query = query.where(db.devices.c.external_id == params["external_id"])
        claimed = parse_bool(params.get("claimed", "")) if params.get("claimed") else None
        if claimed is not None:
            query = query.where(db.devices.c.project_id.isnot(None) if claimed else db.devices.c.project_id.is_(None))
        if params.get("sg"):
            query = query.where(db.devices.c.sg == params["sg"])
        if params.get("property") and len(params["property"].split("__")) <= 2:
            # The original matched device slugs against *project* property targets, so a name
            # (or name__value) filter never matches a device; three or more parts are ignored.
            query = query.where(sa.false())
        lk = Lookup(conn)
        return pager.respond_query(conn, query, [db.devices.c.id], lambda r: serialize.device(r, lk))


@router.post(
    "/device/",
    openapi_extra=body_doc(
        ["template"],
        label="string",
        template="string",
        sg="string",
        external_id="string",
        active="boolean",
        slug="string",
    ),
    status_code=201,
    summary="Create a device (staff with ?staff=1, or the local server's owner)",
)
def device_create(
    request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    if not principal.can_register_devices:
        raise restricted()
    fields = Fields(as_object(body))
    label = fields.text("label", default="", max_length=100) or ""
    template = fields.text("template", required=True, allow_blank=False)
    sg = fields.text("sg")
    external_id = fields.text("external_id", default="", max_length=128) or ""
    active = fields.boolean("active", default=True)
    wanted = fields.text("slug")
    fields.check()
    with state(request).read() as conn:
        _check_catalog(conn, fields, sg=sg, template=template)
    device_id = None
    if wanted is not None:
        slug = device_slug_or_none(wanted)
        if slug is None or not 0 < slug.get_id() < 1 << 48:
            fields.error("slug", "Enter a device slug like d--0000-0000-0000-00ab.")
        else:
            device_id = slug.get_id()
    fields.check()
    with state(request).write() as conn:
        if device_id is None:
            device_id = (conn.execute(sa.select(sa.func.max(db.devices.c.id))).scalar() or 0) + 1
        elif conn.execute(sa.select(db.devices.c.id).where(db.devices.c.id == device_id)).first():
            raise APIError(400, {"slug": ["Device with this slug already exists."]})
        conn.execute(
            sa.insert(db.devices).values(
                id=device_id,
                label=label or f"Device ({int2did(device_id)[-4:]})",
                active=active,
                external_id=external_id,
                sg=sg,
                template=template,
                state="N1",
                created_on=db.now_us(),
            )
        )
        row = conn.execute(sa.select(db.devices).where(db.devices.c.id == device_id)).one()
        return JSON(serialize.device(row, Lookup(conn)), status_code=201)


@router.get("/device/{slug}/", summary="One device")
def device_detail(slug: str, request: Request, principal: Principal = Depends(device_or_user)) -> Response:
    with state(request).read() as conn:
        return JSON(serialize.device(readable_device(conn, principal, slug), Lookup(conn)))


def _check_catalog(conn: Connection, fields: Fields, *, sg: str | None, template: str | None) -> None:
    """400 naming ``sg``/``template`` when the slug given is not in the registry."""
    for kind, name, slug in (("dt", "template", template), ("sg", "sg", sg)):
        if slug is not None and not registry.exists(conn, kind, slug):
            fields.error(name, f"Object with slug={slug} does not exist.")
    fields.check()


@router.patch(
    "/device/{slug}/",
    openapi_extra=body_doc(
        label="string",
        external_id="string",
        lat="number",
        lon="number",
        active="boolean",
        state="string",
        sg="string",
        template="string",
    ),
    summary="Change a device's label, location, state, sensor graph or template (members)",
)
@router.put("/device/{slug}/", include_in_schema=False)
def device_update(
    slug: str, request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    fields = Fields(as_object(body))
    with state(request).write() as conn:
        row = readable_device(conn, principal, slug)
        if not principal.can_write_data(conn, row.org_id):
            raise forbidden()
        values: dict[str, Any] = {}
        for name, max_length in (("label", 100), ("external_id", 128)):
            if name in fields.body:
                values[name] = fields.text(name, max_length=max_length) or ""
        for name in ("lat", "lon"):
            if name in fields.body:
                values[name] = fields.number(name)
        if "active" in fields.body:
            values["active"] = fields.boolean("active")
        if "state" in fields.body:
            values["state"] = fields.choice("state", ["N0", "N1", "B0", "B1"])
        for name in ("sg", "template"):
            if name in fields.body:
                values[name] = fields.text(name, allow_blank=False)
        fields.check(db.devices, values)
        # The mock cloud fixtures store any sensor graph or template slug, as the original fake did
        # (the original client's own tests patch a device to a sensor graph they never registered).
        if not state(request).mock_cloud:
            _check_catalog(conn, fields, sg=values.get("sg"), template=values.get("template"))
        row = db.update_row(conn, db.devices, "id", row.id, values)
        return JSON(serialize.device(row, Lookup(conn)))


@router.delete("/device/{slug}/", status_code=204, summary="Delete a device (staff, with ?staff=1)")
def device_delete(slug: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    if not principal.staff_view:
        raise restricted()
    with state(request).write() as conn:
        row = readable_device(conn, principal, slug)
        conn.execute(sa.delete(db.properties).where(db.properties.c.target == f"d--{int2did(row.id)}"))
        conn.execute(sa.delete(db.devices).where(db.devices.c.id == row.id))
    return Response(status_code=204)


@router.post(
    "/device/{slug}/report-key/",
    openapi_extra=body_doc(["key"], key="string"),
    status_code=204,
    summary="Register the device's 32-byte user key (64 hex digits) for signed reports (who may create devices)",
)
def device_report_key(
    slug: str, request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    # The HTTP twin of `iotile-cloud admin set-device-key`, so a simulator or a factory line can
    # register keys on any server it has staff credentials for. Not in the original API.
    if not principal.can_register_devices:
        raise restricted()
    fields = Fields(as_object(body))
    text = fields.text("key", required=True, allow_blank=False, max_length=64)
    fields.check()
    try:
        key = bytes.fromhex(str(text))
    except ValueError:
        key = b""
    if len(key) != 32:
        raise APIError(400, {"key": ["Enter 64 hex digits (a 32-byte key)."]})
    with state(request).write() as conn:
        row = readable_device(conn, principal, slug)
        conn.execute(sa.update(db.devices).where(db.devices.c.id == row.id).values(report_key=key.hex()))
    return Response(status_code=204)


# -- claim / unclaim --------------------------------------------------------------------------------


@router.post(
    "/device/claimable/",
    openapi_extra=body_doc(["slugs"], slugs="strings"),
    status_code=202,
    summary="Which of these devices can be claimed",
)
def device_claimable(
    request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    payload = as_object(body)
    slugs = payload.get("slugs")
    if not isinstance(slugs, list) or not all(isinstance(s, str) for s in slugs):
        raise APIError(400, {"slugs": ["Expected a list of device slugs."]})
    results = []
    with state(request).read() as conn:
        for text in slugs[:1000]:
            slug = device_slug_or_none(text)
            row = conn.execute(sa.select(db.devices).where(db.devices.c.id == slug.get_id())).first() if slug else None
            if row is not None:
                results.append({"slug": f"d--{int2did(row.id)}", "claimable": row.project_id is None})
    return JSON({"count": len(results), "results": results}, status_code=202)


@router.post(
    "/device/claim/",
    openapi_extra=body_doc(["device", "project"], device="string", project="string"),
    status_code=202,
    summary="Claim a device into a project (org admins)",
)
def device_claim(
    request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    fields = Fields(as_object(body))
    device_ref = fields.text("device", required=True, allow_blank=False)
    project_ref = fields.text("project", required=True, allow_blank=False)
    fields.check()
    with state(request).write() as conn:
        # As the original: the device first (unknown: 404; already claimed: 400), then the project.
        slug = device_slug_or_none(str(device_ref))
        device = conn.execute(sa.select(db.devices).where(db.devices.c.id == slug.get_id())).first() if slug else None
        if device is None:
            raise not_found()
        if device.project_id is not None:
            raise APIError(400, {"detail": "Device is not claimable"})
        project = find_project(conn, str(project_ref))
        if project is None:
            from iotile_cloud.server.http import is_uuid, project_slug_or_none

            if is_uuid(str(project_ref)) or project_slug_or_none(str(project_ref)):
                raise forbidden("No claim permissions")
            raise APIError(400, {"detail": "Project is not a Valid Slug or UUID"})
        if not principal.can_admin(conn, project.org_id):
            raise forbidden("No claim permissions")
        now = db.now_us()
        conn.execute(
            sa.update(db.devices)
            .where(db.devices.c.id == device.id)
            .values(
                project_id=project.id, org_id=project.org_id, claimed_by=principal.user_id, claimed_on=now, active=True
            )
        )
        device = conn.execute(sa.select(db.devices).where(db.devices.c.id == device.id)).one()
        model.apply_sensor_graph(conn, device, project, principal.user_id)
        return JSON(
            {
                "claimed": True,
                "device": f"d--{int2did(device.id)}",
                "project": f"p--{serialize.int2pid(project.gid)}",
                "project_id": project.id,
            },
            status_code=202,
        )


@router.post(
    "/device/{slug}/unclaim/",
    openapi_extra=body_doc(label="string", clean_streams="boolean"),
    status_code=202,
    summary="Release a device from its project",
)
def device_unclaim(
    slug: str, request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    fields = Fields(as_object(body))
    label = fields.text("label", max_length=100)
    clean_streams = fields.boolean("clean_streams", default=False)
    fields.check()
    with state(request).write() as conn:
        row = conn.execute(sa.select(db.devices).where(db.devices.c.id == device_id_of(slug))).first()
        if row is None:
            raise not_found()
        if not principal.can_admin(conn, row.org_id):
            raise forbidden("No unclaim permissions")
        if row.project_id is None:
            raise APIError(400, {"detail": "Device is not claimed"})
        device_slug = f"d--{int2did(row.id)}"
        if clean_streams:
            conn.execute(sa.delete(db.streams).where(db.streams.c.device_id == row.id))
        conn.execute(sa.delete(db.properties).where(db.properties.c.target == device_slug))
        conn.execute(sa.delete(db.fleet_members).where(db.fleet_members.c.device_id == row.id))
        conn.execute(
            sa.update(db.devices)
            .where(db.devices.c.id == row.id)
            .values(
                project_id=None,
                org_id=None,
                claimed_by=None,
                claimed_on=None,
                lat=None,
                lon=None,
                label=label or f"Device ({int2did(row.id)[-4:]})",
            )
        )
    return JSON({"unclaimed": device_slug, "msg": f"Unclaimed task was scheduled for {device_slug}"}, status_code=202)


# -- extra, key, streamers ----------------------------------------------------------------------


@router.get("/device/{slug}/extra/", summary="A device with the data count of each of its streams")
def device_extra(slug: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).read() as conn:
        row = readable_device(conn, principal, slug)
        full = serialize.device(row, Lookup(conn))
        body = {
            k: full[k] for k in ("id", "slug", "project", "label", "active", "created_on", "claimed_by", "claimed_on")
        }
        body["stream_counts"] = stream_counts(conn, row.id)
        return JSON(body)


def stream_counts(conn: Connection, device_id: int) -> dict[str, dict[str, Any]]:
    """Every stream of the device that has data, with its count; ``has_streamid`` is false for data
    kept without a stream record."""
    streams = conn.execute(
        sa.select(db.streams.c.pk, db.streams.c.slug, db.streams.c.implicit)
        .where(db.streams.c.device_id == device_id)
        .order_by(db.streams.c.slug)
    ).all()
    stored = points.counts(conn, [s.pk for s in streams])
    return {s.slug: {"data_cnt": stored[s.pk], "has_streamid": not s.implicit} for s in streams if s.pk in stored}


@router.get("/device/{slug}/key/", summary="A device key: ?type=a-jwt (a device-scoped token) or an uploaded type")
def device_key(slug: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    key_type = request.query_params.get("type", "")
    if not key_type:
        raise APIError(400, {"msg": "No type specified"})
    with state(request).read() as conn:
        row = readable_device(conn, principal, slug)
        if not principal.can_write_data(conn, row.org_id):
            raise forbidden()
        if key_type.lower() == "a-jwt":
            return JSON({"key": state(request).jwt.issue_device(row.id, principal.user_id)})
        # Other keys are the downloadable ones staff uploaded with POST /key/.
        secret = conn.execute(
            sa.select(db.device_keys.c.secret).where(
                db.device_keys.c.slug == f"d--{int2did(row.id)}",
                db.device_keys.c.type == key_type.upper(),
                db.device_keys.c.downloadable.is_(True),
            )
        ).scalar()
    if secret is None:
        raise APIError(403, {"msg": "No key available"})
    return JSON({"key": secret})


@router.get("/device/{slug}/streamers/", summary="A device's streamers (plain list)")
def device_streamers(slug: str, request: Request, principal: Principal = Depends(device_or_user)) -> Response:
    with state(request).read() as conn:
        row = readable_device(conn, principal, slug)
        rows = conn.execute(
            sa.select(db.streamers).where(db.streamers.c.device_id == row.id).order_by(db.streamers.c.index)
        ).all()
        return JSON([serialize.streamer(r) for r in rows])


@router.get("/device/{slug}/properties/", summary="A device's properties (plain list)")
def device_properties(slug: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).read() as conn:
        row = readable_device(conn, principal, slug)
        return JSON(properties_of(conn, f"d--{int2did(row.id)}"))


def properties_of(conn: Connection, target: str) -> list[dict[str, Any]]:
    """A target's properties by name, as the ``properties/`` sub-routes list them."""
    rows = conn.execute(
        sa.select(db.properties).where(db.properties.c.target == target).order_by(db.properties.c.name)
    ).all()
    return [serialize.prop(r, with_target=False) for r in rows]


@router.post(
    "/device/{slug}/new_property/",
    openapi_extra=body_doc(["name"], name="string", int_value="integer", str_value="string", bool_value="boolean"),
    status_code=201,
    summary="Add a property to a device",
)
def device_new_property(
    slug: str, request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    with state(request).write() as conn:
        row = readable_device(conn, principal, slug)
        payload = {**as_object(body), "target": f"d--{int2did(row.id)}"}
        prop = create_property(conn, principal, payload)
        return JSON(serialize.prop(prop, with_target=False), status_code=201)


# -- properties ---------------------------------------------------------------------------------


def target_org(conn: Connection, target: str) -> tuple[bool, str | None]:
    """(exists, org id) of a property target: a ``p--``, ``d--`` or ``b--`` slug."""
    found = resolve(conn, target) if target[:3].lower() in ("d--", "p--", "b--") else None
    return (found is not None, found.org_id if found is not None else None)


def create_property(conn: Connection, principal: Principal, payload: dict[str, Any]) -> Any:
    fields = Fields(payload)
    target = fields.text("target", required=True, allow_blank=False, max_length=64)
    name = fields.text("name", required=True, allow_blank=False, max_length=40)
    fields.check()
    target = normal_slug(str(target))
    exists, org_id = target_org(conn, target)
    if not exists or not principal.can_read(conn, org_id):
        raise APIError(400, {"target": [f"Object with slug={target} does not exist."]})
    if not principal.can_write_data(conn, org_id):
        raise forbidden()
    given = [k for k in ("int_value", "str_value", "bool_value") if payload.get(k) is not None]
    if len(given) != 1:
        raise APIError(400, {"non_field_errors": ["Only one of int_value, str_value, or bool_value can be used"]})
    kind = given[0]
    values: dict[str, Any] = {"type": kind.split("_")[0]}
    if kind == "int_value":
        values["int_value"] = fields.integer("int_value", min_value=-(1 << 63), max_value=(1 << 63) - 1)
    elif kind == "bool_value":
        values["bool_value"] = fields.boolean("bool_value")
    else:
        values["str_value"] = fields.text("str_value", max_length=4096)
    fields.check()
    taken = conn.execute(
        sa.select(db.properties.c.id).where(db.properties.c.target == target, db.properties.c.name == name)
    ).first()
    if taken:
        raise APIError(400, {"non_field_errors": ["The fields target, name must make a unique set."]})
    prop_id = db.new_id(
        conn.execute(
            sa.insert(db.properties).values(target=target, name=name, is_system=False, created_on=db.now_us(), **values)
        )
    )
    return conn.execute(sa.select(db.properties).where(db.properties.c.id == prop_id)).one()


@router.get("/property/", summary="Properties of a target (?target=d--... required)")
def property_list(request: Request, principal: Principal = Depends(user_only)) -> Response:
    target = request.query_params.get("target") or ""
    # As the original: only p--, d-- and b-- targets are accepted (406 otherwise); an unknown or
    # foreign one is a 403.
    if target.split("--")[0] not in ("p", "d", "b"):
        raise APIError(406, {"detail": "target argument (e.g. target=d--0000-0000-0000-1234) is required"})
    target = normal_slug(target)
    pager = Pager(request, STANDARD)
    with state(request).read() as conn:
        exists, org_id = target_org(conn, target)
        if not exists or not principal.can_read(conn, org_id):
            raise forbidden()
        query = sa.select(db.properties).where(db.properties.c.target == target)
        return pager.respond_query(conn, query, [db.properties.c.name], lambda r: serialize.prop(r))


@router.post(
    "/property/",
    openapi_extra=body_doc(
        ["target", "name"],
        target="string",
        name="string",
        int_value="integer",
        str_value="string",
        bool_value="boolean",
    ),
    status_code=201,
    summary="Add a property to a device, project or block",
)
def property_create(
    request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    with state(request).write() as conn:
        row = create_property(conn, principal, as_object(body))
        out = serialize.prop(row)
        return JSON({k: out[k] for k in ("target", "name", "is_system", "value")}, status_code=201)


def _own_property(conn: Connection, principal: Principal, prop_id: str, write: bool) -> Any:
    # A malformed or out-of-range id is simply not found (the original's lookup answered 404 too).
    row = conn.execute(sa.select(db.properties).where(db.properties.c.id == database_id(prop_id))).first()
    if row is None:
        raise not_found()
    _, org_id = target_org(conn, row.target)
    if not principal.can_read(conn, org_id):
        raise not_found()
    if write and not principal.can_write_data(conn, org_id):
        raise forbidden()
    return row


@router.get("/property/{prop_id}/", summary="One property")
def property_detail(prop_id: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).read() as conn:
        return JSON(serialize.prop(_own_property(conn, principal, prop_id, write=False)))


@router.delete("/property/{prop_id}/", status_code=204, summary="Delete a property")
def property_delete(prop_id: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).write() as conn:
        row = _own_property(conn, principal, prop_id, write=True)
        conn.execute(sa.delete(db.properties).where(db.properties.c.id == row.id))
    return Response(status_code=204)


# -- streamers ----------------------------------------------------------------------------------


@router.get("/streamer/", summary="Streamers (acknowledged last_id per device and index); ?device=")
def streamer_list(request: Request, principal: Principal = Depends(device_or_user)) -> Response:
    device_ref = request.query_params.get("device")
    query = (
        sa.select(db.streamers)
        .join(db.devices, db.devices.c.id == db.streamers.c.device_id)
        .where(principal.visible(db.devices.c.org_id, db.devices.c.id))
    )
    if device_ref:
        try:
            IOTileDeviceSlug(device_ref)
        except ValueError:
            raise APIError(400, {"detail": f"Illegal device format. Expected HEX number. Got {device_ref}"}) from None
        query = query.where(db.streamers.c.device_id == (device_id_or_none(device_ref) or -1))
    pager = Pager(request, STANDARD)
    with state(request).read() as conn:
        return pager.respond_query(
            conn, query, [db.streamers.c.device_id, db.streamers.c.index], lambda r: serialize.streamer(r)
        )


@router.get("/streamer/{slug}/", summary="One streamer: t--<device>--<index>")
def streamer_detail(slug: str, request: Request, principal: Principal = Depends(device_or_user)) -> Response:
    from iotile_cloud.utils.gid import IOTileStreamerSlug

    try:
        parsed = IOTileStreamerSlug(slug)
    except ValueError:
        raise not_found() from None
    device_id = device_id_of(parsed.get_device())
    with state(request).read() as conn:
        readable_device(conn, principal, parsed.get_device())
        row = conn.execute(
            sa.select(db.streamers).where(
                db.streamers.c.device_id == device_id, db.streamers.c.index == int(parsed.get_index(), 16)
            )
        ).first()
        if row is None:
            raise not_found()
        return JSON(serialize.streamer(row))
