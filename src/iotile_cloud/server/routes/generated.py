"""Generated user reports: a record, an upload target for its file, and the upload's confirmation.

The original server hands out an S3 upload form; a local server hands out its own upload route
(``.../upload/``, multipart ``file``) and keeps the file in ``<data dir>/generated/<id>/``.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, Response
from sqlalchemy.engine import Connection, Row

from iotile_cloud.server import db
from iotile_cloud.server.context import Principal, current_user, state, user_only
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
    is_uuid,
    json_body,
    not_found,
)
from iotile_cloud.server.security import write_private
from iotile_cloud.server.serialize import Lookup
from iotile_cloud.server.uploads import file_name_field, keyed_upload, private_path

router = APIRouter()
Body = Any
ACLS = ("public-read", "private")
CONTENT_TYPES = (
    "text/plain",
    "text/html",
    "text/csv",
    "image/png",
    "image/jpeg",
    "application/zip",
    "application/javascript",
    "application/json",
    "application/octet-stream",
)
STATUSES = {"GS": "Scheduled", "G0": "In Progress", "G1": "Generated", "GE": "Error"}


def generated_body(row: Row[Any], lk: Lookup) -> dict[str, Any]:
    return {
        "id": row.id,
        "label": row.label,
        "source_ref": row.source_ref,
        "url": None,
        "created_on": iso(row.created_on),
        "created_by": lk.username(row.created_by),
        "org": lk.org_slug(row.org_id),
        "status": row.status,
    }


def _folder(data_dir: Path, report_id: str) -> Path:
    return data_dir / "generated" / report_id


def _readable(conn: Connection, principal: Principal, report_id: str) -> Row[Any]:
    row = (
        conn.execute(sa.select(db.generated_reports).where(db.generated_reports.c.id == report_id)).first()
        if is_uuid(report_id)
        else None
    )
    if row is None:
        raise not_found()
    if not principal.can_read(conn, row.org_id):
        raise forbidden()
    return row


def _writable(conn: Connection, principal: Principal, report_id: str) -> Row[Any]:
    row = _readable(conn, principal, report_id)
    if not principal.can_write_data(conn, row.org_id):
        raise forbidden("User has no access permissions")
    return row


@router.get("/report/generated/", summary="Generated reports of your organisations; ?org=")
def generated_list(request: Request, principal: Principal = Depends(user_only)) -> Response:
    table = db.generated_reports
    query = sa.select(table).where(principal.org_filter(table.c.org_id))
    with state(request).read() as conn:
        org = request.query_params.get("org")
        if org:
            query = query.where(
                table.c.org_id == conn.execute(sa.select(db.orgs.c.id).where(db.orgs.c.slug == org)).scalar()
            )
        lk = Lookup(conn)
        return Pager(request, STANDARD).respond_query(
            conn, query, [table.c.created_on.desc()], lambda r: generated_body(r, lk)
        )


@router.post(
    "/report/generated/",
    openapi_extra=body_doc(["label", "org"], label="string", org="string", source_ref="string"),
    status_code=201,
    summary="Create a generated report record (members)",
)
def generated_create(
    request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    fields = Fields(as_object(body))
    label = fields.text("label", required=True, allow_blank=False, max_length=120)
    org = fields.text("org", required=True, allow_blank=False)
    source_ref = fields.text("source_ref", default="", max_length=50) or ""
    fields.check()
    with state(request).write() as conn:
        org_id = conn.execute(sa.select(db.orgs.c.id).where(db.orgs.c.slug == org)).scalar()
        if org_id is None:
            raise APIError(400, {"org": [f"Object with slug={org} does not exist."]})
        if not principal.can_write_data(conn, org_id):
            raise forbidden("User has no access permissions")
        report_id = str(uuid.uuid4())
        conn.execute(
            sa.insert(db.generated_reports).values(
                id=report_id,
                label=label,
                org_id=org_id,
                source_ref=source_ref,
                created_on=db.now_us(),
                created_by=principal.user_id,
            )
        )
        row = conn.execute(sa.select(db.generated_reports).where(db.generated_reports.c.id == report_id)).one()
        return JSON(generated_body(row, Lookup(conn)), status_code=201)


@router.get("/report/generated/{report_id}/", summary="One generated report")
def generated_detail(report_id: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    with state(request).read() as conn:
        return JSON(generated_body(_readable(conn, principal, report_id), Lookup(conn)))


@router.post(
    "/report/generated/{report_id}/uploadurl/",
    openapi_extra=body_doc(["name"], name="string", acl="string", content_type="string"),
    status_code=202,
    summary="Where to upload the report's file (members)",
)
def generated_upload_url(
    report_id: str, request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    fields = Fields(as_object(body))
    fields.choice("acl", ACLS)
    fields.choice("content_type", CONTENT_TYPES)
    name = file_name_field(fields)
    with state(request).read() as conn:
        row = _writable(conn, principal, report_id)
    key = f"{row.id}/{name}"
    url = str(request.url_for("generated_upload", report_id=row.id))
    return JSON({"url": url, "fields": {"key": key}, "uuid": row.id}, status_code=202)


@router.post(
    "/report/generated/{report_id}/upload/",
    openapi_extra=body_doc(["key", "file"], multipart=True, key="string", file="binary"),
    status_code=204,
    summary="Upload the report's file (the target uploadurl/ names)",
    name="generated_upload",
)
async def generated_upload(report_id: str, request: Request, principal: Principal = Depends(user_only)) -> Response:
    from fastapi.concurrency import run_in_threadpool

    _, name, data = await keyed_upload(request, "report", folder=report_id)
    app = state(request)
    with app.read() as conn:
        _writable(conn, principal, report_id)

    def save() -> None:
        write_private(private_path(app.data_dir, "generated", report_id) / name, data)

    await run_in_threadpool(save)
    return Response(status_code=204)


@router.post(
    "/report/generated/{report_id}/uploadsuccess/",
    openapi_extra=body_doc(["name"], name="string"),
    status_code=202,
    summary="Confirm the report's file was uploaded (members)",
)
def generated_upload_success(
    report_id: str, request: Request, body: Body = Depends(json_body), principal: Principal = Depends(user_only)
) -> Response:
    fields = Fields(as_object(body))
    name = file_name_field(fields)
    app = state(request)
    with app.write() as conn:
        row = _writable(conn, principal, report_id)
        if not (_folder(app.data_dir, row.id) / name).is_file():
            raise APIError(400, {"name": [f"No file {name} was uploaded for this report."]})
        key = f"{row.id}/{name}"
        conn.execute(
            sa.update(db.generated_reports).where(db.generated_reports.c.id == row.id).values(key=key, status="G1")
        )
    url = str(request.url_for("generated_file", report_id=row.id, name=name))
    return JSON({"id": row.id, "title": name, "key": key, "url": url, "created_on": iso(db.now_us())}, status_code=202)


@router.get("/report/generated/{report_id}/file/{name}", summary="Download a report's file", name="generated_file")
def generated_file(
    report_id: str, name: str, request: Request, principal: Principal = Depends(current_user)
) -> Response:
    app = state(request)
    with app.read() as conn:
        row = _readable(conn, principal, report_id)
    path = _folder(app.data_dir, row.id) / name
    if "/" in name or not path.is_file():
        raise not_found()
    # Always a download, never rendered: an uploaded HTML or SVG file must not run in this origin,
    # where the console's session cookie signs in whoever follows the link (as note attachments).
    return FileResponse(
        path, filename=name, content_disposition_type="attachment", headers={"X-Content-Type-Options": "nosniff"}
    )
