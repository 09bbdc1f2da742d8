"""Storing a streamer report: de-duplicate by the streamer's ``last_id``, convert, store whole.

Everything happens on the caller's connection inside one transaction, so a report is stored
whole or not at all (a crash mid-way leaves nothing; uploading again completes it).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from iotile_cloud.reports import DictionaryReport, SignedListReport, to_utc
from iotile_cloud.server import db, model, points
from iotile_cloud.server.security import private_dir

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
    record_id: str  # the streamer_reports row made for this upload


# The statements of every report, built once (see points._TAKE_IDS). The upload route looks up the
# report's device and its project with the first two.
DEVICE_BY_ID = sa.select(db.devices).where(db.devices.c.id == sa.bindparam("device_id"))
PROJECT_BY_ID = sa.select(db.projects).where(db.projects.c.id == sa.bindparam("project_id"))
_STREAMER = sa.select(db.streamers).where(
    db.streamers.c.device_id == sa.bindparam("device_id"), db.streamers.c.index == sa.bindparam("index")
)
_STREAMER_LOCKED = _STREAMER.with_for_update()
# A stream's conversion needs these of its variable: one query brings them with the device's streams.
_VARIABLE_FIELDS = ("multiplication_factor", "division_factor", "offset", "decimal_places")
_DEVICE_STREAMS = (
    sa.select(db.streams, *(db.variables.c[name].label(f"variable_{name}") for name in _VARIABLE_FIELDS))
    .outerjoin(db.variables, db.variables.c.id == db.streams.c.variable_id)
    .where(db.streams.c.project_id == sa.bindparam("project_id"), db.streams.c.device_id == sa.bindparam("device_id"))
)
_ADVANCE_STREAMER = sa.update(db.streamers).where(db.streamers.c.id == sa.bindparam("streamer_id"))
_RECORD_REPORT = sa.insert(db.streamer_reports)


def _lock_streamer(conn: Connection, device_id: int, index: int, selector: int) -> Row[Any]:
    """The streamer row, created if missing, locked for this transaction (PostgreSQL: FOR UPDATE;
    SQLite: the write transaction already holds the database lock)."""
    postgres = conn.dialect.name == "postgresql"
    query = _STREAMER_LOCKED if postgres else _STREAMER
    key = {"device_id": device_id, "index": index}
    found = conn.execute(query, key).first()
    if found is not None:
        return found
    values = {"device_id": device_id, "index": index, "selector": selector, "last_id": 0, "created_on": db.now_us()}
    if postgres:
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        conn.execute(pg_insert(db.streamers).values(**values).on_conflict_do_nothing())
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        conn.execute(sqlite_insert(db.streamers).values(**values).on_conflict_do_nothing())
    return conn.execute(query, key).one()


_NO_TIME = np.iinfo(np.int64).min
_Y2K_US = 946_684_800 * 1_000_000


def _columns(report: SignedListReport | DictionaryReport) -> dict[str, np.ndarray]:
    """The report's readings as columns (raw timestamps -1 when missing, given times or _NO_TIME)."""
    if isinstance(report, SignedListReport):
        array = report.readings_array()
        n = len(array)
        return {
            "stream": array["stream"].astype(np.int64),
            "reading_id": array["reading_id"].astype(np.int64),
            "raw": array["raw_timestamp"].astype(np.int64),
            "value": array["value"].astype(np.int64),
            "given": np.full(n, _NO_TIME, dtype=np.int64),
        }
    readings = report.readings
    return {
        "stream": np.array([r.stream for r in readings], dtype=np.int64),
        "reading_id": np.array([r.reading_id for r in readings], dtype=np.int64),
        "raw": np.array([-1 if r.raw_timestamp is None else r.raw_timestamp for r in readings], dtype=np.int64),
        "value": np.array([r.value for r in readings], dtype=object),
        "given": np.array([db.to_us(r.timestamp) if r.timestamp else _NO_TIME for r in readings], dtype=np.int64),
    }


def _boot_bases(
    raw: np.ndarray, uptime_ok: np.ndarray, reboots: list[int], base: int, previous_base: Callable[[], int | None]
) -> tuple[np.ndarray, np.ndarray]:
    """The time each uptime reading's boot started (µs), and which of them are guessed.

    Uptime restarts at every reboot reading (0x5C00), so the readings of a report fall in blocks, one
    per boot. The last block is the boot the report was sent in: its start is the received time minus
    the sent uptime. Walking backwards (as the original cloud's reboot handling does), each earlier
    block is placed to end where the next boot starts (its highest uptime at that start): those times
    are guesses, marked dirty. The first block, recorded before the report's first reboot, belongs to
    the boot the streamer's previous report was sent in when that one's start fits before the next
    boot; its times are then known (clean)."""
    n = len(raw)
    bases = np.full(n, base, dtype=np.int64)
    guessed = np.zeros(n, dtype=bool)
    edges = [0, *reboots, n]
    next_start = base
    for block in range(len(reboots) - 1, -1, -1):
        rows = slice(edges[block], edges[block + 1])
        uptimes = raw[rows][uptime_ok[rows]]
        if not len(uptimes):
            continue
        latest = int(uptimes.max()) * 1_000_000
        start = next_start - latest
        known = previous_base() if block == 0 else None
        if known is not None and known + latest <= next_start:
            start = known
        else:
            guessed[rows] = True
        bases[rows] = start
        next_start = start
    return bases, guessed


_LATEST_REPORT = (
    sa.select(db.streamer_reports.c.sent_timestamp, db.streamer_reports.c.device_sent_timestamp)
    .where(db.streamer_reports.c.streamer_id == sa.bindparam("streamer_id"))
    .order_by(db.streamer_reports.c.created_on.desc())
    .limit(1)
)


def _previous_base(conn: Connection, streamer_id: int) -> int | None:
    """When the boot started that the streamer's latest report was sent in (µs), if it is known."""
    row = conn.execute(_LATEST_REPORT, {"streamer_id": streamer_id}).first()
    if row is None or row.device_sent_timestamp is None or row.device_sent_timestamp == 0xFFFFFFFF:
        return None
    return int(row.sent_timestamp) - int(row.device_sent_timestamp) * 1_000_000


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
    received_us = db.to_us(received)
    sent = report.sent_timestamp

    # De-duplicate: readings without an id (0) cannot be checked one by one; they go with their report.
    cols = _columns(report)
    ids = cols["reading_id"]
    keep = (ids > last_id) | ((ids == 0) & has_new)
    if not keep.all():
        cols = {name: column[keep] for name, column in cols.items()}
    stream, ids, raw, given = cols["stream"], cols["reading_id"], cols["raw"], cols["given"]
    n = len(ids)

    # Times (reports.md): bit 31 = real-time clock; otherwise uptime, anchored on the received time
    # for the boot the report was sent in, and placed before each reboot for earlier boots.
    has_given = given != _NO_TIME
    unknown_raw = (raw < 0) | (raw == 0xFFFFFFFF)
    rtc = ((raw & 0x80000000) != 0) & ~unknown_raw
    uptime_ok = ~unknown_raw & ~rtc & (sent is not None) & (sent != 0xFFFFFFFF)
    reboots = np.flatnonzero(stream == REBOOT_STREAM)
    reboot_at = int(reboots[-1]) if len(reboots) else -1
    base = received_us - (sent or 0) * 1_000_000
    bases, guessed = _boot_bases(raw, uptime_ok, reboots.tolist(), base, lambda: _previous_base(conn, streamer.id))
    ts = np.where(uptime_ok, bases + raw * 1_000_000, received_us)
    if rtc.any():
        ts = np.where(rtc, _Y2K_US + (raw & 0x7FFFFFFF) * 1_000_000, ts)
    if has_given.any():
        ts = np.where(has_given, given, ts)
    dirty = ~has_given & ((~rtc & ~uptime_ok) | (guessed & uptime_ok))
    code = points.STATUS_CODE
    status = np.where(dirty, code["drt"], np.where(rtc | has_given, code["utc"], code["cln"]))

    # Values, converted per stream with its MDO and input unit (vectorised).
    values = np.zeros(n, dtype=np.float64)
    itr = np.zeros(n, dtype=bool)
    stream_pks = np.zeros(n, dtype=np.int64)
    cache: dict[int, tuple[Row[Any], model.Converter]] = {}
    # The device's streams with their variables' factors in one query, not one per stream; keyed by
    # their variable id (the slug's last four hex digits).
    found = conn.execute(_DEVICE_STREAMS, {"project_id": project.id, "device_id": device.id})
    known = {int(r.slug[-4:], 16): r for r in found}

    def stream_row(lid: int) -> tuple[Row[Any], model.Converter]:
        if lid not in cache:
            row = known.get(lid)
            if row is not None and row.variable_multiplication_factor is not None:
                variable = SimpleNamespace(**{name: getattr(row, f"variable_{name}") for name in _VARIABLE_FIELDS})
                cache[lid] = (row, model.Converter.for_stream(row, variable))
            else:  # a stream made now, or one whose variable is gone
                row = row if row is not None else model.stream_for(conn, project, device.id, lid, user_id)
                cache[lid] = (row, model.converter(conn, row))
        return cache[lid]

    raw_values = cols["value"]
    is_fraction = (
        np.array([isinstance(v, float) and not float(v).is_integer() for v in raw_values], dtype=bool)
        if raw_values.dtype == object
        else np.zeros(n, dtype=bool)
    )
    # Per stream: one stable sort of the 16-bit stream ids (numpy sorts them by radix) makes each
    # stream's readings one run; each run is converted as a slice, and the results put back in
    # report order at once.
    order = np.argsort(stream.astype(np.uint16), kind="stable")
    runs = (np.flatnonzero(np.diff(stream[order])) + 1).tolist()
    in_order = raw_values[order]
    fractions = is_fraction[order]
    sorted_values = np.zeros(n, dtype=np.float64)
    sorted_itr = np.zeros(n, dtype=bool)
    sorted_pks = np.zeros(n, dtype=np.int64)
    for first, last in zip([0, *runs], [*runs, n], strict=True) if n else ():
        row, conv = stream_row(int(stream[order[first]]))
        sorted_pks[first:last] = row.pk
        part, fraction = in_order[first:last], fractions[first:last]
        whole = ~fraction if fraction.any() else slice(None)
        converted, kind = conv.values(part[whole].astype(np.int64))
        sorted_values[first:last][whole] = converted
        sorted_itr[first:last][whole] = kind == "ITR"
        if fraction.any():
            sorted_values[first:last][fraction] = part[fraction].astype(np.float64)
    values[order] = sorted_values
    itr[order] = sorted_itr
    stream_pks[order] = sorted_pks
    int_values = np.zeros(n, dtype=np.int64)
    int_values[~is_fraction] = raw_values[~is_fraction].astype(np.int64)
    readings = points.Points(
        ts=ts,
        id=np.zeros(n, dtype=np.int64),
        streamer_local_id=ids,
        device_timestamp=np.where(raw < 0, 0, raw),
        int_value=int_values,
        value=values,
        flags=points.flags_of(False, is_fraction, raw < 0, dirty, status, itr),
        stream_pk=stream_pks,
    )

    events = [e for e in getattr(report, "events", []) if e.reading_id > last_id or (e.reading_id == 0 and has_new)]
    if events:
        from iotile_cloud.server.routes.data import insert_event

        folder = private_dir(data_dir / "events")
        for event in events:
            row, _conv = stream_row(event.stream)
            when = event.timestamp or to_utc(event.raw_timestamp, sent, received)
            values_ = {
                "ts": db.to_us(when) if when else received_us,
                "device_timestamp": event.raw_timestamp,
                "streamer_local_id": event.reading_id,
                "dirty_ts": when is None,
                "status": "drt" if when is None else "utc",
                "extra_data": orjson.dumps(event.extra_data).decode(),
            }
            insert_event(conn, values_, row.pk, folder, orjson.dumps(event.data) if event.data is not None else None)

    given_ids = ids[ids != 0]
    event_ids = [e.reading_id for e in events if e.reading_id]
    bounds = ([int(given_ids.min()), int(given_ids.max())] if len(given_ids) else []) + event_ids
    first_id, top_id = (min(bounds), max(bounds)) if bounds else (None, None)
    if n or events:
        marker = CHOPPED_MARKER if CHOPPED_RANGE[0] <= raw_length <= CHOPPED_RANGE[1] else COMPLETE_MARKER
        row, conv = stream_row(marker)
        value, kind = conv.value(report.streamer_index)
        marked = points.Points(
            ts=np.array([received_us]),
            id=np.zeros(1, dtype=np.int64),
            streamer_local_id=np.array([report.report_id], dtype=np.int64),
            device_timestamp=np.zeros(1, dtype=np.int64),
            int_value=np.array([report.streamer_index], dtype=np.int64),
            value=np.array([value]),
            flags=points.flags_of(False, False, True, False, points.STATUS_CODE["cln"], kind == "ITR").reshape(1),
            stream_pk=np.array([row.pk], dtype=np.int64),
        )
        # The readings and the marker: one id range, one INSERT of the segments.
        points.append_batch(conn, points.Points.concat([readings, marked]))
    update: dict[str, Any] = {}
    if top_id is not None and top_id > last_id:
        update["last_id"] = top_id  # forward only
    if reboot_at >= 0:
        update["last_reboot_ts"] = int(ts[reboot_at])
    if update:
        conn.execute(_ADVANCE_STREAMER, {"streamer_id": streamer.id, **update})
    record_id = str(uuid.uuid4())
    conn.execute(
        _RECORD_REPORT,
        {
            "id": record_id,
            "streamer_id": streamer.id,
            "original_first_id": report.lowest_id,
            "original_last_id": report.highest_id,
            "actual_first_id": first_id,
            "actual_last_id": top_id,
            "sent_timestamp": received_us,
            "device_sent_timestamp": sent,
            "incremental_id": report.report_id,
            "time_epsilon": 1.0,
            "created_on": db.now_us(),
            "created_by": user_id,
        },
    )
    return IngestResult(
        count=len(report.readings), stored=n, events=len(events), first_id=first_id, last_id=top_id, record_id=record_id
    )
