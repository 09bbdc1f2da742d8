"""Failed password logins, limited per account and per client address.

The counters live in the database, so the limits hold across every server process sharing it.
A key is blocked once it has ``limit`` failures inside a fixed window; the block lifts when the
window ends (``Retry-After`` says when). Checks come before any password hashing, so a flood of
bad logins costs a few indexed queries, not memory-hard KDF work.
"""

from __future__ import annotations

import math

import sqlalchemy as sa
from fastapi import Request
from sqlalchemy.engine import Connection

from iotile_cloud.server import db
from iotile_cloud.server.http import APIError

WINDOW_US = 15 * 60 * 1_000_000
ACCOUNT_LIMIT = 10
CLIENT_LIMIT = 50


def keys(request: Request, login: str) -> list[str]:
    client = request.client.host if request.client else "unknown"
    return [f"account:{login.strip().lower()[:254]}", f"client:{client}"]


def _limit(key: str) -> int:
    return ACCOUNT_LIMIT if key.startswith("account:") else CLIENT_LIMIT


def check(conn: Connection, login_keys: list[str], now: int) -> None:
    """429 with ``Retry-After`` when any key is over its limit in the current window."""
    table = db.login_failures
    rows = conn.execute(sa.select(table).where(table.c.key.in_(login_keys))).all()
    waits = [
        row.window_start + WINDOW_US - now
        for row in rows
        if now - row.window_start < WINDOW_US and row.failures >= _limit(row.key)
    ]
    if waits:
        seconds = max(1, math.ceil(max(waits) / 1_000_000))
        raise APIError(
            429,
            {"detail": f"Too many failed logins. Try again in {seconds} seconds."},
            {"Retry-After": str(seconds)},
        )


def record(conn: Connection, login_keys: list[str], success: bool, now: int) -> None:
    """Count a failure against every key (a success clears the account's count)."""
    table = db.login_failures
    if success:
        conn.execute(sa.delete(table).where(table.c.key == login_keys[0]))
        return
    conn.execute(sa.delete(table).where(table.c.window_start <= now - WINDOW_US))  # windows that ended
    for key in login_keys:
        bumped = conn.execute(sa.update(table).where(table.c.key == key).values(failures=table.c.failures + 1))
        if bumped.rowcount == 0:
            _insert_or_bump(conn, key, now)


def _insert_or_bump(conn: Connection, key: str, now: int) -> None:
    table = db.login_failures
    try:
        with conn.begin_nested():
            conn.execute(sa.insert(table).values(key=key, window_start=now, failures=1))
    except sa.exc.IntegrityError:  # another process inserted it first
        conn.execute(sa.update(table).where(table.c.key == key).values(failures=table.c.failures + 1))
