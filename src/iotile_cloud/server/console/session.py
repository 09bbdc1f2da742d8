"""Console sign-in sessions: an HttpOnly cookie, its row in ``console_sessions``, and CSRF.

The cookie holds a random token; the database keeps only its SHA-256. Each session has its own
CSRF token, which every writing form carries in a hidden field (and scripts in the
``X-CSRFToken`` header) and the server compares in constant time.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.engine import Connection

from iotile_cloud.server import db
from iotile_cloud.server.security import token_digest

COOKIE = "iotile_console"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrftoken"
LIFETIME_US = 14 * 24 * 3600 * 1_000_000
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Session:
    user: Any
    csrf: str


def open_session(conn: Connection, user_id: int) -> str:
    """A new session for ``user_id``; returns the cookie value."""
    token = secrets.token_urlsafe(32)
    now = db.now_us()
    conn.execute(
        sa.insert(db.console_sessions).values(
            token_hash=token_digest(token),
            user_id=user_id,
            csrf=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + LIFETIME_US,
        )
    )
    # Expired rows of anyone go on each sign-in, so the table stays small without a janitor.
    conn.execute(sa.delete(db.console_sessions).where(db.console_sessions.c.expires_at < now))
    return token


def find_session(conn: Connection, request: Request) -> Session | None:
    """The live session the request's cookie names (None if absent, expired or its user inactive)."""
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 200:
        return None
    row = conn.execute(
        sa.select(db.users, db.console_sessions.c.csrf)
        .join(db.users, db.users.c.id == db.console_sessions.c.user_id)
        .where(
            db.console_sessions.c.token_hash == token_digest(token),
            db.console_sessions.c.expires_at > db.now_us(),
            db.users.c.is_active.is_(True),
        )
    ).first()
    if row is None:
        return None
    return Session(user=row, csrf=row.csrf)


def close_session(conn: Connection, request: Request) -> None:
    token = request.cookies.get(COOKIE)
    if token:
        conn.execute(sa.delete(db.console_sessions).where(db.console_sessions.c.token_hash == token_digest(token)))


def set_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=LIFETIME_US // 1_000_000,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


def clear_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax", secure=request.url.scheme == "https")


def csrf_matches(session: Session, supplied: Any) -> bool:
    return isinstance(supplied, str) and bool(supplied) and hmac.compare_digest(session.csrf, supplied)


def cookie_user(request: Request) -> Any | None:
    """The user a console cookie signs in for an API request (DRF's session authentication).

    Writing requests must also carry the session's CSRF token in ``X-CSRFToken``; otherwise a page
    on another site could make a signed-in browser write through the API.
    """
    from iotile_cloud.server.context import state
    from iotile_cloud.server.http import APIError

    if COOKIE not in request.cookies:
        return None
    with state(request).read() as conn:
        session = find_session(conn, request)
    if session is None:
        return None
    if request.method not in SAFE_METHODS and not csrf_matches(session, request.headers.get(CSRF_HEADER)):
        raise APIError(403, {"detail": "CSRF Failed: CSRF token missing or incorrect."})
    return session.user
