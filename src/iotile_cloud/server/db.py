"""Database schema and engine (SQLAlchemy 2 Core; SQLite or PostgreSQL).

Times are stored as integer microseconds since the Unix epoch (UTC): exact, portable across both
databases and cheap to compare and ship as columns. Schema changes go through Alembic
(``migrations/``); :func:`migrate` brings any older database up to date in place.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only aliases the rowid (and so autoincrements) for a plain INTEGER primary key.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Micros = sa.BigInteger

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(150), nullable=False, unique=True),
    sa.Column("slug", sa.String(150), nullable=False, unique=True),
    sa.Column("email", sa.String(254), nullable=False, unique=True),
    sa.Column("name", sa.String(255), nullable=False, server_default=""),
    sa.Column("tagline", sa.String(255), nullable=False, server_default=""),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("api_token", sa.String(64), nullable=False, unique=True),
    sa.Column("is_staff", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", Micros, nullable=False),
    sa.Column("updated_at", Micros, nullable=False),
)

orgs = sa.Table(
    "orgs",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("slug", sa.String(120), nullable=False, unique=True),
    sa.Column("about", sa.Text, nullable=False, server_default=""),
    sa.Column("created_on", Micros, nullable=False),
    sa.Column("created_by", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
)

memberships = sa.Table(
    "memberships",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("org_id", sa.String(36), sa.ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("role", sa.String(2), nullable=False),
    sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_on", Micros, nullable=False),
    sa.UniqueConstraint("org_id", "user_id", name="uq_memberships_org_user"),
)

projects = sa.Table(
    "projects",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("gid", sa.Integer, nullable=False, unique=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("org_id", sa.String(36), sa.ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("about", sa.Text, nullable=False, server_default=""),
    sa.Column("project_template", sa.String(100), nullable=False, server_default="default-template-v1-0-0"),
    sa.Column("created_on", Micros, nullable=False),
    sa.Column("created_by", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
)

devices = sa.Table(
    "devices",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("label", sa.String(100), nullable=False, server_default=""),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("external_id", sa.String(128), nullable=False, server_default=""),
    sa.Column("sg", sa.String(100), nullable=True),
    sa.Column("template", sa.String(100), nullable=False),
    sa.Column("org_id", sa.String(36), sa.ForeignKey("orgs.id", ondelete="SET NULL"), nullable=True),
    sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id", ondelete="SET NULL"), nullable=True),
    sa.Column("lat", sa.Float, nullable=True),
    sa.Column("lon", sa.Float, nullable=True),
    sa.Column("state", sa.String(2), nullable=False, server_default="N1"),
    sa.Column("created_on", Micros, nullable=False),
    sa.Column("claimed_by", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
    sa.Column("claimed_on", Micros, nullable=True),
    # Hex root key for user-key signed reports (see reports.md); set by `admin set-device-key`.
    sa.Column("report_key", sa.String(64), nullable=True),
)

variables = sa.Table(
    "variables",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    sa.Column("lid", sa.Integer, nullable=False),
    sa.Column("name", sa.String(60), nullable=False),
    sa.Column("var_type", sa.String(60), nullable=True),
    sa.Column("input_unit", sa.String(100), nullable=True),
    sa.Column("output_unit", sa.String(100), nullable=True),
    sa.Column("about", sa.Text, nullable=False, server_default=""),
    sa.Column("units", sa.String(20), nullable=False, server_default=""),
    sa.Column("raw_value_format", sa.String(2), nullable=False, server_default="<L"),
    sa.Column("multiplication_factor", sa.Integer, nullable=False, server_default="1"),
    sa.Column("division_factor", sa.Integer, nullable=False, server_default="1"),
    sa.Column("offset", sa.Float, nullable=False, server_default="0"),
    sa.Column("decimal_places", sa.Integer, nullable=False, server_default="2"),
    sa.Column("app_only", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("web_only", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_on", Micros, nullable=False),
    sa.Column("created_by", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
    sa.UniqueConstraint("project_id", "lid", name="uq_variables_project_lid"),
)

streams = sa.Table(
    "streams",
    metadata,
    # Integer key for the (large) data table; the public id is the uuid.
    sa.Column("pk", sa.Integer, primary_key=True),
    sa.Column("id", sa.String(36), nullable=False, unique=True),
    sa.Column("slug", sa.String(64), nullable=False, unique=True),
    sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    sa.Column("device_id", sa.BigInteger, nullable=True, index=True),
    sa.Column("variable_id", sa.String(36), sa.ForeignKey("variables.id", ondelete="CASCADE"), nullable=False),
    sa.Column("data_label", sa.String(60), nullable=False, server_default=""),
    sa.Column("var_type", sa.String(60), nullable=True),
    sa.Column("input_unit", sa.String(100), nullable=True),
    sa.Column("output_unit", sa.String(100), nullable=True),
    sa.Column("raw_value_format", sa.String(2), nullable=False, server_default="<L"),
    sa.Column("mdo_type", sa.String(1), nullable=False, server_default="S"),
    sa.Column("multiplication_factor", sa.Integer, nullable=True),
    sa.Column("division_factor", sa.Integer, nullable=True),
    sa.Column("offset", sa.Float, nullable=True),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_on", Micros, nullable=False),
    sa.Column("created_by", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
)

data = sa.Table(
    "data",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    sa.Column("stream_pk", sa.Integer, sa.ForeignKey("streams.pk", ondelete="CASCADE"), nullable=False),
    sa.Column("ts", Micros, nullable=False),
    sa.Column("device_timestamp", sa.BigInteger, nullable=True),
    sa.Column("int_value", sa.BigInteger, nullable=True),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("type", sa.String(3), nullable=False, server_default="Num"),
    sa.Column("streamer_local_id", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("dirty_ts", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("status", sa.String(3), nullable=False, server_default="unk"),
    sa.Index("ix_data_stream_ts", "stream_pk", "ts"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    sa.Column("stream_pk", sa.Integer, sa.ForeignKey("streams.pk", ondelete="CASCADE"), nullable=False),
    sa.Column("ts", Micros, nullable=False),
    sa.Column("device_timestamp", sa.BigInteger, nullable=True),
    sa.Column("streamer_local_id", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("dirty_ts", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("status", sa.String(3), nullable=False, server_default="unk"),
    sa.Column("extra_data", sa.Text, nullable=False, server_default="{}"),
    sa.Column("ext", sa.String(10), nullable=False, server_default="json"),
    sa.Column("data_path", sa.String(255), nullable=True),
    sa.Index("ix_events_stream_ts", "stream_pk", "ts"),
)

properties = sa.Table(
    "properties",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("target", sa.String(64), nullable=False, index=True),
    sa.Column("name", sa.String(40), nullable=False),
    sa.Column("type", sa.String(4), nullable=False),
    sa.Column("str_value", sa.Text, nullable=True),
    sa.Column("int_value", sa.BigInteger, nullable=True),
    sa.Column("bool_value", sa.Boolean, nullable=True),
    sa.Column("is_system", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_on", Micros, nullable=False),
    sa.UniqueConstraint("target", "name", name="uq_properties_target_name"),
)

fleets = sa.Table(
    "fleets",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(50), nullable=False),
    sa.Column("org_id", sa.String(36), sa.ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("is_network", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_on", Micros, nullable=False),
    sa.Column("created_by", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
)

fleet_members = sa.Table(
    "fleet_members",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("fleet_id", sa.Integer, sa.ForeignKey("fleets.id", ondelete="CASCADE"), nullable=False),
    sa.Column("device_id", sa.BigInteger, sa.ForeignKey("devices.id", ondelete="CASCADE"), nullable=False),
    sa.Column("always_on", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("is_access_point", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.UniqueConstraint("fleet_id", "device_id", name="uq_fleet_members_fleet_device"),
)

streamers = sa.Table(
    "streamers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("device_id", sa.BigInteger, sa.ForeignKey("devices.id", ondelete="CASCADE"), nullable=False),
    sa.Column("index", sa.Integer, nullable=False),
    sa.Column("selector", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_id", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("last_reboot_ts", Micros, nullable=True),
    sa.Column("created_on", Micros, nullable=False),
    sa.UniqueConstraint("device_id", "index", name="uq_streamers_device_index"),
)

streamer_reports = sa.Table(
    "streamer_reports",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("streamer_id", sa.Integer, sa.ForeignKey("streamers.id", ondelete="CASCADE"), nullable=False),
    sa.Column("original_first_id", sa.BigInteger, nullable=True),
    sa.Column("original_last_id", sa.BigInteger, nullable=True),
    sa.Column("actual_first_id", sa.BigInteger, nullable=True),
    sa.Column("actual_last_id", sa.BigInteger, nullable=True),
    sa.Column("sent_timestamp", Micros, nullable=False),
    sa.Column("device_sent_timestamp", sa.BigInteger, nullable=True),
    sa.Column("incremental_id", sa.BigInteger, nullable=True),
    sa.Column("time_epsilon", sa.Float, nullable=False, server_default="0"),
    sa.Column("created_on", Micros, nullable=False),
    sa.Column("created_by", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
)

# Failed password logins per key ("account:<login>" or "client:<address>") in a fixed window, shared by
# every server process through the database (see server/throttle.py).
login_failures = sa.Table(
    "login_failures",
    metadata,
    sa.Column("key", sa.String(300), primary_key=True),
    sa.Column("window_start", Micros, nullable=False),
    sa.Column("failures", sa.Integer, nullable=False),
)


def update_row(conn: Any, table: sa.Table, key: str, value: Any, changes: dict[str, Any]) -> Any:
    """Apply ``changes`` (if any) to the row whose ``key`` column is ``value``; return the fresh row."""
    column = table.c[key]
    if changes:
        conn.execute(sa.update(table).where(column == value).values(**changes))
    return conn.execute(sa.select(table).where(column == value)).one()


def new_id(result: Any) -> Any:
    """The primary key of the row an INSERT made."""
    key = result.inserted_primary_key
    assert key is not None
    return key[0]


# -- time helpers -------------------------------------------------------------------------------

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def now_us() -> int:
    return time.time_ns() // 1000


def to_us(value: dt.datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    delta = value - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(value: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=value)


def iso(value: int | None) -> str | None:
    """ISO 8601 with ``Z``; a fraction only when one is stored."""
    if value is None:
        return None
    stamp = from_us(value)
    if stamp.microsecond:
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def fetch_tuples(conn: Any, statement: Any) -> list[tuple[Any, ...]]:
    """Run a SELECT on the DB-API cursor and return plain tuples (no per-row wrapper objects)."""
    compiled = statement.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params: Any = compiled.params
    if compiled.positiontup:
        params = tuple(compiled.params[name] for name in compiled.positiontup)
    cursor = conn.connection.driver_connection.cursor()
    try:
        cursor.execute(str(compiled), params)
        return list(cursor.fetchall())
    finally:
        cursor.close()


# The column order of bulk data inserts (report ingest, list POSTs).
DATA_COLUMNS = (
    "stream_pk",
    "ts",
    "device_timestamp",
    "int_value",
    "value",
    "type",
    "streamer_local_id",
    "dirty_ts",
    "status",
)


def insert_rows(conn: Any, table: sa.Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Bulk insert plain tuples: ``executemany`` on SQLite, ``COPY`` on PostgreSQL.

    The one bulk-insert path: report ingest and list POSTs use it, and so does the raw baseline of
    ``benchmarks/ingest.py``.
    """
    if not rows:
        return
    names = ", ".join(f'"{name}"' for name in columns)
    cursor = conn.connection.driver_connection.cursor()
    try:
        if conn.dialect.name == "postgresql":
            # COPY is PostgreSQL's bulk path: several times faster than executemany.
            with cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            cursor.executemany(f"INSERT INTO {table.name} ({names}) VALUES ({', '.join('?' * len(columns))})", rows)
    finally:
        cursor.close()


# -- engine -------------------------------------------------------------------------------------


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` and use the psycopg 3 driver for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    kwargs: dict[str, Any] = {"future": True}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs["pool_size"] = 10
        kwargs["max_overflow"] = 10
        kwargs["pool_pre_ping"] = True
    engine = sa.create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; take control so every transaction
        # starts with an immediate write lock (no "database is locked" upgrade deadlocks).
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_begin(conn: Any) -> None:
    # Reads take no write lock (WAL lets them run beside a writer); writes lock up front.
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("readonly") else "BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB: bulk inserts keep the data index in memory
    cursor.execute("PRAGMA wal_autocheckpoint=4000")  # fewer, larger checkpoints under bulk ingest
    cursor.close()


def migrate(engine: Engine) -> None:
    """Create or upgrade the schema to the newest Alembic revision."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
