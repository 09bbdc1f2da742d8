"""Storing a streamer report: de-duplicate by the streamer's ``last_id``, convert, store whole.

Everything happens on the caller's connection inside one transaction, so a report is stored
whole or not at all (a crash mid-way leaves nothing; uploading again completes it).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from iotile_cloud.reports import DictionaryReport, SignedListReport, to_utc
from iotile_cloud.server import db, model

REBOOT_STREAM = 0x5C00
COMPLETE_MARKER, CHOPPED_MARKER = 0x5A05, 0x5A06
CHOPPED_RANGE = (196592, 196608)


@dataclass
class IngestResult:
    count: int
    stored: int
    events: int
    first_id: int | None
    last_id: int | None


def _lock_streamer(conn: Connection, device_id: int, index: int, selector: int) -> Row[Any]:
    """The streamer row, created if missing, locked for this transaction (PostgreSQL: FOR UPDATE)."""
    dialect = conn.dialect.name
    values = {"device_id": device_id, "index": index, "selector": selector, "last_id": 0, "created_on": db.now_us()}
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        conn.execute(pg_insert(db.streamers).values(**values).on_conflict_do_nothing())
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        conn.execute(sqlite_insert(db.streamers).values(**values).on_conflict_do_nothing())
    query = sa.select(db.streamers).where(db.streamers.c.device_id == device_id, db.streamers.c.index == index)
    if dialect == "postgresql":
        query = query.with_for_update()
    return conn.execute(query).one()


def ingest_report(
    conn: Connection,
    device: Row[Any],
    project: Row[Any],
    report: SignedListReport | DictionaryReport,
    received: dt.datetime,
    user_id: int | None,
    data_dir: Path,
    raw_length: int,
) -> IngestResult:
    streamer = _lock_streamer(conn, device.id, report.streamer_index, report.streamer_selector)
    last_id = int(streamer.last_id)
    has_new = report.highest_id > last_id or report.highest_id == 0

    def fresh(reading_id: int) -> bool:
        # Readings without an id (0) cannot be de-duplicated one by one: they go with their report.
        return reading_id > last_id if reading_id else has_new

    readings = [r for r in report.readings if fresh(r.reading_id)]
    events = [e for e in getattr(report, "events", []) if fresh(e.reading_id)]
    sent = report.sent_timestamp

    # A simple, documented rule for reboots: uptime readings before the report's last reboot are dirty.
    reboot_at = max((i for i, r in enumerate(readings) if r.stream == REBOOT_STREAM), default=-1)
    cache: dict[int, tuple[Row[Any], model.Converter]] = {}

    def stream(lid: int) -> tuple[Row[Any], model.Converter]:
        if lid not in cache:
            row = model.stream_for(conn, project, device.id, lid, user_id)
            cache[lid] = (row, model.converter(conn, row))
        return cache[lid]

    received_us = db.to_us(received)
    rows: list[dict[str, Any]] = []
    for position, reading in enumerate(readings):
        row, conv = stream(reading.stream)
        given = getattr(reading, "timestamp", None)
        when = given or to_utc(reading.raw_timestamp, sent, received)
        rtc = (
            reading.raw_timestamp is not None
            and reading.raw_timestamp & 0x80000000
            and reading.raw_timestamp != 0xFFFFFFFF
        )
        dirty = when is None or (position < reboot_at and not rtc and given is None)
        raw = reading.value
        if isinstance(raw, float) and not raw.is_integer():
            value, kind, int_value = raw, "Num", None
        else:
            int_value = int(raw)
            value, kind = conv.value(int_value)
        rows.append(
            {
                "stream_pk": row.pk,
                "ts": db.to_us(when) if when else received_us,
                "device_timestamp": reading.raw_timestamp,
                "int_value": int_value,
                "value": value,
                "type": kind,
                "streamer_local_id": reading.reading_id,
                "dirty_ts": dirty,
                "status": "drt" if dirty else ("utc" if rtc or given else "cln"),
            }
        )
    if rows:
        conn.execute(sa.insert(db.data), rows)

    for event in events:
        row, _conv = stream(event.stream)
        when = event.timestamp or to_utc(event.raw_timestamp, sent, received)
        values = {
            "ts": db.to_us(when) if when else received_us,
            "device_timestamp": event.raw_timestamp,
            "streamer_local_id": event.reading_id,
            "dirty_ts": when is None,
            "status": "drt" if when is None else "utc",
            "extra_data": orjson.dumps(event.extra_data).decode(),
        }
        from iotile_cloud.server.routes.data import insert_event

        folder = data_dir / "events"
        folder.mkdir(parents=True, exist_ok=True)
        insert_event(conn, values, row.pk, folder, orjson.dumps(event.data) if event.data is not None else None)

    ids = [r["streamer_local_id"] for r in rows if r["streamer_local_id"]] + [
        e.reading_id for e in events if e.reading_id
    ]
    first_id, top_id = (min(ids), max(ids)) if ids else (None, None)
    stored_any = bool(rows or events)
    if stored_any:
        marker = CHOPPED_MARKER if CHOPPED_RANGE[0] <= raw_length <= CHOPPED_RANGE[1] else COMPLETE_MARKER
        row, conv = stream(marker)
        value, kind = conv.value(report.streamer_index)
        conn.execute(
            sa.insert(db.data).values(
                stream_pk=row.pk,
                ts=received_us,
                int_value=report.streamer_index,
                value=value,
                type=kind,
                streamer_local_id=report.report_id,
                status="cln",
            )
        )
    update: dict[str, Any] = {}
    if top_id is not None and top_id > last_id:
        update["last_id"] = top_id  # forward only
    if reboot_at >= 0:
        update["last_reboot_ts"] = rows[reboot_at]["ts"]
    if update:
        conn.execute(sa.update(db.streamers).where(db.streamers.c.id == streamer.id).values(**update))
    conn.execute(
        sa.insert(db.streamer_reports).values(
            id=str(uuid.uuid4()),
            streamer_id=streamer.id,
            original_first_id=report.lowest_id,
            original_last_id=report.highest_id,
            actual_first_id=first_id,
            actual_last_id=top_id,
            sent_timestamp=received_us,
            device_sent_timestamp=sent,
            incremental_id=report.report_id,
            time_epsilon=1.0,
            created_on=db.now_us(),
            created_by=user_id,
        )
    )
    count = len(report.readings)
    return IngestResult(count=count, stored=len(rows), events=len(events), first_id=first_id, last_id=top_id)
