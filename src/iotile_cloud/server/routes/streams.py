"""Variables, streams, variable types, sensor graphs and device templates."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.engine import Connection

from iotile_cloud.server import catalog, db, model, points, serialize
from iotile_cloud.server.catalog import registry
from iotile_cloud.server.context import Principal, device_or_user, state, user_only
from iotile_cloud.server.http import (
    JSON,
    LARGE,
    STANDARD,
    SUPER_LARGE,
    APIError,
    Fields,
    Pager,
    as_object,
    body_doc,
    device_slug_or_none,
    flag,
    forbidden,
    json_body,
    not_found,
)
from iotile_cloud.server.routes.orgs import NO_ACCESS, find_project
from iotile_cloud.server.routes.targets import normal_slug
from iotile_cloud.server.serialize import Lookup
from iotile_cloud.utils.gid import IOTileStreamSlug, IOTileVariableSlug

router = APIRouter()
Body = Any


# -- variable types, sensor graphs, templates (read-only built-ins) --------------------------------


def _vartype_page(request: Request, items: list[dict[str, Any]]) -> Response:
    pager = Pager(request, STANDARD)
    return pager.respond(len(items), lambda off, lim: items[off : off + lim])


@router.get("/vartype/", summary="Variable types and their units")
def vartype_list(request: Request, principal: Principal = Depends(device_or_user)) -> Response:
    return _catalog_page(request, "vt")


@router.get("/vartype/{slug}/", summary="One variable type")
def vartype_detail(slug: str, request: Request, principal: Principal = Depends(device_or_user)) -> Response:
    return _catalog_entry(request, "vt", slug)


@router.api_route("/vartype/{slug}/", methods=["PUT", "PATCH", "DELETE"], include_in_schema=False)
def vartype_write(slug: str, principal: Principal = Depends(device_or_user)) -> Response:
    # Built-ins: nobody may change them on a local server.
    raise forbidden()


def _catalog_page(request: Request, kind: str) -> Response:
    with state(request).read() as conn:
        return _vartype_page(request, registry.entries(conn, kind))


def _catalog_entry(request: Request, kind: str, slug: str) -> Response:
    with state(request).read() as conn:
        body = registry.entry(conn, kind, slug)
    if body is None:
        raise not_found()
    return JSON(body)


@router.get("/sg/", summary="Sensor graphs (what claiming a device creates)")
def sg_list(request: Request, principal: Principal = Depends(device_or_user)) -> Response:
    return _catalog_page(request, "sg")


@router.get("/sg/{slug}/", summary="One sensor graph")
def sg_detail(slug: str, request: Request, principal: Principal = Depends(device_or_user)) -> Response:
    return _catalog_entry(request, "sg", slug)


@router.get("/dt/", summary="Device templates")
def dt_list(request: Request, principal: Principal = Depends(device_or_user)) -> Response:
    return _catalog_page(request, "dt")


@router.get("/dt/{slug}/", summary="One device template")
def dt_detail(slug: str, request: Request, principal: Principal = Depends(device_or_user)) -> Response:
    return _catalog_entry(request, "dt", slug)


# -- variables ----------------------------------------------------------------------------------


def _unit_field(fields: Fields, name: str, output: bool, var_type: str | None) -> str | None:
    slug = fields.text(name)
    if slug is None or slug == "":
        return None
    unit = catalog.output_unit(slug) if output else catalog.input_unit(slug)
    if unit is None:
        fields.error(name, f"Object with slug={slug} does not exist.")
        return None
    if var_type and slug.split("--")[1] != var_type:
        fields.error(name, f"Unit {slug} does not belong to variable type {var_type}.")
    return slug


def variable_by_slug(conn: Connection, principal: Principal, slug: str) -> Any:
    try:
        parsed = IOTileVariableSlug(slug)
    except ValueError:
        raise not_found() from None
    row = conn.execute(
        sa.select(db.variables)
        .join(db.projects, db.projects.c.id == db.variables.c.project_id)
        .where(db.projects.c.gid == parsed.get_project_slug().get_id(), db.variables.c.lid == parsed.get_lid())
    ).first()
    if row is None:
        raise not_found()
    project = conn.execute(sa.select(db.projects).where(db.projects.c.id == row.project_id)).one()
    if not principal.can_read(conn, project.org_id):
        raise forbidden()
    return row


def _projects_filter(conn: Connection, request: Request, column: Any, query: sa.Select[Any]) -> sa.Select[Any]:
    params = request.query_params
    if params.get("project"):
        project = find_project(conn, params["project"])
        query = query.where(column == (project.id if project else None))
    org_slug = params.get("org__slug") or params.get("org")
    if org_slug:
        query = query.where(
            column.in_(
                sa.select(db.projects.c.id)
                .join(db.orgs, db.orgs.c.id == db.projects.c.org_id)
                .where(db.orgs.c.slug == org_slug)
            )
        )
    return query


@router.get("/variable/", summary="Variables of your projects; ?project=, ?org=")
def variable_list(request: Request, principal: Principal = Depends(user_only)) -> Response:
    pager = Pager(request, LARGE)
    with state(request).read() as conn:
        query = (
            sa.select(db.variables)
            .join(db.projects, db.projects.c.id == db.variables.c.project_id)
            .where(principal.org_filter(db.projects.c.org_id))
        )
        query = _projects_filter(conn, request, db.variables.c.project_id, query)
        lk = Lookup(conn)
        return pager.respond_query(
            conn, query, [db.projects.c.gid, db.variables.c.lid], lambda r: serialize.variable(r, lk)
        )


@router.post(
    "/variable/",
    openapi_extra=body_doc(
        ["name", "lid", "project"],
        name="string",
        lid="integer",
        project="string",
        var_type="string",
        input_unit="string",
        output_unit="string",
        multiplication_factor="integer",
        division_factor="integer",
        offset="number",
        raw_value_format="string",
        decimal_places="integer",
        about="string",
        units="string",
        app_only="boolean",
        web_only="boolean",
    ),
    status_code=201,
    summary="Create a project variable (org admins)",
)
def variable_create(
    request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    fields = Fields(as_object(body))
    name = fields.text("name", required=True, allow_blank=False, max_length=60)
    lid = fields.integer("lid", required=True, min_value=0, max_value=0xFFFF)
    project_ref = fields.text("project", required=True, allow_blank=False)
    var_type = fields.text("var_type")  # as the original: none unless given
    if var_type is not None and catalog.vartype(var_type) is None:
        fields.error("var_type", f"Object with slug={var_type} does not exist.")
    unit_in = _unit_field(fields, "input_unit", False, var_type)
    unit_out = _unit_field(fields, "output_unit", True, var_type)
    m = fields.integer("multiplication_factor", default=1, min_value=-(1 << 31), max_value=(1 << 31) - 1)
    d = fields.integer("division_factor", default=1, min_value=-(1 << 31), max_value=(1 << 31) - 1)
    o = fields.number("offset", default=0.0)
    if m == 0:
        fields.error("multiplication_factor", "Must not be 0.")
    if d == 0:
        fields.error("division_factor", "Must not be 0.")
    raw_format = fields.choice("raw_value_format", model.RAW_FORMATS, default="<L")
    # As the original: the output unit's decimal places unless given.
    out_unit = catalog.output_unit(unit_out)
    unit_places = out_unit.decimal_places if out_unit is not None else None
    decimal_places = fields.integer("decimal_places", default=unit_places or 0, min_value=0, max_value=10)
    about = fields.text("about", default="", max_length=1000) or ""
    units = fields.text("units", default="", max_length=20) or ""
    app_only = fields.boolean("app_only", default=False)
    web_only = fields.boolean("web_only", default=False)
    fields.check()
    with state(request).write() as conn:
        project = find_project(conn, str(project_ref))
        if project is None or not principal.can_read(conn, project.org_id):
            raise APIError(400, {"project": [f"Object with id={project_ref} does not exist."]})
        if not principal.can_admin(conn, project.org_id):
            raise forbidden(NO_ACCESS)
        exists = conn.execute(
            sa.select(db.variables.c.id).where(db.variables.c.project_id == project.id, db.variables.c.lid == lid)
        ).first()
        if exists:
            raise APIError(400, {"non_field_errors": ["The fields project, lid must make a unique set."]})
        row = model.create_variable(
            conn,
            project,
            int(lid or 0),
            str(name),
            var_type=var_type,
            input_unit=unit_in,
            output_unit=unit_out,
            about=about,
            units=units,
            raw_value_format=str(raw_format),
            m=int(m or 1),
            d=int(d or 1),
            o=float(o or 0.0),
            decimal_places=int(decimal_places or 0),
            app_only=bool(app_only),
            web_only=bool(web_only),
            user_id=principal.user_id,
        )
        return JSON(serialize.variable(row, Lookup(conn)), status_code=201)


@router.get("/variable/{slug}/", summary="One variable: v--<project>--<local id>")
def variable_detail(slug: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).read() as conn:
        return JSON(serialize.variable(variable_by_slug(conn, principal, slug), Lookup(conn)))


@router.patch(
    "/variable/{slug}/",
    openapi_extra=body_doc(
        name="string", about="string", input_unit="string", output_unit="string", decimal_places="integer"
    ),
    summary="Change a variable's name, units or factors (org admins)",
)
def variable_update(
    slug: str, request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    fields = Fields(as_object(body))
    with state(request).write() as conn:
        row = variable_by_slug(conn, principal, slug)
        project = conn.execute(sa.select(db.projects).where(db.projects.c.id == row.project_id)).one()
        if not principal.can_admin(conn, project.org_id):
            raise forbidden(NO_ACCESS)
        values: dict[str, Any] = {}
        if "name" in fields.body:
            values["name"] = fields.text("name", allow_blank=False, max_length=60)
        if "about" in fields.body:
            values["about"] = fields.text("about", max_length=1000) or ""
        if "input_unit" in fields.body:
            values["input_unit"] = _unit_field(fields, "input_unit", False, row.var_type)
        if "output_unit" in fields.body:
            values["output_unit"] = _unit_field(fields, "output_unit", True, row.var_type)
        if "decimal_places" in fields.body:
            values["decimal_places"] = fields.integer("decimal_places", min_value=0, max_value=10)
        fields.check(db.variables, values)
        if values:
            conn.execute(sa.update(db.variables).where(db.variables.c.id == row.id).values(**values))
            unit_values = {k: v for k, v in values.items() if k in ("input_unit", "output_unit")}
            if unit_values:
                conn.execute(sa.update(db.streams).where(db.streams.c.variable_id == row.id).values(**unit_values))
        row = conn.execute(sa.select(db.variables).where(db.variables.c.id == row.id)).one()
        return JSON(serialize.variable(row, Lookup(conn)))


# -- streams ------------------------------------------------------------------------------------


def stream_by_slug(conn: Connection, principal: Principal, slug: str) -> Any:
    """404 when unknown, 403 when it belongs to another org."""
    try:
        normal = str(IOTileStreamSlug(slug))
    except ValueError:
        raise not_found() from None
    row = conn.execute(sa.select(db.streams).where(db.streams.c.slug == normal)).first()
    if row is None:
        raise not_found()
    project = conn.execute(sa.select(db.projects).where(db.projects.c.id == row.project_id)).one()
    principal.authorize(conn, project.org_id, row.device_id)
    return row


@router.get("/stream/", summary="Streams of your projects; ?project=, ?device=, ?variable=, ?block=, ?virtual=1")
def stream_list(request: Request, principal: Principal = Depends(user_only)) -> Response:
    params = request.query_params
    pager = Pager(request, SUPER_LARGE)
    with state(request).read() as conn:
        query = (
            sa.select(db.streams)
            .join(db.projects, db.projects.c.id == db.streams.c.project_id)
            .where(principal.org_filter(db.projects.c.org_id), db.streams.c.implicit.is_(False))
        )
        query = _projects_filter(conn, request, db.streams.c.project_id, query)
        if params.get("device"):
            device = device_slug_or_none(params["device"])
            query = query.where(db.streams.c.device_id == (device.get_id() if device else -1))
        if params.get("variable"):
            try:
                var = IOTileVariableSlug(params["variable"])
                query = query.where(
                    db.projects.c.gid == var.get_project_slug().get_id(),
                    db.streams.c.variable_id.in_(
                        sa.select(db.variables.c.id).where(db.variables.c.lid == var.get_lid())
                    ),
                )
            except ValueError:
                query = query.where(sa.false())
        if params.get("enabled"):
            query = query.where(db.streams.c.enabled.is_(flag(request, "enabled")))
        block = params.get("block") or (params.get("device") if params.get("device", "")[:3].lower() == "b--" else None)
        if block:
            # The original lists the streams of a data block (an archived device's): data blocks keep no
            # streams on a local server, so a known block has none; an unknown one is a 404, as there.
            if conn.execute(sa.select(db.datablocks.c.slug).where(db.datablocks.c.slug == normal_slug(block))).first():
                query = query.where(sa.false())
            else:
                raise not_found()
        elif flag(request, "archived") and not params.get("device"):
            query = query.where(sa.false())  # only streams of data blocks: none here
        # As the original: virtual streams (no device) only show up when asked for.
        if flag(request, "virtual"):
            query = query.where(db.streams.c.device_id.is_(None))
        elif params.get("project"):
            query = query.where(db.streams.c.device_id.isnot(None))
        lk = Lookup(conn)
        return pager.respond_query(conn, query, [db.streams.c.slug], lambda r: serialize.stream(r, lk))


@router.post(
    "/stream/",
    openapi_extra=body_doc(["variable"], variable="string", device="string", data_label="string"),
    status_code=201,
    summary="Create a stream for a variable (virtual without a device)",
)
def stream_create(
    request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    fields = Fields(as_object(body))
    var_ref = fields.text("variable", required=True, allow_blank=False)
    device_ref = fields.text("device")
    data_label = fields.text("data_label", default="", max_length=60) or ""
    fields.check()
    with state(request).write() as conn:
        try:
            variable = variable_by_slug(conn, principal, str(var_ref))
        except APIError:
            raise APIError(400, {"variable": [f"Object with slug={var_ref} does not exist."]}) from None
        project = conn.execute(sa.select(db.projects).where(db.projects.c.id == variable.project_id)).one()
        if not principal.can_admin(conn, project.org_id):
            raise forbidden(NO_ACCESS)
        device_id = None
        if device_ref:
            slug = device_slug_or_none(device_ref)
            device = (
                conn.execute(sa.select(db.devices).where(db.devices.c.id == slug.get_id())).first() if slug else None
            )
            if device is None or device.project_id != project.id:
                raise APIError(400, {"device": [f"Object with slug={device_ref} does not exist in this project."]})
            device_id = device.id
        slug_text = model.stream_slug(project.gid, device_id, variable.lid)
        if conn.execute(sa.select(db.streams.c.pk).where(db.streams.c.slug == slug_text)).first():
            raise APIError(400, {"slug": [f"Stream {slug_text} already exists."]})
        row = model.create_stream(conn, project, variable, device_id, data_label, principal.user_id)
        return JSON(serialize.stream_created(row, Lookup(conn)), status_code=201)


@router.get("/stream/{slug}/", summary="One stream")
def stream_detail(slug: str, request: Request, principal: Principal = Depends(device_or_user)) -> Response:
    with state(request).read() as conn:
        row = stream_by_slug(conn, principal, slug)
        if row.implicit:  # data kept without a stream record
            raise not_found()
        return JSON(serialize.stream(row, Lookup(conn)))


@router.patch(
    "/stream/{slug}/",
    openapi_extra=body_doc(
        data_label="string",
        enabled="boolean",
        mdo_type="string",
        multiplication_factor="integer",
        division_factor="integer",
        offset="number",
        input_unit="string",
        output_unit="string",
        raw_value_format="string",
    ),
    summary="Change a stream's label, units, MDO or enabled flag (org admins)",
)
def stream_update(
    slug: str, request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    fields = Fields(as_object(body))
    with state(request).write() as conn:
        row = stream_by_slug(conn, principal, slug)
        project = conn.execute(sa.select(db.projects).where(db.projects.c.id == row.project_id)).one()
        if not principal.can_admin(conn, project.org_id):
            raise forbidden(NO_ACCESS)
        values: dict[str, Any] = {}
        if "data_label" in fields.body:
            values["data_label"] = fields.text("data_label", max_length=60) or ""
        if "enabled" in fields.body:
            values["enabled"] = fields.boolean("enabled")
        if "mdo_type" in fields.body:
            values["mdo_type"] = fields.choice("mdo_type", ["S", "V"])
        for name in ("multiplication_factor", "division_factor"):
            if name in fields.body:
                values[name] = fields.integer(name, min_value=-(1 << 31), max_value=(1 << 31) - 1)
                if values[name] == 0:
                    fields.error(name, "Must not be 0.")
        if "offset" in fields.body:
            values["offset"] = fields.number("offset")
        if "input_unit" in fields.body:
            values["input_unit"] = _unit_field(fields, "input_unit", False, row.var_type)
        if "output_unit" in fields.body:
            values["output_unit"] = _unit_field(fields, "output_unit", True, row.var_type)
        if "raw_value_format" in fields.body:
            values["raw_value_format"] = fields.choice("raw_value_format", model.RAW_FORMATS)
        fields.check(db.streams, values)
        row = db.update_row(conn, db.streams, "pk", row.pk, values)
        return JSON(serialize.stream(row, Lookup(conn)))


@router.delete("/stream/{slug}/", status_code=204, summary="Delete a stream and its data (org admins)")
def stream_delete(slug: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).write() as conn:
        row = stream_by_slug(conn, principal, slug)
        project = conn.execute(sa.select(db.projects).where(db.projects.c.id == row.project_id)).one()
        if not principal.can_admin(conn, project.org_id):
            raise forbidden(NO_ACCESS)
        points.delete_streams(conn, [row.pk])
        conn.execute(sa.delete(db.events).where(db.events.c.stream_pk == row.pk))
        conn.execute(sa.delete(db.streams).where(db.streams.c.pk == row.pk))
    return Response(status_code=204)
