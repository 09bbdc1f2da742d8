"""Property templates (``/propertytemplate/``), configuration attributes (``/config/name/``,
``/config/attr/``) and device keys (``/key/``)."""

from __future__ import annotations

import json
from typing import Any

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.engine import Connection

from iotile_cloud.server import db, serialize
from iotile_cloud.server.context import Principal, state, user_only
from iotile_cloud.server.db import iso
from iotile_cloud.server.http import (
    JSON,
    REQUIRED,
    STANDARD,
    APIError,
    Fields,
    Pager,
    as_object,
    body_doc,
    forbidden,
    json_body,
    not_found,
)
from iotile_cloud.server.routes.notes import add_note
from iotile_cloud.server.routes.orgs import NO_ACCESS, member_view, org_by_slug_field
from iotile_cloud.server.routes.targets import Target, can_access, resolve

router = APIRouter()
Body = Any
PROPERTY_TYPES = ("int", "str", "bool")


def method_not_allowed(request: Request) -> APIError:
    return APIError(405, {"detail": f'Method "{request.method}" not allowed.'})


def require_staff(principal: Principal) -> None:
    """The original's IsStaffOrReadOnly / IsAdminUser for writes."""
    if not principal.is_staff:
        raise forbidden()


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _json_value(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


# -- property templates -------------------------------------------------------------------------


def template_body(row: Any, lk: serialize.Lookup) -> dict[str, Any]:
    enums = lk.conn.execute(
        sa.select(db.property_template_enums.c.value)
        .where(db.property_template_enums.c.template_id == row.id)
        .order_by(db.property_template_enums.c.value)
    ).scalars()
    return {
        "id": row.id,
        "org": lk.org_slug(row.org_id),
        "type": row.type,
        "name": row.name,
        "default": row.default,
        "enums": list(enums),
        "extra": _json_value(row.extra),
        "created_by": lk.username(row.created_by),
    }


def _template_values(conn: Connection, principal: Principal, fields: Fields, partial: bool) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if not partial or "name" in fields.body:
        values["name"] = fields.text("name", required=True, allow_blank=False, max_length=48)
    if "type" in fields.body:
        values["type"] = fields.choice("type", PROPERTY_TYPES)
    if "default" in fields.body:
        values["default"] = fields.text("default", max_length=256) or ""
    if "extra" in fields.body:
        values["extra"] = _json_text(fields.body["extra"])
    if not partial or "org" in fields.body:
        org = org_by_slug_field(conn, fields)
        if not principal.can_admin(conn, org.id):
            raise forbidden(NO_ACCESS)
        values["org_id"] = org.id
    fields.check()
    return values


def _unique_template(conn: Connection, org_id: str, name: str, template_id: int | None = None) -> None:
    taken = sa.select(db.property_templates.c.id).where(
        db.property_templates.c.org_id == org_id, db.property_templates.c.name == name
    )
    if template_id is not None:
        taken = taken.where(db.property_templates.c.id != template_id)
    if conn.execute(taken).first():
        raise APIError(400, {"non_field_errors": ["The fields org, name must make a unique set."]})


@router.get("/propertytemplate/", summary="Property templates of your organisations; ?org=, ?name=")
def template_list(request: Request, principal: Principal = Depends(user_only)) -> Response:
    query = sa.select(db.property_templates).where(principal.org_filter(db.property_templates.c.org_id))
    params = request.query_params
    pager = Pager(request, STANDARD)
    with state(request).read() as conn:
        if params.get("org"):
            org = conn.execute(sa.select(db.orgs.c.id).where(db.orgs.c.slug == params["org"])).first()
            if org is None:
                raise not_found()
            query = query.where(db.property_templates.c.org_id == org.id)
        if params.get("name"):
            query = query.where(db.property_templates.c.name == params["name"])
        lk = serialize.Lookup(conn)
        order = [db.property_templates.c.org_id, db.property_templates.c.name]
        return pager.respond_query(conn, query, order, lambda r: template_body(r, lk))


@router.post(
    "/propertytemplate/",
    openapi_extra=body_doc(
        ["org", "name"], org="string", name="string", type="string", default="string", extra="object"
    ),
    status_code=201,
    summary="Create a property template for an organisation's devices (org admins)",
)
def template_create(
    request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    fields = Fields(as_object(body))
    with state(request).write() as conn:
        values = _template_values(conn, principal, fields, partial=False)
        _unique_template(conn, values["org_id"], values["name"])
        template_id = db.new_id(
            conn.execute(
                sa.insert(db.property_templates).values(**values, created_on=db.now_us(), created_by=principal.user_id)
            )
        )
        row = conn.execute(sa.select(db.property_templates).where(db.property_templates.c.id == template_id)).one()
        return JSON(template_body(row, serialize.Lookup(conn)), status_code=201)


def _visible_template(conn: Connection, principal: Principal, raw: str, write: bool) -> Any:
    try:
        template_id = int(raw)
    except ValueError:
        raise not_found() from None
    row = conn.execute(sa.select(db.property_templates).where(db.property_templates.c.id == template_id)).first()
    if row is None or not member_view(conn, principal, row.org_id):
        raise not_found()
    if write and not principal.can_admin(conn, row.org_id):
        raise forbidden(NO_ACCESS)
    return row


@router.get("/propertytemplate/{template_id}/", summary="One property template")
def template_detail(template_id: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).read() as conn:
        return JSON(template_body(_visible_template(conn, principal, template_id, False), serialize.Lookup(conn)))


@router.patch(
    "/propertytemplate/{template_id}/",
    openapi_extra=body_doc(name="string", type="string", default="string", extra="object"),
    summary="Change a property template (org admins)",
)
@router.put("/propertytemplate/{template_id}/", include_in_schema=False)
def template_update(
    template_id: str, request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    fields = Fields(as_object(body))
    with state(request).write() as conn:
        row = _visible_template(conn, principal, template_id, True)
        values = _template_values(conn, principal, fields, partial=request.method == "PATCH")
        _unique_template(conn, values.get("org_id", row.org_id), values.get("name", row.name), row.id)
        row = db.update_row(conn, db.property_templates, "id", row.id, values)
        return JSON(template_body(row, serialize.Lookup(conn)))


@router.delete("/propertytemplate/{template_id}/", status_code=204, summary="Delete a property template")
def template_delete(template_id: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).write() as conn:
        row = _visible_template(conn, principal, template_id, True)
        conn.execute(sa.delete(db.property_templates).where(db.property_templates.c.id == row.id))
    return Response(status_code=204)


def _enum_body(row: Any, template: Any, lk: serialize.Lookup) -> dict[str, Any]:
    return {
        "id": row.id,
        "org": lk.org_slug(template.org_id),
        "value": row.value,
        "template": template.id,
        "created_by": lk.username(row.created_by),
    }


@router.get("/propertytemplate/{template_id}/enum/", summary="The allowed values of an enum property template")
def template_enums(template_id: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    pager = Pager(request, STANDARD)
    with state(request).read() as conn:
        template = _visible_template(conn, principal, template_id, False)
        query = sa.select(db.property_template_enums).where(db.property_template_enums.c.template_id == template.id)
        lk = serialize.Lookup(conn)
        return pager.respond_query(
            conn, query, [db.property_template_enums.c.value], lambda r: _enum_body(r, template, lk)
        )


def _enum_value(body: Any) -> str:
    fields = Fields(as_object(body))
    value = fields.text("value", required=True, allow_blank=False, max_length=64)
    fields.check()
    return str(value)


@router.post(
    "/propertytemplate/{template_id}/enum/",
    openapi_extra=body_doc(["value"], value="string"),
    status_code=201,
    summary="Add an allowed value (org admins)",
)
def template_enum_add(
    template_id: str, request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    value = _enum_value(body)
    with state(request).write() as conn:
        template = _visible_template(conn, principal, template_id, True)
        table = db.property_template_enums
        where = (table.c.template_id == template.id, table.c.value == value)
        if conn.execute(sa.select(table.c.id).where(*where)).first() is None:  # as the original: get or create
            conn.execute(
                sa.insert(table).values(
                    template_id=template.id, value=value, created_on=db.now_us(), created_by=principal.user_id
                )
            )
        row = conn.execute(sa.select(table).where(*where)).one()
        return JSON(_enum_body(row, template, serialize.Lookup(conn)), status_code=201)


@router.delete(
    "/propertytemplate/{template_id}/enum/",
    openapi_extra=body_doc(["value"], value="string"),
    status_code=204,
    summary="Remove an allowed value (org admins)",
)
def template_enum_remove(
    template_id: str, request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    value = _enum_value(body)
    with state(request).write() as conn:
        template = _visible_template(conn, principal, template_id, True)
        table = db.property_template_enums
        gone = conn.execute(sa.delete(table).where(table.c.template_id == template.id, table.c.value == value))
        if not gone.rowcount:
            raise APIError(404, {"error": "Enum Value not found in Property Template"})
    return Response(status_code=204)


# -- configuration attribute names ----------------------------------------------------------------


def name_body(row: Any) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "description": row.description, "tags": _json_value(row.tags)}


def _name_values(fields: Fields, partial: bool) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if not partial or "name" in fields.body:
        name = fields.text("name", required=True, allow_blank=False, max_length=64)
        if name is not None and (not name.startswith(":") or " " in name):
            fields.error("name", f'Name must start with ":" and have no spaces. Got: {name}')
        values["name"] = name
    if "description" in fields.body:
        values["description"] = (
            fields.body["description"]
            if fields.body["description"] is None
            else fields.text("description", max_length=10_000)
        )
    if "tags" in fields.body:
        tags = fields.body["tags"]
        if not isinstance(tags, list) or not all(isinstance(t, str) and len(t) <= 24 for t in tags):
            fields.error("tags", "Expected a list of items (tags of up to 24 characters).")
        else:
            values["tags"] = _json_text(tags)
    fields.check()
    return values


@router.get("/config/name/", summary="Configuration attribute names; ?name_q=, ?tag=, ?name=")
def config_name_list(request: Request, principal: Principal = Depends(user_only)) -> Response:
    table = db.config_names
    query = sa.select(table)
    params = request.query_params
    if params.get("name"):
        query = query.where(table.c.name == params["name"])
    if params.get("name_q"):
        query = query.where(table.c.name.ilike(f"%{params['name_q']}%"))
    if params.get("tag"):
        # Tags are a JSON list of short words: match the quoted word.
        query = query.where(table.c.tags.contains(json.dumps(params["tag"])))
    pager = Pager(request, STANDARD)
    with state(request).read() as conn:
        return pager.respond_query(conn, query, [table.c.name], name_body)


@router.post(
    "/config/name/",
    openapi_extra=body_doc(["name"], name="string", description="string", tags="strings"),
    status_code=201,
    summary="Create a configuration attribute name, like ':classic:ui:device' (staff)",
)
def config_name_create(
    request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    require_staff(principal)
    values = _name_values(Fields(as_object(body)), partial=False)
    with state(request).write() as conn:
        if conn.execute(sa.select(db.config_names.c.id).where(db.config_names.c.name == values["name"])).first():
            raise APIError(400, {"name": ["Configuration Attribute Name with this name already exists."]})
        name_id = db.new_id(
            conn.execute(
                sa.insert(db.config_names).values(**values, created_on=db.now_us(), created_by=principal.user_id)
            )
        )
        return JSON(
            name_body(conn.execute(sa.select(db.config_names).where(db.config_names.c.id == name_id)).one()),
            status_code=201,
        )


def _config_name(conn: Connection, raw: str) -> Any:
    try:
        name_id = int(raw)
    except ValueError:
        raise not_found() from None
    row = conn.execute(sa.select(db.config_names).where(db.config_names.c.id == name_id)).first()
    if row is None:
        raise not_found()
    return row


@router.get("/config/name/{name_id}/", summary="One configuration attribute name")
def config_name_detail(name_id: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).read() as conn:
        return JSON(name_body(_config_name(conn, name_id)))


@router.patch(
    "/config/name/{name_id}/",
    openapi_extra=body_doc(description="string", tags="strings"),
    summary="Change a configuration attribute name (staff)",
)
@router.put("/config/name/{name_id}/", include_in_schema=False)
def config_name_update(
    name_id: str, request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    require_staff(principal)
    with state(request).write() as conn:
        row = _config_name(conn, name_id)
        values = _name_values(Fields(as_object(body)), partial=request.method == "PATCH")
        return JSON(name_body(db.update_row(conn, db.config_names, "id", row.id, values)))


@router.delete("/config/name/{name_id}/", status_code=204, summary="Delete a configuration attribute name (staff)")
def config_name_delete(name_id: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    require_staff(principal)
    with state(request).write() as conn:
        row = _config_name(conn, name_id)
        conn.execute(sa.delete(db.config_names).where(db.config_names.c.id == row.id))
    return Response(status_code=204)


# -- configuration attributes -----------------------------------------------------------------------

CONFIG_TARGET_HEADS = ("^", "@", "d", "p", "b")


def attr_body(row: Any, conn: Connection) -> dict[str, Any]:
    name = conn.execute(sa.select(db.config_names.c.name).where(db.config_names.c.id == row.name_id)).scalar()
    return {
        "id": row.id,
        "target": row.target,
        "name": name,
        "data": _json_value(row.data),
        "updated_on": iso(row.updated_on),
    }


def _accessible_target(conn: Connection, principal: Principal, text: str | None, write: bool = False) -> Target | None:
    target = resolve(conn, text) if text else None
    if target is None or not can_access(conn, principal, target, write=write):
        return None
    return target


@router.get("/config/attr/", summary="Configuration attributes of a target: ?target=^org|@user|d--|p-- (required)")
def config_attr_list(request: Request, principal: Principal = Depends(user_only)) -> Response:
    params = request.query_params
    if not params.get("target"):
        raise APIError(400, {"target": [REQUIRED]})
    pager = Pager(request, STANDARD)
    with state(request).read() as conn:
        target = _accessible_target(conn, principal, params["target"])
        if target is None:
            return pager.respond(0, lambda off, lim: [])
        table = db.config_attrs
        query = sa.select(table).join(db.config_names, db.config_names.c.id == table.c.name_id)
        query = query.where(table.c.target == target.slug)
        if params.get("name_q"):
            query = query.where(db.config_names.c.name.ilike(f"%{params['name_q']}%"))
        return pager.respond_query(conn, query, [db.config_names.c.name], lambda r: attr_body(r, conn))


@router.post(
    "/config/attr/",
    openapi_extra=body_doc(["target", "name"], target="string", name="string", data="object", log_as_note="boolean"),
    status_code=201,
    summary="Set a configuration attribute on a target (replaces one of the same name)",
)
def config_attr_set(
    request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    fields = Fields(as_object(body))
    text = fields.text("target", required=True, allow_blank=False, max_length=64)
    name = fields.text("name", required=True, allow_blank=False, max_length=64)
    log_as_note = fields.boolean("log_as_note", default=False)
    if text is not None and (text[0] not in CONFIG_TARGET_HEADS or " " in text):
        fields.error("target", f"Target must start with ^, @, d, p, or b. Got: {text}")
    fields.check()
    with state(request).write() as conn:
        target = _accessible_target(conn, principal, str(text), write=True)
        if target is None:
            raise forbidden()
        name_row = conn.execute(sa.select(db.config_names).where(db.config_names.c.name == name)).first()
        if name_row is None:
            raise APIError(400, ["Most use a valid Configuration Attribute Name"])
        table = db.config_attrs
        data = _json_text(fields.body.get("data"))
        existing = conn.execute(
            sa.select(table.c.id).where(table.c.target == target.slug, table.c.name_id == name_row.id)
        ).first()
        now = db.now_us()
        if existing is None:
            attr_id = db.new_id(
                conn.execute(
                    sa.insert(table).values(
                        target=target.slug, name_id=name_row.id, data=data, updated_on=now, updated_by=principal.user_id
                    )
                )
            )
        else:
            attr_id = existing.id
            conn.execute(
                sa.update(table)
                .where(table.c.id == attr_id)
                .values(data=data, updated_on=now, updated_by=principal.user_id)
            )
        if log_as_note and target.kind == "device":
            value = fields.body.get("data")
            lines = [f"\n--> {k}: {v}" for k, v in value.items()] if isinstance(value, dict) else [f"--> {value}"]
            add_note(conn, target.slug, f"Attribute {name} was changed to:" + "".join(lines), principal.user_id, "si")
        return JSON(attr_body(conn.execute(sa.select(table).where(table.c.id == attr_id)).one(), conn), status_code=201)


@router.get("/config/attr/search/", summary="The attribute a target gets: its own, else its project's, org's, user's")
def config_attr_search(request: Request, principal: Principal = Depends(user_only)) -> Response:
    text, name = request.query_params.get("target"), request.query_params.get("name")
    if not text or not name:
        raise APIError(400, {"error": "Missing target and/or name"})
    with state(request).read() as conn:
        target = resolve(conn, text)
        if target is None:
            raise APIError(400, {"error": "Missing target and/or name"})
        if not can_access(conn, principal, target):
            raise forbidden()
        for slug in _search_path(conn, principal, target):
            row = conn.execute(
                sa.select(db.config_attrs)
                .join(db.config_names, db.config_names.c.id == db.config_attrs.c.name_id)
                .where(db.config_attrs.c.target == slug, db.config_names.c.name == name)
            ).first()
            if row is not None:
                return JSON(attr_body(row, conn))
    raise not_found()


def _search_path(conn: Connection, principal: Principal, target: Target) -> list[str]:
    """Device -> project -> org -> the caller, as the original searched."""
    path = [target.slug]
    if target.kind in ("device", "block") and target.device_id is not None:
        gid = conn.execute(
            sa.select(db.projects.c.gid)
            .join(db.devices, db.devices.c.project_id == db.projects.c.id)
            .where(db.devices.c.id == target.device_id)
        ).scalar()
        if gid is not None:
            path.append(f"p--{serialize.int2pid(gid)}")
    if target.kind != "user" and target.org_id is not None:
        path.append(f"^{serialize.Lookup(conn).org_slug(target.org_id)}")
    if target.kind != "user" and principal.user is not None:
        path.append(f"@{principal.user.slug}")
    return path


def _own_attr(conn: Connection, principal: Principal, raw: str, write: bool) -> Any:
    try:
        attr_id = int(raw)
    except ValueError:
        raise APIError(400, {"detail": "Bad Request: Expected an integer database ID"}) from None
    row = conn.execute(sa.select(db.config_attrs).where(db.config_attrs.c.id == attr_id)).first()
    if row is None:
        raise not_found()
    if _accessible_target(conn, principal, row.target, write=write) is None:
        raise forbidden()
    return row


@router.get("/config/attr/{attr_id}/", summary="One configuration attribute")
def config_attr_detail(attr_id: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).read() as conn:
        return JSON(attr_body(_own_attr(conn, principal, attr_id, False), conn))


@router.api_route("/config/attr/{attr_id}/", methods=["PUT", "PATCH"], include_in_schema=False)
def config_attr_update(attr_id: str, principal: Principal = Depends(user_only)) -> Response:
    return JSON({"error": "PUT and PATCH methods are not supported; use POST with the right target"}, status_code=400)


@router.delete("/config/attr/{attr_id}/", status_code=204, summary="Delete a configuration attribute")
def config_attr_delete(attr_id: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).write() as conn:
        row = _own_attr(conn, principal, attr_id, True)
        conn.execute(sa.delete(db.config_attrs).where(db.config_attrs.c.id == row.id))
    return Response(status_code=204)


# -- device keys ----------------------------------------------------------------------------------

KEY_TYPES = ("USR", "SSH", "X-API-KEY", "A-JWT-KEY", "MQTT")


@router.post(
    "/key/",
    openapi_extra=body_doc(["slug", "secret"], slug="string", type="string", downloadable="boolean", secret="string"),
    status_code=201,
    summary="Upload a device key (staff); downloadable ones are served by /device/<slug>/key/?type=",
)
def key_create(
    request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    require_staff(principal)
    fields = Fields(as_object(body))
    slug = fields.text("slug", required=True, allow_blank=False, max_length=24)
    kind = fields.choice("type", KEY_TYPES, default="USR")
    downloadable = fields.boolean("downloadable", default=False)
    secret = fields.text("secret", required=True, allow_blank=False, max_length=10_000)
    fields.check()
    with state(request).write() as conn:
        table = db.device_keys
        if conn.execute(sa.select(table.c.id).where(table.c.slug == slug, table.c.type == kind)).first():
            raise APIError(400, {"non_field_errors": ["The fields slug, type must make a unique set."]})
        conn.execute(
            sa.insert(table).values(
                slug=slug,
                type=kind,
                secret=secret,
                downloadable=downloadable,
                created_on=db.now_us(),
                created_by=principal.user_id,
            )
        )
    return JSON({"slug": slug, "type": kind, "downloadable": downloadable, "secret": secret}, status_code=201)


@router.api_route("/key/", methods=["GET"], include_in_schema=False)
def key_list(request: Request, principal: Principal = Depends(user_only)) -> Response:
    require_staff(principal)  # the original checked permissions before the method
    raise method_not_allowed(request)
