"""Database schema and engine (SQLAlchemy 2 Core; SQLite or PostgreSQL).

Times are stored as integer microseconds since the Unix epoch (UTC): exact, portable across both
databases and cheap to compare and ship as columns. Schema changes go through Alembic
(``migrations/``); :func:`migrate` brings any older database up to date in place.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

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
    # The local server's owner may register devices without staff steps (there is no factory here).
    sa.Column("is_owner", sa.Boolean, nullable=False, server_default=sa.false()),
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
    # A row made only to key data loaded for a stream that has no stream record (mock fixtures): it
    # holds data and counts in /device/<slug>/extra/, but /stream/ does not list it.
    sa.Column("implicit", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_on", Micros, nullable=False),
    sa.Column("created_by", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
)

# Stream data: one row per segment, a compressed columnar batch of one stream's points
# (server/points.py holds the codec; docs/storage.md explains the layout).
segments = sa.Table(
    "segments",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    sa.Column("stream_pk", sa.Integer, sa.ForeignKey("streams.pk", ondelete="CASCADE"), nullable=False),
    sa.Column("ts_min", Micros, nullable=False),
    sa.Column("ts_max", Micros, nullable=False),
    sa.Column("id_min", sa.BigInteger, nullable=False),
    sa.Column("id_max", sa.BigInteger, nullable=False),
    sa.Column("sid_min", sa.BigInteger, nullable=False),
    sa.Column("sid_max", sa.BigInteger, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    # Before the payload: SQLite reads a row's columns in order (docs/storage.md).
    sa.Column("rollup", sa.LargeBinary, nullable=True),  # per-bucket aggregates (rollups.py); NULL: not made yet
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Index("ix_segments_stream_ts", "stream_pk", "ts_min"),
    sa.Index("ix_segments_stream_ts_max", "stream_pk", "ts_max"),
    sa.Index("ix_segments_id", "id_min", "id_max"),
)

# Segments below this many points are merged by background compaction (points.compact), which
# finds them through this partial index: it holds only the few small segments not yet merged.
SMALL_SEGMENT = 1_024
sa.Index(
    "ix_segments_small",
    segments.c.stream_pk,
    sqlite_where=segments.c.count < SMALL_SEGMENT,
    postgresql_where=segments.c.count < SMALL_SEGMENT,
)

# The next point id: each batch takes a consecutive range (one row).
point_ids = sa.Table(
    "point_ids",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("next_id", sa.BigInteger, nullable=False),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    sa.Column("stream_pk", sa.Integer, sa.ForeignKey("streams.pk", ondelete="CASCADE"), nullable=False),
    sa.Column("ts", Micros, nullable=True),  # null where a loaded fixture event has none
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
    # A streamer's reports, newest first: its report list, and ingest's look at the previous report.
    sa.Index("ix_streamer_reports_streamer_created", "streamer_id", "created_on"),
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


# -- registries the mock cloud fixtures grow, OTA, data blocks, generated reports ------------------

catalog_entries = sa.Table(
    "catalog_entries",
    metadata,
    # Sensor graphs (kind "sg") and device templates ("dt") registered beside the built-in catalog;
    # a row with a built-in slug replaces that entry.
    sa.Column("kind", sa.String(2), primary_key=True),
    sa.Column("slug", sa.String(100), primary_key=True),
    sa.Column("body", sa.Text, nullable=False),
)

ota_scripts = sa.Table(
    "ota_scripts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(50), nullable=False),
    sa.Column("org_id", sa.String(36), sa.ForeignKey("orgs.id", ondelete="CASCADE"), nullable=True),
    sa.Column("url", sa.String(255), nullable=False, server_default=""),
    sa.Column("key", sa.String(255), nullable=False, server_default=""),
    sa.Column("major_version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("minor_version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("patch_version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("released", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_on", Micros, nullable=False),
)

ota_deployments = sa.Table(
    "ota_deployments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("script_id", sa.Integer, sa.ForeignKey("ota_scripts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("org_id", sa.String(36), sa.ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("fleet_id", sa.Integer, sa.ForeignKey("fleets.id", ondelete="CASCADE"), nullable=True),
    # Set only by the test helpers, which (as the original fake) make one request per device.
    sa.Column("device_id", sa.BigInteger, sa.ForeignKey("devices.id", ondelete="CASCADE"), nullable=True),
    sa.Column("selection_criteria", sa.Text, nullable=False, server_default="[]"),
    sa.Column("released_on", Micros, nullable=True),
    sa.Column("completed_on", Micros, nullable=True),
    sa.Column("created_on", Micros, nullable=False),
)

ota_actions = sa.Table(
    "ota_actions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("deployment_id", sa.Integer, sa.ForeignKey("ota_deployments.id", ondelete="CASCADE"), nullable=False),
    sa.Column("device_id", sa.BigInteger, sa.ForeignKey("devices.id", ondelete="CASCADE"), nullable=False),
    sa.Column("created_on", Micros, nullable=False),
    sa.Column("last_attempt_on", Micros, nullable=True),
    sa.Column("attempt_successful", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("device_confirmation", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("log", sa.Text, nullable=True),
)

device_versions = sa.Table(
    "device_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("device_id", sa.BigInteger, sa.ForeignKey("devices.id", ondelete="CASCADE"), nullable=False),
    sa.Column("type", sa.String(3), nullable=False),
    sa.Column("tag", sa.Integer, nullable=False),
    sa.Column("major_version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("minor_version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("streamer_local_id", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("updated_ts", Micros, nullable=True),
    sa.Column("created_on", Micros, nullable=False),
)

datablocks = sa.Table(
    "datablocks",
    metadata,
    sa.Column("slug", sa.String(32), primary_key=True),
    sa.Column("id", sa.BigInteger, nullable=False),
    sa.Column("device_id", sa.BigInteger, nullable=False, index=True),
    sa.Column("block", sa.Integer, nullable=False),
    sa.Column("title", sa.String(100), nullable=False, server_default=""),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("org_id", sa.String(36), sa.ForeignKey("orgs.id", ondelete="CASCADE"), nullable=True),
    sa.Column("sg", sa.String(100), nullable=True),
    sa.Column("created_on", Micros, nullable=False),
    sa.Column("created_by", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
)

generated_reports = sa.Table(
    "generated_reports",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("label", sa.String(120), nullable=False),
    sa.Column("org_id", sa.String(36), sa.ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("source_ref", sa.String(50), nullable=False, server_default=""),
    sa.Column("status", sa.String(3), nullable=False, server_default="GS"),
    sa.Column("key", sa.String(255), nullable=True),
    sa.Column("created_on", Micros, nullable=False),
    sa.Column("created_by", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
)


# Numbers every worker adds to (see counters.py): the request count of the test helper.
counters = sa.Table(
    "counters",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False, server_default="0"),
)


# Console sign-ins (server/console/): the cookie carries a random token, the table only its SHA-256,
# so a leaked database does not hand out live sessions. Signing out deletes the row.
console_sessions = sa.Table(
    "console_sessions",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("created_at", Micros, nullable=False),
    sa.Column("expires_at", Micros, nullable=False),
)


# -- notes, locations, aliases, templates, configuration, keys, invitations (the rest of the API) --

notes = sa.Table(
    "notes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("target", sa.String(64), nullable=False, index=True),
    sa.Column("ts", Micros, nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    # 'ui' user notes; 'si' system notes (configuration changes, resets)
    sa.Column("type", sa.String(2), nullable=False, server_default="ui"),
    sa.Column("created_on", Micros, nullable=False),
    sa.Column("created_by", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    # The note's attached file (the original's S3File), kept in <data dir>/notes/<note id>/<uuid>/.
    # attachment_by has no foreign key so the column can be added in place on SQLite; it only names
    # the uploader in the answer.
    sa.Column("attachment_id", sa.String(36), nullable=True),
    sa.Column("attachment_title", sa.String(100), nullable=True),
    sa.Column("attachment_on", Micros, nullable=True),
    sa.Column("attachment_by", sa.Integer, nullable=True),
)

device_locations = sa.Table(
    "device_locations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("target", sa.String(64), nullable=False, index=True),
    sa.Column("ts", Micros, nullable=False),
    sa.Column("lat", sa.Float, nullable=False),
    sa.Column("lon", sa.Float, nullable=False),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
)

stream_aliases = sa.Table(
    "stream_aliases",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(50), nullable=False),
    sa.Column("org_id", sa.String(36), sa.ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("created_on", Micros, nullable=False),
    sa.Column("created_by", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
)

stream_alias_taps = sa.Table(
    "stream_alias_taps",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("alias_id", sa.Integer, sa.ForeignKey("stream_aliases.id", ondelete="CASCADE"), nullable=False),
    sa.Column("ts", Micros, nullable=False),
    sa.Column("stream_pk", sa.Integer, sa.ForeignKey("streams.pk", ondelete="CASCADE"), nullable=False),
    sa.Column("created_on", Micros, nullable=False),
    sa.Column("created_by", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
)

property_templates = sa.Table(
    "property_templates",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("org_id", sa.String(36), sa.ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(48), nullable=False),
    sa.Column("type", sa.String(4), nullable=False, server_default="str"),
    sa.Column("default", sa.String(256), nullable=False, server_default=""),
    sa.Column("extra", sa.Text, nullable=True),  # JSON
    sa.Column("created_on", Micros, nullable=False),
    sa.Column("created_by", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.UniqueConstraint("org_id", "name", name="uq_property_templates_org_name"),
)

property_template_enums = sa.Table(
    "property_template_enums",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("template_id", sa.Integer, sa.ForeignKey("property_templates.id", ondelete="CASCADE"), nullable=False),
    sa.Column("value", sa.String(64), nullable=False),
    sa.Column("created_on", Micros, nullable=False),
    sa.Column("created_by", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.UniqueConstraint("template_id", "value", name="uq_property_template_enums_template_value"),
)

config_names = sa.Table(
    "config_names",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("tags", sa.Text, nullable=False, server_default="[]"),  # JSON list
    sa.Column("created_on", Micros, nullable=False),
    sa.Column("created_by", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
)

config_attrs = sa.Table(
    "config_attrs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("target", sa.String(64), nullable=False),
    sa.Column("name_id", sa.Integer, sa.ForeignKey("config_names.id", ondelete="CASCADE"), nullable=False),
    sa.Column("data", sa.Text, nullable=True),  # JSON
    sa.Column("updated_on", Micros, nullable=False),
    sa.Column("updated_by", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.UniqueConstraint("target", "name_id", name="uq_config_attrs_target_name"),
)

device_keys = sa.Table(
    "device_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("slug", sa.String(24), nullable=False),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("secret", sa.Text, nullable=False),
    sa.Column("downloadable", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_on", Micros, nullable=False),
    sa.Column("created_by", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.UniqueConstraint("slug", "type", name="uq_device_keys_slug_type"),
)

# Health settings and the data mask of a device (one row, made on first use).
device_status = sa.Table(
    "device_status",
    metadata,
    sa.Column("device_id", sa.BigInteger, sa.ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("health_check_enabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("health_check_period", sa.Integer, nullable=False, server_default="7200"),
    sa.Column("notification_recipients", sa.Text, nullable=False, server_default="[]"),  # JSON list
    sa.Column("mask_start", Micros, nullable=True),
    sa.Column("mask_end", Micros, nullable=True),
)

invitations = sa.Table(
    "invitations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("org_id", sa.String(36), sa.ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("email", sa.String(254), nullable=False),
    sa.Column("role", sa.String(2), nullable=False),
    sa.Column("token", sa.String(64), nullable=False, unique=True),
    sa.Column("created_on", Micros, nullable=False),
    sa.Column("created_by", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("accepted_on", Micros, nullable=True),
    sa.UniqueConstraint("org_id", "email", name="uq_invitations_org_email"),
)


def update_row(conn: Any, table: sa.Table, key: str, value: Any, changes: dict[str, Any]) -> Any:
    """Apply ``changes`` (if any) to the row whose ``key`` column is ``value``; return the fresh row."""
    column = table.c[key]
    if changes:
        conn.execute(sa.update(table).where(column == value).values(**changes))
    return conn.execute(sa.select(table).where(column == value)).one()


def dialect_insert(conn: Any) -> Any:
    """The dialect's ``insert`` construct (both have ``on_conflict_do_nothing/update``)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction, one snapshot for all its statements. SQLite: a deferred ``BEGIN``
    (no write lock, even while a long answer streams); PostgreSQL: REPEATABLE READ, so a selection
    planned from segment metadata still finds those segments when a compaction commits meanwhile."""
    options: dict[str, Any] = {"readonly": True}
    if engine.dialect.name == "postgresql":
        options["isolation_level"] = "REPEATABLE READ"
    with engine.connect().execution_options(**options) as conn, conn.begin():
        yield conn


def serialize_on(conn: Any, key: str) -> None:
    """Hold a lock named ``key`` until this transaction ends, across every worker.

    PostgreSQL: a transaction-scoped advisory lock. SQLite needs nothing: every write transaction
    starts with ``BEGIN IMMEDIATE`` and so already runs alone.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})


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
    """Create or upgrade the schema to the newest Alembic revision.

    Safe to call from several processes at once: the upgrade runs under a database-wide lock
    (SQLite: the ``BEGIN IMMEDIATE`` write lock; PostgreSQL: an advisory lock), so the first caller
    migrates and the others then find the schema at head.
    """
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as connection:
        serialize_on(connection, "iotile-cloud:migrate")
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
