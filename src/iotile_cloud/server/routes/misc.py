"""Open routes: server info for gateways' clock checks."""

from __future__ import annotations

import datetime as dt
import functools

from fastapi import APIRouter, Request
from fastapi.responses import Response

from iotile_cloud import __version__
from iotile_cloud.server.context import state
from iotile_cloud.server.http import JSON

router = APIRouter()


@router.get("/server/", summary="Server time and identity (open; gateways check their clocks with it)")
def server_info(request: Request) -> Response:
    now = dt.datetime.now(dt.timezone.utc)
    return JSON(
        {
            "now": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "stage": state(request).stage,
            "name": "iotile-cloud local server",
            "company": "iotile-cloud",
            "version": __version__,
        }
    )


# The original's router prefixes, in its order; the root lists those this server also serves.
API_ROOT_PREFIXES = [
    "account",
    "org",
    "fleet",
    "project",
    "device",
    "datablock",
    "variable",
    "stream",
    "data",
    "event/upload",
    "event",
    "note",
    "location",
    "property",
    "filter",
    "alias",
    "tap",
    "report/generated",
    "streamer/report",
    "streamer",
    "component",
    "dt",
    "ot",
    "pt",
    "sg",
    "vartemplate",
    "widget",
    "vartype",
    "config/name",
    "config/attr",
    "propertytemplate",
    "key",
    "ota/file",
    "ota/script",
    "ota/request",
    "ota/action",
    "ota/version",
    "production/device",
    "shipping/trip",
]


@functools.cache
def served_prefixes() -> list[str]:
    from iotile_cloud.server.app import routers  # at call time: app imports this module

    paths = {getattr(route, "path", "") for module_router in routers() for route in module_router.routes}
    return [prefix for prefix in API_ROOT_PREFIXES if any(path.startswith(f"/{prefix}/") for path in paths)]


@router.get("/", summary="The API root: each resource's name and URL (open)")
def api_root(request: Request) -> Response:
    base = str(request.url_for("api_root"))
    return JSON({prefix: f"{base}{prefix}/" for prefix in served_prefixes()})
