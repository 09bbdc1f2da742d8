"""The ASGI application: ``create_app(database_url, data_dir)``."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from iotile_cloud import __version__
from iotile_cloud.server import db
from iotile_cloud.server.context import AppState
from iotile_cloud.server.http import JSON, APIError
from iotile_cloud.server.limits import BodyLimitMiddleware, BodyLimits, StreamGuard
from iotile_cloud.server.security import JwtCodec, load_or_create_secret, private_dir, private_sqlite

log = logging.getLogger("iotile_cloud.server")
API = "/api/v1"


DATABASE_FILE = "iotile-cloud.sqlite3"


def default_data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("iotile-cloud"))


def create_app(
    database_url: str | None = None,
    data_dir: Path | str | None = None,
    *,
    migrate: bool = True,
    stage: str = "local",
    fixed_tokens: bool = False,
    limits: BodyLimits | None = None,
) -> FastAPI:
    """Build the app. With no ``database_url``, a SQLite file ``iotile-cloud.sqlite3`` in ``data_dir``.

    ``fixed_tokens`` is for test fixtures only: it lets them register fixed credentials (``JWT_USER``).
    """
    folder = private_dir(Path(data_dir) if data_dir else default_data_dir())
    url = database_url or db.sqlite_url(folder / DATABASE_FILE)
    private_sqlite(url)
    engine = db.make_engine(url)
    if migrate:
        db.migrate(engine)
    app = FastAPI(
        title="IOTile Cloud (local)",
        version=__version__,
        description="A local IOTile Cloud speaking the /api/v1 REST API over SQLite or PostgreSQL.",
        openapi_url="/api/schema/",
        docs_url="/api/docs/",
        redoc_url=None,
        lifespan=_lifespan,
    )
    app.state.iotile = AppState(
        engine=engine,
        jwt=JwtCodec(load_or_create_secret(folder)),
        data_dir=folder,
        stage=stage,
        fixed_tokens={} if fixed_tokens else None,
    )
    _install_handlers(app)
    _load_columnar_path()
    for router in routers():
        app.include_router(router, prefix=API)
    app.add_middleware(BodyLimitMiddleware, api=app, limits=limits or BodyLimits())
    app.add_middleware(StreamGuard)
    from iotile_cloud.server import console

    console.mount(app, API)
    return app


def _load_columnar_path() -> None:
    """With pyarrow installed, load the Arrow path now: the first Arrow answer would otherwise wait
    for pyarrow's import (a few hundred milliseconds). Without it the path answers 406 when asked."""
    # No pyarrow ([server] alone): nothing to load; the route says so when asked.
    with contextlib.suppress(ImportError, APIError):
        import iotile_cloud.server.columnar  # noqa: F401


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.iotile.compactor.start()
    yield
    # Shutting down (when the server runs the lifespan): this worker's pending counts to the database.
    await run_in_threadpool(app.state.iotile.close)


def routers() -> list[Any]:
    """The API's routers, in matching order (fixed paths before ``{slug}`` paths)."""
    from iotile_cloud.server.routes import (
        aliases,
        auth,
        configs,
        data,
        datablocks,
        device_actions,
        devices,
        generated,
        misc,
        notes,
        orgs,
        ota,
        reports,
        streams,
        subroutes,
        templates,
    )

    modules = (
        misc,
        auth,
        orgs,
        reports,
        devices,
        device_actions,
        streams,
        data,
        notes,
        aliases,
        configs,
        templates,
        subroutes,
        ota,
        datablocks,
        generated,
    )
    return [module.router for module in modules]


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(_request: Request, error: APIError) -> Response:
        return JSON(error.body, status_code=error.status, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, error: RequestValidationError) -> Response:
        body: dict[str, Any] = {}
        for item in error.errors():
            loc = [str(p) for p in item.get("loc", ()) if p not in ("body", "query", "path")]
            body.setdefault(".".join(loc) or "non_field_errors", []).append(item.get("msg", "Invalid value."))
        return JSON(body, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        if error.status_code == 405:
            return JSON({"detail": f'Method "{request.method}" not allowed.'}, status_code=405, headers=error.headers)
        if error.status_code == 404:
            return JSON({"detail": "Not found."}, status_code=404)
        return JSON({"detail": error.detail}, status_code=error.status_code, headers=error.headers)

    async def unvalidated(request: Request, error: Exception) -> Response:
        """A value the edge should have refused reached the database: 400, logged so it gets fixed there."""
        if (
            isinstance(error, sa.exc.StatementError)
            and not isinstance(error.orig, OverflowError | sa.exc.DataError | sa.exc.IntegrityError)
            and not isinstance(error, sa.exc.DataError | sa.exc.IntegrityError)
        ):
            raise error
        log.warning("Unvalidated input on %s %s: %s", request.method, request.url.path, error)
        return JSON({"detail": "A value is out of range or conflicts with stored data."}, status_code=400)

    # Registered by type (not in the catch-all), so the connection stays usable after the answer.
    app.add_exception_handler(OverflowError, unvalidated)
    app.add_exception_handler(sa.exc.StatementError, unvalidated)

    @app.exception_handler(Exception)
    async def crash(request: Request, error: Exception) -> Response:
        if isinstance(error, ClientDisconnect):  # the client left, or BodyLimitMiddleware cut the body off
            return JSON({"detail": "Client disconnected."}, status_code=400)
        log.exception("Unhandled error on %s %s", request.method, request.url.path)
        return JSON({"detail": "Internal server error."}, status_code=500)

    app.add_middleware(AccessLog)


class AccessLog:
    """One log line per request and the shared request/error counts. Plain ASGI (not
    ``@app.middleware``): no extra task and stream per request on the upload path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        counts = scope["app"].state.iotile
        counts.requests.add()
        status: int | None = None

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if status >= 400:  # counted before the client can see the answer
                    counts.errors.add()
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        except BaseException:
            if status is None:  # the outermost handler answers 500
                counts.errors.add()
            raise
        finally:
            shown = 500 if status is None else status
            log.info("%s %s %s %.1fms", scope["method"], scope["path"], shown, (time.perf_counter() - started) * 1000)
