"""Stream aliases (``/alias/``) and their taps (``/tap/``).

An alias is a virtual stream built from pieces of physical streams: each tap says "from this time on,
the alias reads this stream", so a sensor can be followed across device swaps.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.engine import Connection

from iotile_cloud.server import db, serialize
from iotile_cloud.server.context import ADMIN_ROLES, Principal, state, user_only
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
from iotile_cloud.server.routes.orgs import NO_ACCESS, member_view, org_by_slug_field
from iotile_cloud.server.routes.targets import normal_slug
from iotile_cloud.utils.gid import int64gid

router = APIRouter()
Body = Any


def alias_slug(alias_id: int) -> str:
    """The original's alias slug: ``a--`` and the id as four hex groups (``a--0000-0000-0000-0001``)."""
    return f"a--{int64gid(alias_id)}"


def _alias_id(slug: str) -> int | None:
    """The id of an alias slug written exactly as :func:`alias_slug` writes it (the original looked
    aliases up by their stored slug)."""
    head, _, tail = slug.partition("--")
    try:
        alias_id = int(tail.replace("-", ""), 16) if head == "a" and tail else None
    except ValueError:
        return None
    return alias_id if alias_id is not None and alias_slug(alias_id) == slug else None


def check_manager(conn: Connection, principal: Principal, org_id: str) -> None:
    """The original's ``can_manage_stream_aliases``: org owners and admins."""
    if not (principal.is_staff or principal.role(conn, org_id) in ADMIN_ROLES):
        raise forbidden(NO_ACCESS)


def alias_body(row: Any, lk: serialize.Lookup) -> dict[str, Any]:
    return {
        "id": row.id,
        "slug": alias_slug(row.id),
        "gid": int64gid(row.id),
        "name": row.name,
        "org": lk.org_slug(row.org_id),
        "created_on": iso(row.created_on),
        "created_by": lk.username(row.created_by),
    }


def visible_alias(conn: Connection, principal: Principal, slug: str) -> Any:
    alias_id = _alias_id(slug)
    row = conn.execute(sa.select(db.stream_aliases).where(db.stream_aliases.c.id == alias_id)).first()
    if alias_id is None or row is None or not member_view(conn, principal, row.org_id):
        raise not_found()
    check_manager(conn, principal, row.org_id)
    return row


@router.get("/alias/", summary="Stream aliases of your organisations; ?org=")
def alias_list(request: Request, principal: Principal = Depends(user_only)) -> Response:
    query = sa.select(db.stream_aliases).where(principal.org_filter(db.stream_aliases.c.org_id))
    pager = Pager(request, STANDARD)
    with state(request).read() as conn:
        org_slug = request.query_params.get("org")
        if org_slug:
            org = conn.execute(sa.select(db.orgs.c.id).where(db.orgs.c.slug == org_slug)).first()
            if org is None:
                raise not_found()
            query = query.where(db.stream_aliases.c.org_id == org.id)
        lk = serialize.Lookup(conn)
        return pager.respond_query(conn, query, [db.stream_aliases.c.id], lambda r: alias_body(r, lk))


@router.post(
    "/alias/",
    openapi_extra=body_doc(["name", "org"], name="string", org="string"),
    status_code=201,
    summary="Create an empty stream alias (org admins)",
)
def alias_create(
    request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    fields = Fields(as_object(body))
    name = fields.text("name", required=True, allow_blank=False, max_length=50)
    with state(request).write() as conn:
        org = org_by_slug_field(conn, fields)
        check_manager(conn, principal, org.id)
        alias_id = db.new_id(
            conn.execute(
                sa.insert(db.stream_aliases).values(
                    name=name, org_id=org.id, created_on=db.now_us(), created_by=principal.user_id
                )
            )
        )
        row = conn.execute(sa.select(db.stream_aliases).where(db.stream_aliases.c.id == alias_id)).one()
        return JSON(alias_body(row, serialize.Lookup(conn)), status_code=201)


@router.get("/alias/{slug}/", summary="One stream alias (org admins)")
def alias_detail(slug: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).read() as conn:
        return JSON(alias_body(visible_alias(conn, principal, slug), serialize.Lookup(conn)))


@router.patch("/alias/{slug}/", openapi_extra=body_doc(name="string", org="string"), summary="Rename a stream alias")
@router.put("/alias/{slug}/", include_in_schema=False)
def alias_update(
    slug: str, request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    fields = Fields(as_object(body))
    with state(request).write() as conn:
        row = visible_alias(conn, principal, slug)
        values: dict[str, Any] = {}
        if request.method == "PUT" or "name" in fields.body:
            values["name"] = fields.text("name", required=True, allow_blank=False, max_length=50)
        if request.method == "PUT" or "org" in fields.body:
            org = org_by_slug_field(conn, fields)
            check_manager(conn, principal, org.id)
            values["org_id"] = org.id
        fields.check()
        row = db.update_row(conn, db.stream_aliases, "id", row.id, values)
        return JSON(alias_body(row, serialize.Lookup(conn)))


@router.delete("/alias/{slug}/", status_code=204, summary="Delete a stream alias and its taps")
def alias_delete(slug: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).write() as conn:
        row = visible_alias(conn, principal, slug)
        conn.execute(sa.delete(db.stream_aliases).where(db.stream_aliases.c.id == row.id))
    return Response(status_code=204)


# -- taps -----------------------------------------------------------------------------------------


def tap_body(row: Any, lk: serialize.Lookup) -> dict[str, Any]:
    stream = lk.conn.execute(sa.select(db.streams.c.slug).where(db.streams.c.pk == row.stream_pk)).scalar()
    return {
        "id": row.id,
        "alias": alias_slug(row.alias_id),
        "timestamp": iso(row.ts),
        "stream": stream,
        "created_on": iso(row.created_on),
        "created_by": lk.username(row.created_by),
    }


def _tap_values(
    conn: Connection, principal: Principal, fields: Fields, partial: bool, current: Any = None
) -> dict[str, Any]:
    """Validated alias/timestamp/stream of a tap; the stream must be in the alias's org."""
    values: dict[str, Any] = {}
    alias = None
    if not partial or "alias" in fields.body:
        text = fields.text("alias", required=True, allow_blank=False)
        alias_id = _alias_id(str(text)) if text else None
        alias = conn.execute(sa.select(db.stream_aliases).where(db.stream_aliases.c.id == alias_id)).first()
        if text and (alias is None or not member_view(conn, principal, alias.org_id)):
            fields.error("alias", f"Object with slug={text} does not exist.")
            alias = None
    if not partial or "timestamp" in fields.body:
        values["ts"] = fields.datetime("timestamp", required=True)
    stream = None
    if not partial or "stream" in fields.body:
        text = fields.text("stream", required=True, allow_blank=False)
        stream = conn.execute(
            sa.select(db.streams.c.pk, db.projects.c.org_id)
            .join(db.projects, db.projects.c.id == db.streams.c.project_id)
            .where(db.streams.c.slug == normal_slug(str(text or "")))
        ).first()
        if text and stream is None:
            fields.error("stream", f"Object with slug={text} does not exist.")
    fields.check()
    if alias is None and current is not None:
        alias = conn.execute(sa.select(db.stream_aliases).where(db.stream_aliases.c.id == current.alias_id)).one()
    if stream is None and current is not None:
        stream = conn.execute(
            sa.select(db.streams.c.pk, db.projects.c.org_id)
            .join(db.projects, db.projects.c.id == db.streams.c.project_id)
            .where(db.streams.c.pk == current.stream_pk)
        ).one()
    assert alias is not None and stream is not None
    check_manager(conn, principal, alias.org_id)
    if stream.org_id != alias.org_id:
        raise APIError(400, ["Stream is not in the Org of Alias"])
    values.update(alias_id=alias.id, stream_pk=stream.pk)
    return values


@router.get("/tap/", summary="Taps of the stream aliases you can see; ?target=a--...")
def tap_list(request: Request, principal: Principal = Depends(user_only)) -> Response:
    query = (
        sa.select(db.stream_alias_taps)
        .join(db.stream_aliases, db.stream_aliases.c.id == db.stream_alias_taps.c.alias_id)
        .where(principal.org_filter(db.stream_aliases.c.org_id))
    )
    target = request.query_params.get("target")
    pager = Pager(request, STANDARD)
    with state(request).read() as conn:
        if target:
            alias_id = _alias_id(target)
            if (
                alias_id is None
                or conn.execute(sa.select(db.stream_aliases.c.id).where(db.stream_aliases.c.id == alias_id)).first()
                is None
            ):
                raise not_found()
            query = query.where(db.stream_alias_taps.c.alias_id == alias_id)
        lk = serialize.Lookup(conn)
        return pager.respond_query(
            conn, query, [db.stream_alias_taps.c.ts, db.stream_alias_taps.c.id], lambda r: tap_body(r, lk)
        )


@router.post(
    "/tap/",
    openapi_extra=body_doc(["alias", "timestamp", "stream"], alias="string", timestamp="datetime", stream="string"),
    status_code=201,
    summary="Point an alias at a stream from a time on (org admins)",
)
def tap_create(
    request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    fields = Fields(as_object(body))
    with state(request).write() as conn:
        values = _tap_values(conn, principal, fields, partial=False)
        tap_id = db.new_id(
            conn.execute(
                sa.insert(db.stream_alias_taps).values(**values, created_on=db.now_us(), created_by=principal.user_id)
            )
        )
        row = conn.execute(sa.select(db.stream_alias_taps).where(db.stream_alias_taps.c.id == tap_id)).one()
        return JSON(tap_body(row, serialize.Lookup(conn)), status_code=201)


def _visible_tap(conn: Connection, principal: Principal, raw: str) -> Any:
    try:
        tap_id = int(raw)
    except ValueError:
        raise not_found() from None
    row = conn.execute(
        sa.select(db.stream_alias_taps, db.stream_aliases.c.org_id)
        .join(db.stream_aliases, db.stream_aliases.c.id == db.stream_alias_taps.c.alias_id)
        .where(db.stream_alias_taps.c.id == tap_id)
    ).first()
    if row is None or not member_view(conn, principal, row.org_id):
        raise not_found()
    check_manager(conn, principal, row.org_id)
    return row


@router.get("/tap/{tap_id}/", summary="One alias tap (org admins)")
def tap_detail(tap_id: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).read() as conn:
        return JSON(tap_body(_visible_tap(conn, principal, tap_id), serialize.Lookup(conn)))


@router.patch(
    "/tap/{tap_id}/",
    openapi_extra=body_doc(alias="string", timestamp="datetime", stream="string"),
    summary="Move an alias tap in time or to another stream",
)
@router.put("/tap/{tap_id}/", include_in_schema=False)
def tap_update(
    tap_id: str, request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    fields = Fields(as_object(body))
    with state(request).write() as conn:
        row = _visible_tap(conn, principal, tap_id)
        values = _tap_values(conn, principal, fields, partial=request.method == "PATCH", current=row)
        row = db.update_row(conn, db.stream_alias_taps, "id", row.id, values)
        return JSON(tap_body(row, serialize.Lookup(conn)))


@router.delete("/tap/{tap_id}/", status_code=204, summary="Delete an alias tap")
def tap_delete(tap_id: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).write() as conn:
        row = _visible_tap(conn, principal, tap_id)
        conn.execute(sa.delete(db.stream_alias_taps).where(db.stream_alias_taps.c.id == row.id))
    return Response(status_code=204)
