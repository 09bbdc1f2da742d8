"""Data blocks (archives of a device's data): list, detail and their title/description.

Shapes and permissions follow the original server's ``/datablock/``: org members read, members with
write access change the title and description.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.engine import Connection, Row

from iotile_cloud.server import db
from iotile_cloud.server.context import Principal, device_or_user, state, user_only
from iotile_cloud.server.db import iso
from iotile_cloud.server.http import (
    JSON,
    STANDARD,
    Fields,
    Pager,
    as_object,
    body_doc,
    device_slug_or_none,
    forbidden,
    json_body,
    not_found,
)
from iotile_cloud.server.serialize import Lookup

router = APIRouter()
Body = Any


def datablock_body(row: Row[Any], lk: Lookup) -> dict[str, Any]:
    return {
        "id": row.id,
        "slug": row.slug,
        "title": row.title,
        "description": row.description,
        "block": row.block,
        "org": lk.org_slug(row.org_id),
        "sg": row.sg,
        "created_on": iso(row.created_on),
        "created_by": lk.username(row.created_by),
        "pid": "",
    }


def _readable(conn: Connection, principal: Principal, slug: str) -> Row[Any]:
    row = conn.execute(sa.select(db.datablocks).where(db.datablocks.c.slug == slug.lower())).first()
    if row is None:
        raise not_found()
    if not principal.can_read(conn, row.org_id):
        raise forbidden()
    principal.check_device(row.device_id)
    return row


@router.get("/datablock/", summary="Data blocks of your organisations; ?device=, ?org=")
def datablock_list(request: Request, principal: Principal = Depends(user_only)) -> Response:
    params = request.query_params
    table = db.datablocks
    query = sa.select(table).where(principal.org_filter(table.c.org_id))
    if params.get("device"):
        slug = device_slug_or_none(params["device"])
        query = query.where(table.c.device_id == (slug.get_id() if slug else -1))
    with state(request).read() as conn:
        if params.get("org"):
            org_id = conn.execute(sa.select(db.orgs.c.id).where(db.orgs.c.slug == params["org"])).scalar()
            query = query.where(table.c.org_id == org_id)
        lk = Lookup(conn)
        return Pager(request, STANDARD).respond_query(conn, query, [table.c.id], lambda r: datablock_body(r, lk))


@router.get("/datablock/{slug}/", summary="One data block")
def datablock_detail(slug: str, request: Request, principal: Principal = Depends(device_or_user)) -> Response:
    with state(request).read() as conn:
        return JSON(datablock_body(_readable(conn, principal, slug), Lookup(conn)))


@router.patch(
    "/datablock/{slug}/",
    openapi_extra=body_doc(title="string", description="string"),
    summary="Change a data block's title or description (members)",
)
def datablock_update(
    slug: str, request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    fields = Fields(as_object(body))
    values: dict[str, Any] = {}
    if "title" in fields.body:
        values["title"] = fields.text("title", max_length=100, allow_blank=False)
    if "description" in fields.body:
        values["description"] = fields.text("description", max_length=100_000) or ""
    fields.check()
    with state(request).write() as conn:
        row = _readable(conn, principal, slug)
        if not principal.can_write_data(conn, row.org_id):
            raise forbidden()
        row = db.update_row(conn, db.datablocks, "slug", row.slug, values)
        return JSON(datablock_body(row, Lookup(conn)))
