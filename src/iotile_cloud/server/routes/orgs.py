"""Organisations, their members, projects and fleets."""

from __future__ import annotations

import re
import unicodedata
import uuid
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.engine import Connection, Row

from iotile_cloud.server import catalog, db, serialize
from iotile_cloud.server.context import ROLE_NAMES, Principal, state, user_only
from iotile_cloud.server.http import (
    JSON,
    REQUIRED,
    STANDARD,
    APIError,
    Fields,
    Pager,
    as_object,
    body_doc,
    contains_text,
    device_slug_or_none,
    forbidden,
    is_uuid,
    json_body,
    not_found,
    project_slug_or_none,
    query_text,
    restricted,
)
from iotile_cloud.server.serialize import Lookup

router = APIRouter()
Body = Any
NO_ACCESS = "Access Denied due to lack of sufficient permissions"


def slugify(text: str) -> str:
    """Django's slugify: ASCII, lowercase, words joined by hyphens."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text.lower())
    return re.sub(r"[-\s]+", "-", text).strip("-_")


# -- lookups shared with other route modules ----------------------------------------------------


def member_view(conn: Connection, principal: Principal, org_id: str | None) -> bool:
    """Whether an org's objects are listed for the caller: members, or staff asking with ``?staff=1``."""
    return principal.staff_view or principal.role(conn, org_id) is not None


def visible_org(conn: Connection, principal: Principal, slug: str) -> Any:
    row = conn.execute(sa.select(db.orgs).where(db.orgs.c.slug == slug)).first()
    if row is None or not member_view(conn, principal, row.id):
        raise not_found()
    return row


def org_by_slug_field(conn: Connection, fields: Fields, name: str = "org") -> Any:
    slug = fields.text(name, required=True, allow_blank=False)
    fields.check()
    row = conn.execute(sa.select(db.orgs).where(db.orgs.c.slug == slug)).first()
    if row is None:
        raise APIError(400, {name: [f"Object with slug={slug} does not exist."]})
    return row


def find_project(conn: Connection, ref: str) -> Any:
    """A project by uuid or ``p--`` slug (None if neither or unknown)."""
    if is_uuid(ref):
        return conn.execute(sa.select(db.projects).where(db.projects.c.id == str(uuid.UUID(ref)))).first()
    slug = project_slug_or_none(ref)
    if slug is None:
        return None
    return conn.execute(sa.select(db.projects).where(db.projects.c.gid == slug.get_id())).first()


def visible_project(conn: Connection, principal: Principal, project_id: str) -> Any:
    if not is_uuid(project_id):
        raise APIError(400, ["Project ID must be a UUID"])
    row = conn.execute(sa.select(db.projects).where(db.projects.c.id == str(uuid.UUID(project_id)))).first()
    if row is None or not member_view(conn, principal, row.org_id):
        raise not_found()
    return row


# -- org ----------------------------------------------------------------------------------------


@router.get("/org/", summary="Organisations you are a member of")
def org_list(request: Request, principal: Principal = Depends(user_only)) -> Response:
    query = sa.select(db.orgs).where(principal.org_filter(db.orgs.c.id))
    search = query_text(request, "search")
    if search:
        query = query.where(contains_text(db.orgs.c.name, search))
    pager = Pager(request, STANDARD)
    with state(request).read() as conn:
        lk = Lookup(conn)
        return pager.respond_query(conn, query, [db.orgs.c.name, db.orgs.c.slug], lambda r: serialize.org(r, lk))


@router.post(
    "/org/",
    openapi_extra=body_doc(["name"], name="string", about="string"),
    status_code=201,
    summary="Create an organisation (you become its owner)",
)
def org_create(
    request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    fields = Fields(as_object(body))
    name = fields.text("name", required=True, allow_blank=False, max_length=50)
    about = fields.text("about", default="", max_length=1000) or ""
    fields.check()
    slug = slugify(str(name))
    if not slug:
        raise APIError(400, {"name": ["Name must contain letters or digits."]})
    now = db.now_us()
    with state(request).write() as conn:
        if conn.execute(sa.select(db.orgs.c.id).where(db.orgs.c.slug == slug)).first():
            raise APIError(400, {"name": [f"Organization with name '{name}' already exists"]})
        org_id = str(uuid.uuid4())
        conn.execute(
            sa.insert(db.orgs).values(
                id=org_id, name=name, slug=slug, about=about, created_on=now, created_by=principal.user_id
            )
        )
        add_member(conn, org_id, principal.user_id, "a0", now)
        row = conn.execute(sa.select(db.orgs).where(db.orgs.c.id == org_id)).one()
        return JSON(serialize.org(row, Lookup(conn)), status_code=201)


@router.get("/org/{slug}/", summary="One organisation")
def org_detail(slug: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).read() as conn:
        return JSON(serialize.org(visible_org(conn, principal, slug), Lookup(conn)))


@router.patch(
    "/org/{slug}/", openapi_extra=body_doc(name="string", about="string"), summary="Change an organisation (admins)"
)
@router.put("/org/{slug}/", include_in_schema=False)
def org_update(
    slug: str, request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    fields = Fields(as_object(body))
    with state(request).write() as conn:
        row = visible_org(conn, principal, slug)
        if not principal.can_admin(conn, row.id):
            raise forbidden(NO_ACCESS)
        values = {}
        if fields.has("name"):
            values["name"] = fields.text("name", allow_blank=False, max_length=50)
        if fields.has("about"):
            values["about"] = fields.text("about", max_length=1000)
        fields.check(db.orgs, values)
        row = db.update_row(conn, db.orgs, "id", row.id, values)
        return JSON(serialize.org(row, Lookup(conn)))


@router.delete("/org/{slug}/", status_code=204, summary="Delete an organisation (staff, with ?staff=1)")
def org_delete(slug: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    if not principal.staff_view:
        raise restricted()
    with state(request).write() as conn:
        row = visible_org(conn, principal, slug)
        conn.execute(
            sa.update(db.devices)
            .where(db.devices.c.org_id == row.id)
            .values(org_id=None, project_id=None, claimed_by=None, claimed_on=None)
        )
        conn.execute(sa.delete(db.orgs).where(db.orgs.c.id == row.id))
    return Response(status_code=204)


@router.get("/org/{slug}/projects/", summary="Projects of an organisation")
def org_projects(slug: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    pager = Pager(request, STANDARD)
    with state(request).read() as conn:
        org = visible_org(conn, principal, slug)
        query = sa.select(db.projects).where(db.projects.c.org_id == org.id)
        lk = Lookup(conn)
        return pager.respond_query(conn, query, [db.projects.c.name], lambda r: serialize.project(r, lk))


def _members_query(org_id: str) -> sa.Select[Any]:
    return sa.select(db.memberships).where(db.memberships.c.org_id == org_id)


def add_member(conn: Connection, org_id: str, user_id: int, role: str, now: int | None = None) -> Row[Any]:
    """Make the user an active member of the org with ``role`` (the original's 400 when already one)."""
    mine = _members_query(org_id).where(db.memberships.c.user_id == user_id)
    if conn.execute(mine).first() is not None:
        raise APIError(400, {"error": "Member already exists"})
    conn.execute(
        sa.insert(db.memberships).values(
            org_id=org_id, user_id=user_id, role=role, is_active=True, created_on=db.now_us() if now is None else now
        )
    )
    return conn.execute(mine).one()


@router.get("/org/{slug}/members/", summary="Members of an organisation")
def org_members(slug: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    pager = Pager(request, STANDARD)
    with state(request).read() as conn:
        org = visible_org(conn, principal, slug)
        query = _members_query(org.id).join(db.users, db.users.c.id == db.memberships.c.user_id)
        lk = Lookup(conn)
        return pager.respond_query(conn, query, [db.users.c.slug], lambda r: serialize.membership(r, lk))


@router.get("/org/{slug}/membership/", summary="Your own membership and permissions")
def org_membership(slug: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).read() as conn:
        org = visible_org(conn, principal, slug)
        row = conn.execute(_members_query(org.id).where(db.memberships.c.user_id == principal.user_id)).first()
        if row is None:
            raise not_found()
        return JSON(serialize.membership(row, Lookup(conn)))


@router.get("/org/{slug}/extra/", summary="An organisation with counts and your membership")
def org_extra(slug: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).read() as conn:
        org = visible_org(conn, principal, slug)
        lk = Lookup(conn)

        def count(table: sa.Table, *where: Any) -> int:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one())

        body = serialize.org(org, lk)
        body.pop("domain_names")
        body["counts"] = {
            "projects": count(db.projects, db.projects.c.org_id == org.id),
            "datablocks": 0,
            "members": count(db.memberships, db.memberships.c.org_id == org.id),
            "devices": count(db.devices, db.devices.c.org_id == org.id),
            "fleets": count(db.fleets, db.fleets.c.org_id == org.id, db.fleets.c.is_network.is_(False)),
            "networks": count(db.fleets, db.fleets.c.org_id == org.id, db.fleets.c.is_network.is_(True)),
            "reports": 0,
        }
        mine = conn.execute(_members_query(org.id).where(db.memberships.c.user_id == principal.user_id)).first()
        body["current_member"] = serialize.membership(mine, lk) if mine is not None else None
        return JSON(body)


@router.post(
    "/org/{slug}/register/",
    openapi_extra=body_doc(["user"], user="string", role="string"),
    status_code=201,
    summary="Add a member to an organisation (admins)",
)
def org_register(
    slug: str, request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    fields = Fields(as_object(body))
    with state(request).write() as conn:
        org = visible_org(conn, principal, slug)
        if not principal.can_admin(conn, org.id):
            raise forbidden(NO_ACCESS)
        user_slug = fields.text("user", required=True, allow_blank=False)
        role = fields.choice("role", list(ROLE_NAMES), default="m1")
        fields.check()
        user = conn.execute(sa.select(db.users).where(db.users.c.slug == str(user_slug).lower())).first()
        if user is None:
            raise APIError(400, {"user": [f"Object with slug={user_slug} does not exist."]})
        row = add_member(conn, org.id, user.id, str(role))
        return JSON(serialize.membership(row, Lookup(conn)), status_code=201)


# -- project ------------------------------------------------------------------------------------


@router.get("/project/", summary="Projects of your organisations")
def project_list(request: Request, principal: Principal = Depends(user_only)) -> Response:
    query = sa.select(db.projects).where(principal.org_filter(db.projects.c.org_id))
    params = request.query_params
    org_slug = params.get("org__slug") or params.get("org")
    if org_slug:
        query = query.where(db.projects.c.org_id.in_(sa.select(db.orgs.c.id).where(db.orgs.c.slug == org_slug)))
    if params.get("slug"):
        slug = project_slug_or_none(params["slug"])
        query = query.where(db.projects.c.gid == (slug.get_id() if slug else -1))
    if params.get("name"):
        query = query.where(db.projects.c.name == params["name"])
    pager = Pager(request, STANDARD)
    with state(request).read() as conn:
        lk = Lookup(conn)
        return pager.respond_query(
            conn, query, [db.projects.c.name, db.projects.c.gid.desc()], lambda r: serialize.project(r, lk)
        )


@router.post(
    "/project/",
    openapi_extra=body_doc(["name", "org"], name="string", org="string", about="string", project_template="string"),
    status_code=201,
    summary="Create a project in an organisation (admins)",
)
def project_create(
    request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    fields = Fields(as_object(body))
    name = fields.text("name", required=True, allow_blank=False, max_length=50)
    about = fields.text("about", default="", max_length=1000) or ""
    template = fields.text("project_template", default="default-template-v1-0-0")
    if template not in catalog.PROJECT_TEMPLATES:
        fields.error("project_template", f"Object with slug={template} does not exist.")
    with state(request).write() as conn:
        org = org_by_slug_field(conn, fields)
        if not principal.can_admin(conn, org.id):
            raise forbidden(NO_ACCESS)
        project_id = str(uuid.uuid4())
        gid = (conn.execute(sa.select(sa.func.max(db.projects.c.gid))).scalar() or 0) + 1
        conn.execute(
            sa.insert(db.projects).values(
                id=project_id,
                gid=gid,
                name=name,
                org_id=org.id,
                about=about,
                project_template=template,
                created_on=db.now_us(),
                created_by=principal.user_id,
            )
        )
        row = conn.execute(sa.select(db.projects).where(db.projects.c.id == project_id)).one()
        return JSON(serialize.project(row, Lookup(conn)), status_code=201)


@router.get("/project/{project_id}/", summary="One project (by uuid)")
def project_detail(project_id: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).read() as conn:
        return JSON(serialize.project(visible_project(conn, principal, project_id), Lookup(conn)))


@router.patch(
    "/project/{project_id}/",
    openapi_extra=body_doc(name="string", about="string"),
    summary="Rename or describe a project (admins)",
)
@router.put("/project/{project_id}/", include_in_schema=False)
def project_update(
    project_id: str, request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    fields = Fields(as_object(body))
    with state(request).write() as conn:
        row = visible_project(conn, principal, project_id)
        if not principal.can_admin(conn, row.org_id):
            raise forbidden(NO_ACCESS)
        if request.method == "PUT":  # a full update: DRF asks for every required field
            for name in ("name", "org"):
                if name not in fields.body:
                    fields.error(name, REQUIRED)
            fields.check()
        values = {}
        if fields.has("name"):
            values["name"] = fields.text("name", allow_blank=False, max_length=50)
        if fields.has("about"):
            values["about"] = fields.text("about", max_length=1000)
        fields.check(db.projects, values)
        row = db.update_row(conn, db.projects, "id", row.id, values)
        return JSON(serialize.project(row, Lookup(conn)))


@router.delete("/project/{project_id}/", status_code=204, summary="Delete a project and its streams (admins)")
def project_delete(project_id: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).write() as conn:
        row = visible_project(conn, principal, project_id)
        if not principal.can_admin(conn, row.org_id):
            raise forbidden(NO_ACCESS)
        conn.execute(
            sa.update(db.devices)
            .where(db.devices.c.project_id == row.id)
            .values(project_id=None, org_id=None, claimed_by=None, claimed_on=None)
        )
        conn.execute(sa.delete(db.projects).where(db.projects.c.id == row.id))
    return Response(status_code=204)


@router.get("/project/{project_id}/extra/", summary="A project with device, variable and stream counts")
def project_extra(project_id: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).read() as conn:
        row = visible_project(conn, principal, project_id)

        def count(table: sa.Table, *where: Any) -> int:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one())

        body = serialize.project(row, Lookup(conn))
        body["counts"] = {
            "active_devices": count(db.devices, db.devices.c.project_id == row.id, db.devices.c.active.is_(True)),
            "inactive_devices": count(db.devices, db.devices.c.project_id == row.id, db.devices.c.active.is_(False)),
            "variables": count(db.variables, db.variables.c.project_id == row.id),
            "streams": count(db.streams, db.streams.c.project_id == row.id),
        }
        return JSON(body)


# -- fleet --------------------------------------------------------------------------------------


def _fleet_id(slug: str) -> int:
    from iotile_cloud.utils.gid import IOTileFleetSlug

    try:
        return IOTileFleetSlug(slug).get_id()
    except ValueError:
        raise not_found() from None


def visible_fleet(conn: Connection, principal: Principal, slug: str) -> Any:
    row = conn.execute(sa.select(db.fleets).where(db.fleets.c.id == _fleet_id(slug))).first()
    if row is None or not member_view(conn, principal, row.org_id):
        raise not_found()
    return row


@router.get("/fleet/", summary="Fleets of your organisations")
def fleet_list(request: Request, principal: Principal = Depends(user_only)) -> Response:
    query = sa.select(db.fleets).where(principal.org_filter(db.fleets.c.org_id))
    params = request.query_params
    if params.get("org"):
        query = query.where(db.fleets.c.org_id.in_(sa.select(db.orgs.c.id).where(db.orgs.c.slug == params["org"])))
    if params.get("device"):
        device = device_slug_or_none(params["device"])
        query = query.where(
            db.fleets.c.id.in_(
                sa.select(db.fleet_members.c.fleet_id).where(
                    db.fleet_members.c.device_id == (device.get_id() if device else -1)
                )
            )
        )
    pager = Pager(request, STANDARD)
    with state(request).read() as conn:
        lk = Lookup(conn)
        return pager.respond_query(
            conn, query, [db.fleets.c.name, db.fleets.c.id.desc()], lambda r: serialize.fleet(r, lk)
        )


def _unique_fleet_name(conn: Connection, org_id: str, name: str, fleet_id: int | None = None) -> None:
    taken = sa.select(db.fleets.c.id).where(db.fleets.c.org_id == org_id, db.fleets.c.name == name)
    if fleet_id is not None:
        taken = taken.where(db.fleets.c.id != fleet_id)
    if conn.execute(taken).first():
        raise APIError(400, {"non_field_errors": ["The fields org, name must make a unique set."]})


@router.post(
    "/fleet/",
    openapi_extra=body_doc(["name", "org"], name="string", org="string", description="string", is_network="boolean"),
    status_code=201,
    summary="Create a fleet (org admins)",
)
def fleet_create(
    request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    fields = Fields(as_object(body))
    name = fields.text("name", required=True, allow_blank=False, max_length=50)
    description = fields.text("description", default="", max_length=1000) or ""
    is_network = fields.boolean("is_network", default=False)
    with state(request).write() as conn:
        org = org_by_slug_field(conn, fields)
        if not principal.can_admin(conn, org.id):
            raise forbidden()
        _unique_fleet_name(conn, org.id, str(name))
        fleet_id = db.new_id(
            conn.execute(
                sa.insert(db.fleets).values(
                    name=name,
                    org_id=org.id,
                    description=description,
                    is_network=is_network,
                    created_on=db.now_us(),
                    created_by=principal.user_id,
                )
            )
        )
        row = conn.execute(sa.select(db.fleets).where(db.fleets.c.id == fleet_id)).one()
        return JSON(serialize.fleet(row, Lookup(conn)), status_code=201)


@router.get("/fleet/{slug}/", summary="One fleet")
def fleet_detail(slug: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).read() as conn:
        return JSON(serialize.fleet(visible_fleet(conn, principal, slug), Lookup(conn)))


@router.patch(
    "/fleet/{slug}/",
    openapi_extra=body_doc(name="string", description="string", is_network="boolean"),
    summary="Change a fleet (org admins)",
)
def fleet_update(
    slug: str, request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    fields = Fields(as_object(body))
    with state(request).write() as conn:
        row = visible_fleet(conn, principal, slug)
        if not principal.can_admin(conn, row.org_id):
            raise forbidden()
        values: dict[str, Any] = {}
        if fields.has("name"):
            values["name"] = fields.text("name", allow_blank=False, max_length=50)
        if fields.has("description"):
            values["description"] = fields.text("description", max_length=1000)
        if fields.has("is_network"):
            values["is_network"] = fields.boolean("is_network")
        fields.check(db.fleets, values)
        if values.get("name"):
            _unique_fleet_name(conn, row.org_id, str(values["name"]), row.id)
        row = db.update_row(conn, db.fleets, "id", row.id, values)
        return JSON(serialize.fleet(row, Lookup(conn)))


@router.delete("/fleet/{slug}/", status_code=204, summary="Delete a fleet (org admins)")
def fleet_delete(slug: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).write() as conn:
        row = visible_fleet(conn, principal, slug)
        if not principal.can_admin(conn, row.org_id):
            raise forbidden()
        conn.execute(sa.delete(db.fleets).where(db.fleets.c.id == row.id))
    return Response(status_code=204)


def _member_body(row: Any) -> dict[str, Any]:
    from iotile_cloud.utils.gid import int2did

    return {
        "device": f"d--{int2did(row.device_id)}",
        "always_on": bool(row.always_on),
        "is_access_point": bool(row.is_access_point),
    }


@router.get("/fleet/{slug}/devices/", summary="Devices of a fleet")
def fleet_devices(slug: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    pager = Pager(request, STANDARD)
    with state(request).read() as conn:
        fleet = visible_fleet(conn, principal, slug)
        query = sa.select(db.fleet_members).where(db.fleet_members.c.fleet_id == fleet.id)
        return pager.respond_query(conn, query, [db.fleet_members.c.device_id], lambda r: _member_body(r))


def _fleet_device(conn: Connection, principal: Principal, fleet: Any, fields: Fields) -> Any:
    if not principal.can_admin(conn, fleet.org_id):
        raise forbidden()
    ref = fields.text("device", required=True, allow_blank=False)
    fields.check()
    slug = device_slug_or_none(str(ref))
    device = conn.execute(sa.select(db.devices).where(db.devices.c.id == slug.get_id())).first() if slug else None
    if device is None or not principal.can_read(conn, device.org_id):
        raise APIError(400, {"device": [f"Object with slug={ref} does not exist."]})
    return device


@router.post(
    "/fleet/{slug}/register/",
    openapi_extra=body_doc(["device"], device="string", always_on="boolean", is_access_point="boolean"),
    status_code=201,
    summary="Add a device to a fleet",
)
def fleet_register(
    slug: str, request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    fields = Fields(as_object(body))
    with state(request).write() as conn:
        fleet = visible_fleet(conn, principal, slug)
        device = _fleet_device(conn, principal, fleet, fields)
        always_on = fields.boolean("always_on", default=False)
        access_point = fields.boolean("is_access_point", default=False)
        fields.check()
        exists = conn.execute(
            sa.select(db.fleet_members.c.id).where(
                db.fleet_members.c.fleet_id == fleet.id, db.fleet_members.c.device_id == device.id
            )
        ).first()
        if exists:
            raise APIError(400, {"error": f"Device d--{serialize.int2did(device.id)} already exists in fleet"})
        conn.execute(
            sa.insert(db.fleet_members).values(
                fleet_id=fleet.id, device_id=device.id, always_on=always_on, is_access_point=access_point
            )
        )
        row = conn.execute(
            sa.select(db.fleet_members).where(
                db.fleet_members.c.fleet_id == fleet.id, db.fleet_members.c.device_id == device.id
            )
        ).one()
        return JSON(_member_body(row), status_code=201)


@router.post(
    "/fleet/{slug}/deregister/",
    openapi_extra=body_doc(["device"], device="string"),
    status_code=202,
    summary="Remove a device from a fleet",
)
def fleet_deregister(
    slug: str, request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    fields = Fields(as_object(body))
    with state(request).write() as conn:
        fleet = visible_fleet(conn, principal, slug)
        device = _fleet_device(conn, principal, fleet, fields)
        deleted = conn.execute(
            sa.delete(db.fleet_members).where(
                db.fleet_members.c.fleet_id == fleet.id, db.fleet_members.c.device_id == device.id
            )
        ).rowcount
        if not deleted:
            raise APIError(400, {"error": f"Device d--{serialize.int2did(device.id)} is not in this fleet"})
    return JSON({"device": f"d--{serialize.int2did(device.id)}", "deregistered": True}, status_code=202)
