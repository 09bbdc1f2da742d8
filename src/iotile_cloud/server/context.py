"""Per-app state, the caller's identity, and org-scoped permissions."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import Request
from sqlalchemy.engine import Connection, Engine, Row

from iotile_cloud.server import db
from iotile_cloud.server.compaction import Compactor
from iotile_cloud.server.counters import ERRORS, REQUESTS, SharedCounter
from iotile_cloud.server.http import APIError, flag, forbidden, not_authenticated
from iotile_cloud.server.limits import UPLOAD_BUDGET, ByteBudget
from iotile_cloud.server.security import KDF_CONCURRENCY, JwtCodec, TokenError, token_digest, write_private

ROLE_NAMES = {"a0": "Owner", "a1": "Admin", "m1": "Member", "r1": "Read Only"}
ADMIN_ROLES = frozenset({"a0", "a1"})
WRITE_ROLES = frozenset({"a0", "a1", "m1"})

_ALL = [
    "can_delete_org",
    "can_manage_ota",
    "can_read_notes",
    "can_manage_users",
    "can_reset_device",
    "can_access_webapp",
    "can_claim_devices",
    "can_modify_device",
    "can_access_classic",
    "can_access_reports",
    "can_create_reports",
    "can_read_stream_ids",
    "can_access_companion",
    "can_access_datablock",
    "can_create_datablock",
    "can_delete_datablock",
    "can_read_stream_data",
    "can_create_stream_ids",
    "can_modify_stream_ids",
    "can_create_stream_data",
    "can_manage_stream_aliases",
    "can_read_device_locations",
    "can_read_device_properties",
    "can_manage_org_and_projects",
    "can_modify_device_properties",
]
_READ = {
    "can_read_notes",
    "can_access_webapp",
    "can_access_reports",
    "can_read_stream_ids",
    "can_access_companion",
    "can_access_datablock",
    "can_read_stream_data",
    "can_read_device_locations",
    "can_read_device_properties",
}
_MEMBER = _READ | {
    "can_modify_device",
    "can_modify_stream_ids",
    "can_create_stream_data",
    "can_modify_device_properties",
}
_ADMIN = set(_ALL) - {"can_manage_ota", "can_create_stream_ids", "can_delete_org"}
PERMISSIONS: dict[str, dict[str, bool]] = {
    role: {name: name in granted for name in _ALL}
    for role, granted in {
        "a0": _ADMIN | {"can_delete_org"},
        "a1": _ADMIN,
        "m1": _MEMBER,
        "r1": _READ,
    }.items()
}


@dataclass
class AppState:
    engine: Engine
    jwt: JwtCodec
    data_dir: Path
    stage: str = "local"
    # Test fixtures only (``create_app(fixed_tokens=True)``): fixed credentials such as the original
    # mock cloud's ``JWT_USER``, each standing for one account (token -> email). ``None``: refused.
    fixed_tokens: dict[str, str] | None = None
    # Shared by every worker through the database (see counters.py), not held in this process.
    requests: SharedCounter = field(init=False)
    errors: SharedCounter = field(init=False)  # answers with a 4xx/5xx status (the mock cloud reports it)

    compactor: Compactor = field(init=False)
    # Uploaded files being decoded in this process (see limits.UPLOAD_BUDGET).
    upload_budget: ByteBudget = field(default_factory=lambda: ByteBudget(UPLOAD_BUDGET))
    # Live feeds open in this process, by user (limits.StreamGuard releases them when the answer ends).
    live_feeds: Counter[int] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.requests = SharedCounter(self.engine, REQUESTS)
        self.errors = SharedCounter(self.engine, ERRORS)
        self.compactor = Compactor(self.engine, data_dir=self.data_dir)

    def close(self) -> None:
        """At shutdown: stop compacting, write this worker's pending counts, close the connection pool."""
        try:
            self.compactor.stop()
            self.requests.close()
            self.errors.close()
        finally:
            self.engine.dispose()

    @property
    def mock_cloud(self) -> bool:
        """A server behind the original mock cloud's fixtures (``create_app(fixed_tokens=True)``)."""
        return self.fixed_tokens is not None

    def fixed_token_for(self, email: str) -> str | None:
        """The fixed token that stands for this account, if any."""
        for token, owner in (self.fixed_tokens or {}).items():
            if owner == email.lower():
                return token
        return None

    # Logins wait here, as coroutines, for a KDF slot: a flood queues cheaply instead of holding threads.
    kdf_queue: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(KDF_CONCURRENCY))

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads (see ``db.reading``)."""
        with db.reading(self.engine) as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One transaction: committed whole, or rolled back whole on any error, files written for it
        through :func:`write_file` included."""
        written: list[Path] = []
        try:
            with self.engine.begin() as conn:
                conn.info[_WRITTEN_FILES] = written
                try:
                    yield conn
                finally:
                    conn.info.pop(_WRITTEN_FILES, None)
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise


_WRITTEN_FILES = "iotile_cloud.written_files"


def write_file(conn: Connection, path: Path, data: bytes) -> None:
    """Write an owner-only file that belongs to ``conn``'s transaction (``AppState.write``): it is
    removed again when the transaction rolls back, so a refused request leaves nothing on disk."""
    written = conn.info.get(_WRITTEN_FILES)
    if written is not None:
        written.append(path)
    write_private(path, data)


def state(request: Request) -> AppState:
    result: AppState = request.app.state.iotile
    return result


@dataclass
class Principal:
    """Who is calling: a user, or a device acting through its own token (``a-jwt``)."""

    user: Row[Any] | None
    device_scope: int | None = None
    staff_arg: bool = False
    _roles: dict[str, str | None] = field(default_factory=dict)

    @property
    def is_authenticated(self) -> bool:
        return self.user is not None

    @property
    def user_id(self) -> int:
        assert self.user is not None
        return int(self.user.id)

    @property
    def is_staff(self) -> bool:
        return bool(self.user is not None and self.user.is_staff)

    @property
    def staff_view(self) -> bool:
        """Staff see everything, but only when they ask with ``?staff=1``."""
        return self.is_staff and self.staff_arg

    @property
    def can_register_devices(self) -> bool:
        """Staff with ``?staff=1`` (as on the original), or the local server's owner (``users.is_owner``)."""
        return self.staff_view or bool(self.user is not None and self.user.is_owner)

    def role(self, conn: Connection, org_id: str | None) -> str | None:
        if self.user is None or org_id is None:
            return None
        if org_id not in self._roles:
            self._roles[org_id] = conn.execute(
                sa.select(db.memberships.c.role).where(
                    db.memberships.c.org_id == org_id,
                    db.memberships.c.user_id == self.user.id,
                    db.memberships.c.is_active.is_(True),
                )
            ).scalar()
        return self._roles[org_id]

    def can_read(self, conn: Connection, org_id: str | None) -> bool:
        return self.is_staff or self.role(conn, org_id) is not None

    def can_write_data(self, conn: Connection, org_id: str | None) -> bool:
        return self.is_staff or self.role(conn, org_id) in WRITE_ROLES

    def can_admin(self, conn: Connection, org_id: str | None) -> bool:
        return self.is_staff or self.role(conn, org_id) in ADMIN_ROLES

    def org_filter(self, column: Any) -> Any:
        """A WHERE clause limiting ``column`` (an org id) to the caller's orgs."""
        if self.staff_view:
            return sa.true()
        if self.user is None:
            return sa.false()
        return column.in_(
            sa.select(db.memberships.c.org_id).where(
                db.memberships.c.user_id == self.user.id, db.memberships.c.is_active.is_(True)
            )
        )

    def check_device(self, device_id: int | None) -> None:
        """A device token may only act for its own device (objects of no device are out of its reach)."""
        if self.device_scope is not None and self.device_scope != device_id:
            raise APIError(403, {"detail": "This device token may only act for its own device."})

    def authorize(self, conn: Connection, org_id: str | None, device_id: int | None, write: bool = False) -> None:
        """The one access check for an object of ``org_id`` belonging to ``device_id`` (None: no device)."""
        self.check_device(device_id)
        if not (self.can_write_data(conn, org_id) if write else self.can_read(conn, org_id)):
            raise forbidden()

    def visible(self, org_column: Any, device_column: Any) -> Any:
        """A WHERE clause: rows of the caller's orgs and, for a device token, of its own device only."""
        clause = self.org_filter(org_column)
        if self.device_scope is not None:
            clause = sa.and_(clause, device_column == self.device_scope)
        return clause


def _authenticate(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    staff_arg = flag(request, "staff")
    if not header.strip():
        from iotile_cloud.server.console.session import cookie_user

        return Principal(user=cookie_user(request), staff_arg=staff_arg)
    scheme, _, credential = header.strip().partition(" ")
    scheme = scheme.lower()
    credential = credential.strip()
    app = state(request)
    unauthorized = {"WWW-Authenticate": 'JWT realm="api"'}
    if not credential:
        raise APIError(401, {"detail": "Invalid Authorization header. No credentials provided."}, unauthorized)
    device_scope = None
    with app.read() as conn:
        fixed_owner = (app.fixed_tokens or {}).get(credential) if scheme == "jwt" else None
        if fixed_owner is not None:
            user = conn.execute(sa.select(db.users).where(db.users.c.email == fixed_owner)).first()
        elif scheme in ("jwt", "bearer", "a-jwt"):
            try:
                payload = app.jwt.decode(credential)
            except TokenError as error:
                raise APIError(401, {"detail": str(error)}, unauthorized) from None
            if scheme == "a-jwt" or payload.get("type") == "a-jwt":
                if payload.get("type") != "a-jwt" or not isinstance(payload.get("device"), int):
                    raise APIError(401, {"detail": "Error decoding signature."}, unauthorized)
                device_scope = int(payload["device"])
            user = conn.execute(sa.select(db.users).where(db.users.c.id == payload.get("user_id"))).first()
        elif scheme == "token":
            digest = token_digest(credential)
            user = conn.execute(sa.select(db.users).where(db.users.c.api_token == digest)).first()
            if user is None:
                raise APIError(401, {"detail": "Invalid token."}, unauthorized)
        else:
            raise APIError(401, {"detail": "Authentication credentials were not provided."}, unauthorized)
    if user is None:
        raise APIError(401, {"detail": "Invalid signature."}, unauthorized)
    if not user.is_active:
        raise APIError(401, {"detail": "User inactive or deleted."}, unauthorized)
    return Principal(user=user, device_scope=device_scope, staff_arg=staff_arg)


def device_or_user(request: Request) -> Principal:
    """Dependency: an authenticated user, or a device token (``a-jwt``).

    Only routes that scope every object they touch to ``principal.device_scope`` (through
    ``Principal.authorize``/``visible``/``check_device``) may declare it; every other route refuses
    device tokens, so a new route is closed to them by default.
    """
    principal = _authenticate(request)
    if not principal.is_authenticated:
        raise not_authenticated()
    return principal


def current_user(request: Request) -> Principal:
    """Dependency: an authenticated user acting as themselves (401 otherwise; device tokens get 403)."""
    principal = device_or_user(request)
    if principal.device_scope is not None:
        raise APIError(403, {"detail": "A device token cannot be used for this action."})
    return principal


user_only = current_user
