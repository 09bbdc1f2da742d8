"""Targets: the objects notes, locations, properties and configuration attributes hang on.

A target is named by a slug: ``d--`` device, ``p--`` project, ``b--`` data block (its record, else its device),
``s--`` stream, ``^org-slug`` organisation, ``@username`` user.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from iotile_cloud.server import db
from iotile_cloud.server.context import Principal
from iotile_cloud.utils.gid import IOTileBlockSlug, IOTileDeviceSlug, IOTileProjectSlug, IOTileStreamSlug


@dataclass(frozen=True)
class Target:
    kind: str  # device, project, block, stream, org, user
    slug: str  # normalised
    org_id: str | None
    user_id: int | None = None
    device_id: int | None = None


def normal_slug(text: str) -> str:
    """The canonical spelling of a ``d--``/``p--``/``b--``/``s--`` slug (other text unchanged)."""
    kinds: dict[str, Any] = {
        "d--": IOTileDeviceSlug,
        "p--": IOTileProjectSlug,
        "b--": IOTileBlockSlug,
        "s--": IOTileStreamSlug,
    }
    kind = kinds.get(text[:3].lower())
    if kind is not None:
        try:
            return str(kind(text))
        except ValueError:
            pass
    return text


def resolve(conn: Connection, text: str) -> Target | None:
    """The object a target slug names, or None when it names nothing."""
    slug = normal_slug(text.strip())
    head = slug[:3]
    try:
        if head == "b--":
            # A data block is its own record (the original's DataBlock), in its own org.
            block = conn.execute(
                sa.select(db.datablocks.c.org_id, db.datablocks.c.device_id).where(db.datablocks.c.slug == slug)
            ).first()
            if block is not None:
                return Target("block", slug, block.org_id, device_id=block.device_id)
        if head == "d--" or head == "b--":
            number = IOTileDeviceSlug(slug).get_id() if head == "d--" else IOTileBlockSlug(slug).get_id()
            row = conn.execute(sa.select(db.devices.c.id, db.devices.c.org_id).where(db.devices.c.id == number)).first()
            if row is None:
                return None
            return Target("device" if head == "d--" else "block", slug, row.org_id, device_id=row.id)
        if head == "p--":
            gid = IOTileProjectSlug(slug).get_id()
            row = conn.execute(sa.select(db.projects.c.org_id).where(db.projects.c.gid == gid)).first()
            return Target("project", slug, row.org_id) if row is not None else None
        if head == "s--":
            row = conn.execute(
                sa.select(db.streams.c.device_id, db.projects.c.org_id)
                .join(db.projects, db.projects.c.id == db.streams.c.project_id)
                .where(db.streams.c.slug == slug)
            ).first()
            return Target("stream", slug, row.org_id, device_id=row.device_id) if row is not None else None
    except ValueError:
        return None
    if slug.startswith("^") and len(slug) > 1:
        row = conn.execute(sa.select(db.orgs.c.id).where(db.orgs.c.slug == slug[1:])).first()
        return Target("org", slug, row.id) if row is not None else None
    if slug.startswith("@") and len(slug) > 1:
        row = conn.execute(sa.select(db.users.c.id).where(db.users.c.slug == slug[1:].lower())).first()
        return Target("user", slug, None, user_id=row.id) if row is not None else None
    return None


def can_access(conn: Connection, principal: Principal, target: Target, write: bool = False) -> bool:
    """The original's ``target.has_access(user)``: staff, members of the target's org, a user themself.

    ``write`` asks for a role that may change data (owner, admin or member; not read-only).
    """
    if principal.device_scope is not None and target.device_id != principal.device_scope:
        return False
    if target.kind == "user":
        return principal.is_staff or target.user_id == principal.user_id
    if write:
        return principal.can_write_data(conn, target.org_id)
    return principal.can_read(conn, target.org_id)
