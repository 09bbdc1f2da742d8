"""Sensor graphs, device templates and variable types: the built-in catalog plus database entries.

A registered sensor graph or template (``catalog_entries``, written by the test fixtures'
``quick_add_sg``/``quick_add_dt``) replaces the built-in entry of the same slug or adds a new one, so
the registry can grow. Registered variable types (a fixture's ``variable_types/*.json``) are served
in place of the built-in ones.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from iotile_cloud.server import db
from iotile_cloud.server.catalog import CREATED_ON, DEVICE_TEMPLATES, SENSOR_GRAPHS, vartypes

KINDS = ("sg", "dt", "vt")


def _version(parts: tuple[int, ...]) -> str:
    return "v" + ".".join(str(p) for p in parts)


def new_sg(slug: str, index: int, name: str) -> dict[str, Any]:
    """A registered sensor graph's record before its changes: the original's shape, no templates."""
    major, minor, patch = _slug_version(slug)
    return {
        "id": index,
        "name": name,
        "slug": slug,
        "org": "arch-systems",
        "project_template": "default-template-v1-0-0",
        "variable_templates": [],
        "display_widget_templates": [],
        "ui_extra": {},
        "report_processing_engine_ver": 0,
        "major_version": major,
        "minor_version": minor,
        "patch_version": patch,
        "version": _version((major, minor, patch)),
        "app_tag": 0,
        "app_version": "v0.0",
        "created_on": CREATED_ON,
    }


def _slug_version(slug: str) -> tuple[int, int, int]:
    """``water-meter-v1-1-2`` -> (1, 1, 2); (0, 0, 0) for a slug without a version."""
    tail = slug.rsplit("-v", 1)[-1].split("-")
    if len(tail) == 3 and all(part.isdigit() for part in tail):
        return int(tail[0]), int(tail[1]), int(tail[2])
    return 0, 0, 0


def builtin_dt(slug: str, index: int, item: dict[str, Any]) -> dict[str, Any]:
    major, minor, patch = item.get("version", (0, 0, 0))
    os_major, os_minor = item.get("os_version", (0, 0))
    return {
        "id": item.get("id", index),
        "external_sku": item["external_sku"],
        "internal_sku": item.get("internal_sku", slug),
        "family": item["family"],
        "slug": slug,
        "org": "arch-systems",
        "version": _version((major, minor, patch)),
        "os_tag": item.get("os_tag", 0),
        "os_version": _version((os_major, os_minor)),
        "hw_tag": item.get("hw_tag", 0),
        "hw_version": _version((item.get("hw_version", 0),)),
        "slots": item.get("slots", []),
        "created_on": CREATED_ON,
        "released_on": item.get("released_on", "2018-01-01"),
    }


def _builtins(kind: str) -> dict[str, dict[str, Any]]:
    if kind == "vt":
        return dict(vartypes())
    if kind == "sg":
        return dict(SENSOR_GRAPHS)
    products = _product_templates()
    ours = {s: builtin_dt(s, len(products) + n, v) for n, (s, v) in enumerate(DEVICE_TEMPLATES.items(), start=1)}
    return {**products, **ours}


@functools.cache
def _product_templates() -> dict[str, dict[str, Any]]:
    """The original server's product templates (its public product data), active ones only."""
    raw = json.loads((Path(__file__).parent / "device_templates.json").read_text())
    return {t["slug"]: {k: v for k, v in t.items() if k != "active"} for t in raw if t["active"]}


def entries(conn: Connection, kind: str) -> list[dict[str, Any]]:
    """Every entry of ``kind``: built-ins (or their replacements), then registered ones."""
    rows = conn.execute(
        sa.select(db.catalog_entries.c.slug, db.catalog_entries.c.body)
        .where(db.catalog_entries.c.kind == kind)
        .order_by(db.catalog_entries.c.slug)
    ).all()
    merged = {} if kind == "vt" and rows else _builtins(kind)
    for slug, body in rows:
        merged[slug] = json.loads(body)
    if kind == "sg":
        # The original's ordering of sensor graphs: name, then version.
        return sorted(
            merged.values(),
            key=lambda sg: (sg["name"].casefold(), sg["major_version"], sg["minor_version"], sg["patch_version"]),
        )
    return list(merged.values())


def entry(conn: Connection, kind: str, slug: str) -> dict[str, Any] | None:
    row = conn.execute(
        sa.select(db.catalog_entries.c.body).where(db.catalog_entries.c.kind == kind, db.catalog_entries.c.slug == slug)
    ).first()
    if row is not None:
        loaded: dict[str, Any] = json.loads(row.body)
        return loaded
    if (
        kind == "vt"
        and conn.execute(sa.select(db.catalog_entries.c.slug).where(db.catalog_entries.c.kind == kind).limit(1)).first()
    ):
        return None  # registered variable types replace the built-in ones
    return _builtins(kind).get(slug)


def exists(conn: Connection, kind: str, slug: str) -> bool:
    return entry(conn, kind, slug) is not None


def register(conn: Connection, kind: str, slug: str, **changes: Any) -> dict[str, Any]:
    """Add (or update) an entry: the existing or built-in fields, with ``changes`` applied."""
    body = entry(conn, kind, slug)
    if body is None:
        count = len(entries(conn, kind))
        name = slug.rsplit("-v", 1)[0].replace("-", " ").title()
        if kind == "sg":
            body = new_sg(slug, count + 1, name)
        else:
            body = builtin_dt(slug, count + 1, {"external_sku": name, "family": name})
    return register_body(conn, kind, slug, {**body, **changes})


def register_body(conn: Connection, kind: str, slug: str, body: dict[str, Any]) -> dict[str, Any]:
    """Store ``body`` as the entry ``slug`` of ``kind``."""
    table = db.catalog_entries
    conn.execute(sa.delete(table).where(table.c.kind == kind, table.c.slug == slug))
    conn.execute(sa.insert(table).values(kind=kind, slug=slug, body=json.dumps(body)))
    return body
