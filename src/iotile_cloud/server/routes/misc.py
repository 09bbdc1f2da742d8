"""Open routes: server info for gateways' clock checks."""

from __future__ import annotations

import datetime as dt

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
