"""Sub-routes the original's pages and scripts reach: set a password, invite members (and accept),
pending invitations, an org's devices, project properties, a variable's type, a stream as CSV, an
event's data URL, a streamer's reports and the manufacturing feed."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlalchemy.engine import Connection

from iotile_cloud.server import db, serialize
from iotile_cloud.server.context import ADMIN_ROLES, ROLE_NAMES, Principal, state, user_only
from iotile_cloud.server.db import iso
from iotile_cloud.server.http import (
    JSON,
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
from iotile_cloud.server.routes import data, devices, reports
from iotile_cloud.server.routes.auth import hashed
from iotile_cloud.server.routes.device_actions import catalog_item
from iotile_cloud.server.routes.orgs import NO_ACCESS, add_member, visible_org, visible_project
from iotile_cloud.server.routes.streams import stream_by_slug, variable_by_slug
from iotile_cloud.server.security import token_digest
from iotile_cloud.utils.gid import int2pid

router = APIRouter()
Body = Any
ORG_DEVICES_PAGE = 10  # the original's search page


def with_query(request: Request, **params: str) -> Request:
    """The same request with these query parameters set (to answer through another route)."""
    query = dict(request.query_params)
    query.update(params)
    scope = dict(request.scope)
    scope["query_string"] = urlencode(query).encode()
    return Request(scope, request.receive)


# -- account --------------------------------------------------------------------------------------


@router.post(
    "/account/{slug}/set_password/",
    openapi_extra=body_doc(["password"], password="string"),
    status_code=201,
    summary="Set your own password",
)
async def account_set_password(
    slug: str, request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    assert principal.user is not None
    if slug.lower() != principal.user.slug:
        raise not_found()
    fields = Fields(as_object(body))
    password = fields.text("password", required=True, allow_blank=False, max_length=128)
    if password is not None and len(password) < 8:
        fields.error("password", "This password is too short. It must contain at least 8 characters.")
    fields.check()
    password_hash = await hashed(request, str(password))

    def store() -> None:
        with state(request).write() as conn:
            conn.execute(
                sa.update(db.users)
                .where(db.users.c.id == principal.user_id)
                .values(password_hash=password_hash, updated_at=db.now_us())
            )

    await run_in_threadpool(store)
    return JSON({"status": "password set"}, status_code=201)


# -- org: invitations and devices ---------------------------------------------------------------


def _user_manager(conn: Connection, principal: Principal, slug: str) -> Any:
    """An org whose members the caller manages (the original's ``can_manage_users``)."""
    org = visible_org(conn, principal, slug)
    if not (principal.is_staff or principal.role(conn, org.id) in ADMIN_ROLES):
        raise forbidden(NO_ACCESS)
    return org


@router.post(
    "/org/{slug}/invite/",
    openapi_extra=body_doc(["email"], email="string", role="string"),
    status_code=201,
    summary="Invite someone by email (org admins); they join with POST /org/<slug>/accept/",
)
def org_invite(
    slug: str, request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    fields = Fields(as_object(body))
    email = fields.text("email", required=True, allow_blank=False, max_length=254)
    if email is not None and ("@" not in email or " " in email.strip()):
        fields.error("email", "Enter a valid email address.")
    role = fields.choice("role", list(ROLE_NAMES), default="m1")
    fields.check()
    email = str(email).strip().lower()
    # The original e-mailed a link; a local server has no mail and cannot prove who owns an address
    # (anyone may sign up with any email): the invitee accepts with this token, which the admin
    # passes on. Only its digest is stored; sending the invitation again makes a new one.
    token = secrets.token_urlsafe(32)
    with state(request).write() as conn:
        org = _user_manager(conn, principal, slug)
        table = db.invitations
        existing = conn.execute(sa.select(table).where(table.c.org_id == org.id, table.c.email == email)).first()
        now = db.now_us()
        if existing is None:
            conn.execute(
                sa.insert(table).values(
                    org_id=org.id,
                    email=email,
                    role=role,
                    token=token_digest(token),
                    created_on=now,
                    created_by=principal.user_id,
                )
            )
        elif existing.accepted_on is None:  # resent: the newest sender, role and token count
            conn.execute(
                sa.update(table)
                .where(table.c.id == existing.id)
                .values(role=role, token=token_digest(token), created_on=now, created_by=principal.user_id)
            )
        else:
            raise APIError(400, {"email": ["This person has already accepted an invitation to this organization."]})
    return JSON({"email": email, "token": token}, status_code=201)


@router.get("/org/{slug}/pending/", summary="Invitations not yet accepted (org admins)")
def org_pending(slug: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    pager = Pager(request, STANDARD)
    with state(request).read() as conn:
        org = _user_manager(conn, principal, slug)
        table = db.invitations
        query = sa.select(table).where(table.c.org_id == org.id, table.c.accepted_on.is_(None))
        lk = serialize.Lookup(conn)
        return pager.respond_query(
            conn,
            query,
            [table.c.created_on, table.c.id],
            lambda r: {"email": r.email, "sent_on": iso(r.created_on), "sent_by": lk.username(r.created_by)},
        )


@router.post(
    "/org/{slug}/accept/",
    openapi_extra=body_doc(["token"], token="string"),
    status_code=201,
    summary="Accept an invitation sent to your email, with its token (local server)",
)
def org_accept(
    slug: str, request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    assert principal.user is not None
    fields = Fields(as_object(body))
    token = fields.text("token", required=True, allow_blank=False, max_length=256)
    fields.check()
    with state(request).write() as conn:
        org = conn.execute(sa.select(db.orgs).where(db.orgs.c.slug == slug)).first()
        if org is None:
            raise not_found()
        table = db.invitations
        invitation = conn.execute(
            sa.select(table).where(
                table.c.org_id == org.id,
                table.c.email == principal.user.email.lower(),
                table.c.token == token_digest(str(token)),
                table.c.accepted_on.is_(None),
            )
        ).first()
        if invitation is None:
            raise not_found()
        now = db.now_us()
        row = add_member(conn, org.id, principal.user_id, invitation.role, now)
        conn.execute(sa.update(table).where(table.c.id == invitation.id).values(accepted_on=now))
        return JSON(serialize.membership(row, serialize.Lookup(conn)), status_code=201)


@router.get("/org/{slug}/devices/", summary="Devices of an organisation (pages of 10; ?q= searches label and slug)")
def org_devices(slug: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    try:
        page = int(request.query_params.get("page", "1") or "1")
    except ValueError:
        raise APIError(400, {"detail": "Invalid page."}) from None
    page = max(page, 1)
    with state(request).read() as conn:
        org = visible_org(conn, principal, slug)
        query = sa.select(db.devices).where(db.devices.c.org_id == org.id)
        text = request.query_params.get("q")
        if text:
            query = query.where(db.devices.c.label.ilike(f"%{text}%"))
        count = int(conn.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one())
        rows = conn.execute(
            query.order_by(db.devices.c.id).offset((page - 1) * ORG_DEVICES_PAGE).limit(ORG_DEVICES_PAGE)
        )
        lk = serialize.Lookup(conn)
        results = [serialize.device(r, lk) for r in rows]
    return JSON(
        {
            "next_page": page + 1 if page * ORG_DEVICES_PAGE < count else None,
            "prev_page": page - 1 if page > 1 else None,
            "count": count,
            "results": results,
        }
    )


# -- project properties ---------------------------------------------------------------------------


@router.get("/project/{project_id}/properties/", summary="A project's properties (plain list)")
def project_properties(project_id: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).read() as conn:
        project = visible_project(conn, principal, project_id)
        return JSON(devices.properties_of(conn, f"p--{int2pid(project.gid)}"))


@router.post(
    "/project/{project_id}/new_property/",
    openapi_extra=body_doc(["name"], name="string", int_value="integer", str_value="string", bool_value="boolean"),
    status_code=201,
    summary="Add a property to a project (members)",
)
def project_new_property(
    project_id: str, request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    with state(request).write() as conn:
        project = visible_project(conn, principal, project_id)
        payload = {**as_object(body), "target": f"p--{int2pid(project.gid)}"}
        prop = devices.create_property(conn, principal, payload)
        return JSON(serialize.prop(prop, with_target=False), status_code=201)


# -- variable type, stream CSV, event URL, streamer reports ----------------------------------------


@router.get("/variable/{slug}/type/", summary="A variable's type and its units")
async def variable_type(slug: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).read() as conn:
        row = variable_by_slug(conn, principal, slug)
    return await catalog_item(request, principal, "/vartype/{slug}/", row.var_type)


@router.get("/stream/{slug}/csv/", summary="A stream's data as CSV (timestamp,value); ?start=, ?end=, ?apply_mdo=1")
def stream_csv(slug: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    from iotile_cloud.server.routes.frames import frame_response

    with state(request).read() as conn:
        stream_by_slug(conn, principal, slug)  # 404/403 as the stream's own route, not an empty table
    return frame_response(request, principal, slug, "csv", two_columns=True)


@router.get("/event/{event_id}/url/", summary="Where an event's data file is downloaded from")
def event_url(event_id: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).read() as conn:
        row, _ = data.readable_event(conn, principal, event_id)
    if not row.data_path:
        raise APIError(404, {"error": "Event has no data"})
    # The original answered a signed S3 URL; a local server serves the file itself.
    return JSON({"url": str(request.url_for("event_data", event_id=str(row.id)))})


@router.get("/streamer/{slug}/report/", summary="Reports received for one streamer (t--<device>--<index>)")
def streamer_reports(slug: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    return reports.report_list(with_query(request, streamer__slug=slug), principal)


# -- manufacturing feed -----------------------------------------------------------------------------


@router.get("/production/device/", summary="The manufacturing feed (org API keys only: none on a local server)")
@router.get("/production/device/{slug}/", include_in_schema=False)
def production_devices(principal: Principal = Depends(user_only)) -> Response:
    # The original served this to other clouds holding an org API key, never to user tokens.
    raise forbidden()
