"""The web console (``/``): server-rendered pages over the API's own permission checks, a small
script for the plot, live feed and uploads, and the ``/api/v1`` feeds they use (``docs/console.md``)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"


def mount(app: FastAPI, api_prefix: str) -> None:
    """Add the feeds under ``api_prefix``, the pages at ``/`` and the static files."""
    from iotile_cloud.server.console import feeds, pages

    app.include_router(feeds.router, prefix=api_prefix)
    app.include_router(pages.router)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
