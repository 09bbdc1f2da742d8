"""Rows to the API's JSON shapes (the field sets recorded from the original server)."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from iotile_cloud.server import catalog, db
from iotile_cloud.server.db import iso
from iotile_cloud.utils.gid import int2did, int2fid, int2pid

_GRAVATAR = "https://secure.gravatar.com/avatar/{}?d=identicon&s={}"


def avatar(key: str, sizes: dict[str, int]) -> dict[str, str]:
    digest = hashlib.md5(key.strip().lower().encode(), usedforsecurity=False).hexdigest()
    return {name: _GRAVATAR.format(digest, size) for name, size in sizes.items()}


def account(user: Row[Any]) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "username": user.username,
        "created_at": iso(user.created_at),
        "updated_at": iso(user.updated_at),
        "name": user.name,
        "tagline": user.tagline,
        "avatar": avatar(user.email, {"tiny": 28, "thumbnail": 80, "medium": 170}),
        "slug": user.slug,
        "is_staff": bool(user.is_staff),
    }


def user_details(user: Row[Any]) -> dict[str, Any]:
    return {
        "email": user.email,
        "username": user.username,
        "slug": user.slug,
        "name": user.name,
        "tagline": user.tagline,
        "avatar": avatar(user.email, {"tiny": 28, "thumbnail": 80}),
    }


class Lookup:
    """Small per-request caches for the foreign keys every serializer renders as slugs."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._users: dict[int, Row[Any] | None] = {}
        self._orgs: dict[str, Row[Any] | None] = {}
        self._projects: dict[str, Row[Any] | None] = {}
        self._variables: dict[str, Row[Any] | None] = {}

    def user(self, user_id: int | None) -> Row[Any] | None:
        if user_id is None:
            return None
        if user_id not in self._users:
            self._users[user_id] = self.conn.execute(sa.select(db.users).where(db.users.c.id == user_id)).first()
        return self._users[user_id]

    def username(self, user_id: int | None) -> str | None:
        user = self.user(user_id)
        return user.slug if user is not None else None

    def org(self, org_id: str | None) -> Row[Any] | None:
        if org_id is None:
            return None
        if org_id not in self._orgs:
            self._orgs[org_id] = self.conn.execute(sa.select(db.orgs).where(db.orgs.c.id == org_id)).first()
        return self._orgs[org_id]

    def org_slug(self, org_id: str | None) -> str | None:
        org = self.org(org_id)
        return org.slug if org is not None else None

    def project(self, project_id: str | None) -> Row[Any] | None:
        if project_id is None:
            return None
        if project_id not in self._projects:
            self._projects[project_id] = self.conn.execute(
                sa.select(db.projects).where(db.projects.c.id == project_id)
            ).first()
        return self._projects[project_id]

    def variable(self, variable_id: str) -> Row[Any] | None:
        if variable_id not in self._variables:
            self._variables[variable_id] = self.conn.execute(
                sa.select(db.variables).where(db.variables.c.id == variable_id)
            ).first()
        return self._variables[variable_id]


def org(row: Row[Any], lk: Lookup) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "slug": row.slug,
        "ot": None,
        "about": row.about,
        "created_on": iso(row.created_on),
        "created_by": lk.username(row.created_by),
        "avatar": avatar(row.slug, {"tiny": 28, "thumbnail": 100}),
        "domain_names": [],
    }


def membership(row: Row[Any], lk: Lookup) -> dict[str, Any]:
    user = lk.user(row.user_id)
    assert user is not None
    from iotile_cloud.server.context import PERMISSIONS, ROLE_NAMES

    return {
        "user": user.slug,
        "user_details": user_details(user),
        "created_on": iso(row.created_on),
        "is_active": bool(row.is_active),
        "is_org_admin": row.role in ("a0", "a1"),
        "permissions": dict(PERMISSIONS[row.role]),
        "role": row.role,
        "role_name": f"{row.role} - {ROLE_NAMES[row.role]}",
    }


def project(row: Row[Any], lk: Lookup) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "slug": f"p--{int2pid(row.gid)}",
        "gid": int2pid(row.gid),
        "org": lk.org_slug(row.org_id),
        "about": row.about,
        "project_template": row.project_template,
        "created_on": iso(row.created_on),
        "created_by": lk.username(row.created_by),
    }


def decimal_text(value: float | None) -> str | None:
    """A coordinate as the original's DecimalField(max_digits=12, decimal_places=6) renders it: a string."""
    return None if value is None else f"{value:.6f}"


def device(row: Row[Any], lk: Lookup) -> dict[str, Any]:
    gid = int2did(row.id)
    return {
        "id": row.id,
        "slug": f"d--{gid}",
        "gid": gid,
        "label": row.label,
        "active": bool(row.active),
        "external_id": row.external_id,
        "sg": row.sg,
        "template": row.template,
        "org": lk.org_slug(row.org_id),
        "project": row.project_id,
        "lat": decimal_text(row.lat),
        "lon": decimal_text(row.lon),
        "state": row.state,
        "busy": False,
        "created_on": iso(row.created_on),
        "claimed_by": lk.username(row.claimed_by),
        "claimed_on": iso(row.claimed_on),
    }


def unit_dict(slug: str | None, output: bool) -> dict[str, Any] | None:
    unit = catalog.output_unit(slug) if output else catalog.input_unit(slug)
    return unit.as_dict() if unit else None


def variable(row: Row[Any], lk: Lookup) -> dict[str, Any]:
    proj = lk.project(row.project_id)
    assert proj is not None
    return {
        "id": row.id,
        "name": row.name,
        "lid": row.lid,
        "var_type": row.var_type,
        "input_unit": unit_dict(row.input_unit, False),
        "output_unit": unit_dict(row.output_unit, True),
        "derived_variable": None,
        "project": row.project_id,
        "org": lk.org_slug(proj.org_id),
        "about": row.about,
        "created_on": iso(row.created_on),
        "raw_value_format": row.raw_value_format,
        "units": row.units,
        "multiplication_factor": row.multiplication_factor,
        "division_factor": row.division_factor,
        "offset": row.offset,
        "decimal_places": row.decimal_places,
        "mdo_label": "",
        "web_only": bool(row.web_only),
        "app_only": bool(row.app_only),
        "slug": f"v--{int2pid(proj.gid)}--{row.lid:04x}",
    }


def stream_data_type(var_type: str | None) -> str:
    """The variable type's data type ('D0' data, 'E0' events); '00' (unknown) without one, as the original."""
    item = catalog.vartype(var_type) if var_type else None
    return str(item.get("stream_data_type") or "00") if item else "00"


def stream(row: Row[Any], lk: Lookup) -> dict[str, Any]:
    proj = lk.project(row.project_id)
    var = lk.variable(row.variable_id)
    assert proj is not None and var is not None
    return {
        "id": row.id,
        "project_id": row.project_id,
        "project": f"p--{int2pid(proj.gid)}",
        "device": f"d--{int2did(row.device_id)}" if row.device_id else None,
        "block": None,
        "data_label": row.data_label,
        "variable": f"v--{int2pid(proj.gid)}--{var.lid:04x}",
        "var_type": row.var_type,
        "data_type": stream_data_type(row.var_type),
        "var_name": var.name,
        "var_lid": var.lid,
        "input_unit": unit_dict(row.input_unit, False),
        "output_unit": unit_dict(row.output_unit, True),
        "derived_stream": None,
        "raw_value_format": row.raw_value_format,
        "mdo_type": row.mdo_type,
        "mdo_label": "",
        "multiplication_factor": row.multiplication_factor,
        "division_factor": row.division_factor,
        "offset": row.offset,
        "org": lk.org_slug(proj.org_id),
        "created_on": iso(row.created_on),
        "slug": row.slug,
        "enabled": bool(row.enabled),
    }


def stream_created(row: Row[Any], lk: Lookup) -> dict[str, Any]:
    """The shorter body the original answers a stream POST with."""
    full = stream(row, lk)
    keys = (
        "id",
        "project",
        "device",
        "data_label",
        "variable",
        "var_type",
        "data_type",
        "multiplication_factor",
        "division_factor",
        "offset",
        "org",
        "created_on",
        "slug",
    )
    out = {k: full[k] for k in keys}
    out["created_by"] = row.created_by
    return out


def fleet(row: Row[Any], lk: Lookup) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "slug": f"g--{int2fid(row.id)}",
        "org": lk.org_slug(row.org_id),
        "description": row.description,
        "created_on": iso(row.created_on),
        "created_by": lk.username(row.created_by),
        "is_network": bool(row.is_network),
    }


def prop(row: Row[Any], with_target: bool = True) -> dict[str, Any]:
    value: Any = {"int": row.int_value, "bool": row.bool_value}.get(row.type, row.str_value)
    if row.type == "bool":
        value = bool(value)
    out = {"id": row.id, "name": row.name, "value": value, "type": row.type, "is_system": bool(row.is_system)}
    if with_target:
        out["target"] = row.target
    return out


def streamer(row: Row[Any]) -> dict[str, Any]:
    did = int2did(row.device_id)
    return {
        "id": row.id,
        "slug": f"t--{did}--{row.index:04x}",
        "device": f"d--{did}",
        "index": row.index,
        "last_id": row.last_id,
        "last_reboot_ts": iso(row.last_reboot_ts),
        "is_system": row.selector == 0x5FFF,
        "selector": row.selector,
    }


def streamer_report(row: Row[Any], streamer_slug: str, lk: Lookup) -> dict[str, Any]:
    return {
        "id": row.id,
        "original_first_id": row.original_first_id,
        "original_last_id": row.original_last_id,
        "actual_first_id": row.actual_first_id,
        "actual_last_id": row.actual_last_id,
        "streamer": streamer_slug,
        "sent_timestamp": iso(row.sent_timestamp),
        "device_sent_timestamp": row.device_sent_timestamp,
        "incremental_id": row.incremental_id,
        "time_epsilon": row.time_epsilon,
        "created_on": iso(row.created_on),
        "created_by": lk.username(row.created_by),
    }


# The original's event bucket name; the local server keeps event files in its data folder.
EVENT_BUCKET = "iotile-cloud-stream-event-data"


def event(row: Row[Any], info: dict[str, str]) -> dict[str, Any]:
    return {
        "id": row.id,
        **info,
        "s3bucket": EVENT_BUCKET,
        "s3key": row.data_path,
        "ext": row.ext,
        "has_raw_data": row.data_path is not None,
        "device_timestamp": row.device_timestamp,
        "timestamp": iso(row.ts),
        "streamer_local_id": row.streamer_local_id,
        "dirty_ts": bool(row.dirty_ts),
        "status": row.status,
        "extra_data": orjson.loads(row.extra_data or "{}"),
    }
