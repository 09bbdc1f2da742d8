"""Streamer reports (upload and records) and event uploads with attached files."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from iotile_cloud.reports import (
    MAX_REPORT_LENGTH,
    DictionaryReport,
    ReportError,
    SignedListReport,
    decode_report,
    report_kind,
)
from iotile_cloud.reports.dictionary import MAX_CONTAINERS
from iotile_cloud.server import db, serialize
from iotile_cloud.server.context import Principal, device_or_user, state, write_file
from iotile_cloud.server.http import (
    STANDARD,
    APIError,
    Fields,
    Pager,
    body_doc,
    device_id_or_none,
    forbidden,
    is_uuid,
    not_found,
    parse_datetime,
)
from iotile_cloud.server.ingest import DEVICE_BY_ID, PROJECT_BY_ID, ingest_report
from iotile_cloud.server.limits import MAX_INFLATED_BYTES, check_depth, inflate
from iotile_cloud.server.routes.orgs import add_member
from iotile_cloud.server.security import private_dir
from iotile_cloud.server.serialize import Lookup
from iotile_cloud.utils.gid import IOTileStreamerSlug, int2did

router = APIRouter()


async def _form(request: Request) -> Any:
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        return {}
    try:
        return await request.form(max_part_size=MAX_REPORT_LENGTH + 1024)
    except Exception as error:  # a malformed multipart body
        raise APIError(400, {"detail": f"Multipart form parse error - {error}"}) from None


async def _read_file(form: Any, name: str = "file") -> tuple[str, bytes] | None:
    upload = form.get(name) if form else None
    if not isinstance(upload, UploadFile):
        return None
    data = await upload.read(MAX_REPORT_LENGTH + 1)
    if len(data) > MAX_REPORT_LENGTH:
        raise APIError(400, [f"File too large: at most {MAX_REPORT_LENGTH} bytes"])
    return upload.filename or "", data


@router.post(
    "/streamer/report/",
    openapi_extra=body_doc(["file"], multipart=True, file="binary"),
    status_code=201,
    summary="Upload a streamer report: ?timestamp=<received UTC time>, multipart field `file`",
)
async def upload_report(request: Request, principal: Principal = Depends(device_or_user)) -> Response:
    stamp = request.query_params.get("timestamp")
    if not stamp:
        raise APIError(400, {"error": "missing timestamp argument"})
    return await receive_report(request, principal, stamp)


async def receive_report(request: Request, principal: Principal, stamp: str) -> Response:
    """Decode and store the report in the request's multipart field ``file``, received at ``stamp``
    (also the console's upload form)."""
    from fastapi.concurrency import run_in_threadpool

    form = await _form(request)
    async with state(request).upload_budget.hold(_upload_size(form)):
        upload = await _read_file(form)
        if upload is None:
            raise APIError(400, {"error": "missing request.data['file']"})
        filename, data = upload
        try:
            report_kind(filename)
        except ReportError as error:
            raise APIError(400, [str(error)]) from None
        received = parse_datetime(stamp)
        if received is None:
            raise APIError(400, ["Upload function requires a ?timestamp=str argument in UTC format"])
        return await run_in_threadpool(_store, request, principal, filename, data, received)


def _upload_size(form: Any, name: str = "file") -> int:
    """The bytes of the form's file (spooled to disk by the parser, not read yet): its weight in the
    process's upload budget (decoding a 16 MiB report took 300-400 MiB; six at once, +3.1 GiB)."""
    upload = form.get(name) if form else None
    return int(upload.size or 0) if isinstance(upload, UploadFile) else 0


def _store(request: Request, principal: Principal, filename: str, data: bytes, received: Any) -> Response:
    try:
        report = decode_report(data, filename)
    except ReportError as error:
        raise APIError(400, [str(error)]) from None
    if not isinstance(report, (SignedListReport, DictionaryReport)):
        raise APIError(400, [f"Unsupported Report Format: {report.format}"])
    app = state(request)
    from iotile_cloud.server.http import JSON

    with app.write() as conn:
        device = conn.execute(DEVICE_BY_ID, {"device_id": report.device}).first()
        if app.fixed_tokens is not None and (device is None or device.project_id is None):
            # Test fixtures only: as the original mock cloud, keep the record of a report from a device
            # that is not claimed (or not known) without storing its readings.
            report_id = _record_unclaimed(conn, report, principal)
            save_raw_report(conn, app.data_dir, report_id, data)
            return JSON({"count": len(report.readings)}, status_code=201)
        if device is None:
            raise APIError(404, {"detail": f"Device d--{int2did(report.device)} not found"})
        principal.check_device(device.id)
        if device.project_id is None:
            raise APIError(400, [f"Device d--{int2did(device.id)} is not claimed"])
        if not principal.can_write_data(conn, device.org_id):
            if principal.can_read(conn, device.org_id):
                raise forbidden()
            raise APIError(404, {"detail": f"Device d--{int2did(report.device)} not found"})
        if isinstance(report, SignedListReport) and report.verified is None:
            if not device.report_key:
                raise APIError(
                    400,
                    [
                        "Signed report: no key is registered for this device on this server "
                        "(iotile-cloud admin set-device-key)"
                    ],
                )
            try:
                report = SignedListReport.decode(data, bytes.fromhex(device.report_key))
            except ReportError as error:
                raise APIError(400, [str(error)]) from None
        project = conn.execute(PROJECT_BY_ID, {"project_id": device.project_id}).one()
        result = ingest_report(
            conn,
            device,
            project,
            report,
            received,
            principal.user_id if principal.user else None,
            app.data_dir,
            len(data),
        )
        save_raw_report(conn, app.data_dir, result.record_id, data)
    # "count" (readings in the report) is what clients have always read; the rest tells what was new.
    return JSON(
        {
            "count": result.count,
            "stored": result.stored,
            "duplicates": result.count - result.stored,
            "events": result.events,
        },
        status_code=201,
    )


def save_raw_report(conn: Any, data_dir: Path, report_id: str, data: bytes) -> None:
    """Keep the uploaded file as received (``<data dir>/reports/<report id>``), owner-only like
    everything else in the data directory (0700 folder, 0600 file, whatever the umask), and only
    if the report's transaction commits."""
    write_file(conn, private_dir(data_dir / "reports") / report_id, data)


def _fixture_org(conn: Any, principal: Principal) -> str:
    """The uploader's first org; one named as the original fake's default org when it has none."""
    org_id = conn.execute(
        sa.select(db.memberships.c.org_id)
        .where(db.memberships.c.user_id == principal.user_id)
        .order_by(db.memberships.c.id)
        .limit(1)
    ).scalar()
    if org_id is not None:
        return str(org_id)
    org_id = conn.execute(sa.select(db.orgs.c.id).where(db.orgs.c.slug == "quick-test-org")).scalar()
    if org_id is None:
        org_id = str(uuid.uuid4())
        conn.execute(
            sa.insert(db.orgs).values(
                id=org_id,
                name="Quick Test Org",
                slug="quick-test-org",
                created_on=db.now_us(),
                created_by=principal.user_id,
            )
        )
    add_member(conn, str(org_id), principal.user_id, "a0")
    return str(org_id)


def _record_unclaimed(conn: Any, report: SignedListReport | DictionaryReport, principal: Principal) -> str:
    device_id = int(report.device)
    if conn.execute(sa.select(db.devices.c.id).where(db.devices.c.id == device_id)).first() is None:
        # Owned (unclaimed) by the uploader's first org, so the uploader sees the records it made.
        org_id = _fixture_org(conn, principal) if principal.user else None
        conn.execute(sa.insert(db.devices).values(id=device_id, template="", org_id=org_id, created_on=db.now_us()))
    selector = int(getattr(report, "streamer_selector", 0) or 0)
    where = (db.streamers.c.device_id == device_id, db.streamers.c.index == report.streamer_index)
    streamer = conn.execute(sa.select(db.streamers).where(*where)).first()
    highest = int(report.highest_id or 0)
    if streamer is None:
        conn.execute(
            sa.insert(db.streamers).values(
                device_id=device_id,
                index=report.streamer_index,
                selector=selector,
                last_id=highest,
                last_reboot_ts=db.now_us(),
                created_on=db.now_us(),
            )
        )
    elif highest > streamer.last_id:
        conn.execute(sa.update(db.streamers).where(*where).values(last_id=highest, selector=selector))
    streamer_id = conn.execute(sa.select(db.streamers.c.id).where(*where)).scalar_one()
    report_id = str(uuid.uuid4())
    now = db.now_us()
    conn.execute(
        sa.insert(db.streamer_reports).values(
            id=report_id,
            streamer_id=streamer_id,
            original_first_id=report.lowest_id,
            original_last_id=report.highest_id,
            sent_timestamp=now,
            device_sent_timestamp=getattr(report, "sent_timestamp", None),
            incremental_id=report.report_id,
            time_epsilon=1.0,
            created_on=now,
            created_by=principal.user_id if principal.user else None,
        )
    )
    return report_id


def _reports_query(principal: Principal) -> Any:
    return (
        sa.select(db.streamer_reports, db.streamers.c.device_id, db.streamers.c.index)
        .join(db.streamers, db.streamers.c.id == db.streamer_reports.c.streamer_id)
        .join(db.devices, db.devices.c.id == db.streamers.c.device_id)
        .where(principal.visible(db.devices.c.org_id, db.devices.c.id))
    )


def _report_body(row: Any, lk: Lookup) -> dict[str, Any]:
    slug = f"t--{int2did(row.device_id)}--{row.index:04x}"
    return serialize.streamer_report(row, slug, lk)


@router.get("/streamer/report/", summary="Records of uploaded reports; ?streamer__slug=")
def report_list(request: Request, principal: Principal = Depends(device_or_user)) -> Response:
    query = _reports_query(principal)
    streamer = request.query_params.get("streamer__slug") or request.query_params.get("streamer")
    if streamer:
        try:
            parsed = IOTileStreamerSlug(streamer)
        except ValueError:
            raise APIError(400, {"detail": f"Illegal streamer slug {streamer!r}"}) from None
        query = query.where(
            db.streamers.c.device_id == (device_id_or_none(parsed.get_device()) or -1),
            db.streamers.c.index == int(parsed.get_index(), 16),
        )
    pager = Pager(request, STANDARD)
    with state(request).read() as conn:
        lk = Lookup(conn)
        return pager.respond_query(
            conn, query, [db.streamer_reports.c.created_on.desc()], lambda r: _report_body(r, lk)
        )


@router.get("/streamer/report/{report_id}/", summary="One report record")
def report_detail(report_id: str, request: Request, principal: Principal = Depends(device_or_user)) -> Response:
    from iotile_cloud.server.http import JSON

    if not is_uuid(report_id):
        raise not_found()
    with state(request).read() as conn:
        row = conn.execute(_reports_query(principal).where(db.streamer_reports.c.id == report_id)).first()
        if row is None:
            raise not_found()
        return JSON(_report_body(row, Lookup(conn)))


# -- event uploads --------------------------------------------------------------------------------


@router.post(
    "/event/upload/",
    openapi_extra=body_doc(
        ["file", "stream", "timestamp"],
        multipart=True,
        file="binary",
        stream="string",
        timestamp="datetime",
        device_timestamp="integer",
        streamer_local_id="integer",
        encoded_extra_data="string",
    ),
    status_code=201,
    summary="Upload an event with an attached .json or .json.gz file (multipart)",
)
async def upload_event(request: Request, principal: Principal = Depends(device_or_user)) -> Response:
    from fastapi.concurrency import run_in_threadpool

    form = await _form(request)
    upload_file = form.get("file") if form else None
    gzipped = isinstance(upload_file, UploadFile) and (upload_file.filename or "").lower().endswith(".gz")
    weight = MAX_INFLATED_BYTES if gzipped else _upload_size(form)  # what it may inflate to
    async with state(request).upload_budget.hold(weight):
        upload = await _read_file(form)
        if upload is None:
            raise APIError(400, {"file": ["No file was submitted."]})
        filename, data = upload
        lowered = filename.lower()
        if not lowered.endswith((".json", ".json.gz")):
            raise APIError(400, ["Unsupported extension for Stream Event"])
        await run_in_threadpool(_check_event_file, data, lowered.endswith(".gz"))
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        return await run_in_threadpool(
            _store_event, request, principal, fields, data, "json.gz" if lowered.endswith(".gz") else "json"
        )


def _check_event_file(data: bytes, gzipped: bool) -> None:
    """400 unless the file is JSON (inflated first when gzipped), in the thread pool: inflating and
    parsing 16 MiB on the event loop held every other request meanwhile. Its maps and arrays are
    counted first, as a dictionary report's: 16 MiB of ``[]`` parsed was +500 MiB."""
    payload = inflate(data) if gzipped else data
    if payload.count(b"{") + payload.count(b"[") > MAX_CONTAINERS:
        raise APIError(400, {"file": [f"The file holds more than {MAX_CONTAINERS} objects and arrays."]})
    try:
        orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise APIError(400, {"file": ["The file is not valid JSON (or gzipped JSON)."]}) from None


def _store_event(request: Request, principal: Principal, form: dict[str, str], data: bytes, ext: str) -> Response:
    from iotile_cloud.server.http import JSON
    from iotile_cloud.server.routes.data import event_dir, insert_event, writable_stream

    fields = Fields(form)
    slug = fields.text("stream", required=True, allow_blank=False, max_length=64)
    ts = fields.datetime("timestamp", required=True)
    device_ts = fields.integer("device_timestamp", min_value=0, max_value=(1 << 63) - 1)
    local_id = fields.integer("streamer_local_id", default=0, min_value=0, max_value=(1 << 63) - 1)
    encoded = form.get("encoded_extra_data") or "{}"
    try:
        extra = orjson.loads(encoded)
    except orjson.JSONDecodeError:
        extra = None
    if not isinstance(extra, dict):
        fields.error("encoded_extra_data", "encoded_extra_data must be a JSON string holding a dictionary")
    else:
        check_depth(extra)
    fields.check()
    with state(request).write() as conn:
        stream, _conv = writable_stream(conn, principal, str(slug), {})
        values = {
            "ts": ts,
            "device_timestamp": device_ts,
            "streamer_local_id": local_id,
            "extra_data": orjson.dumps(extra).decode(),
        }
        event_id = insert_event(conn, values, stream.pk, event_dir(request), data, ext)
        row = conn.execute(sa.select(db.events).where(db.events.c.id == event_id)).one()
    return JSON(
        {
            "id": row.id,
            "stream": stream.slug,
            "device_timestamp": row.device_timestamp,
            "timestamp": db.iso(row.ts),
            "streamer_local_id": row.streamer_local_id,
            "encoded_extra_data": encoded,
        },
        status_code=201,
    )
