"""Bad input of every class on every route of a live server: always a 4xx with a reason, never a 5xx.

The routes come from the app's routers, their query parameters from the server's source and their
body fields from the routes' OpenAPI bodies, so routes added later are covered without editing here.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from iotile_cloud.api.connection import Api
from iotile_cloud.server import app as server_app
from iotile_cloud.server.app import routers
from iotile_cloud.testing.cloud import CloudHelper
from tests.test_isolation import body_for, concrete, world

__all__ = ["world"]  # the fixture, shared with the isolation walk

SERVER_SOURCE = Path(server_app.__file__).parent
HUGE = "99999999999999999999"
# Values that break naive handling: 64-bit overflow, slugs at the top of their range, odd text.
BAD_SEGMENTS = [
    HUGE,
    "-" + HUGE,
    "d--ffff-ffff-ffff-ffff",
    "s--ffff-ffff--ffff-ffff-ffff-ffff--ffff",
    "t--ffff-ffff-ffff-ffff--ffff",
    "1e999",
    "x" * 3000,
    "%00",
]
BAD_QUERY_VALUES = [HUGE, "d--ffff-ffff-ffff-ffff", "x" * 3000]
BAD_FIELD_VALUES: list[Any] = [None, int(HUGE), "x" * 3000, [], "d--ffff-ffff-ffff-ffff"]


def api_routes() -> list[tuple[str, APIRoute]]:
    return [
        (method, route)
        for router in routers()
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in sorted(route.methods - {"HEAD"})
    ]


QUERY_NAME = re.compile(
    r'(?:query_params(?:\.get)?[(\[]|query_\w+\(request, |flag\(request, |params(?:\.get)?[(\[])"([a-z_]+)"'
)


def query_names(source: Path | None = None) -> set[str]:
    """The query parameters the server's source (or one module of it) reads."""
    files = [source] if source else list(SERVER_SOURCE.rglob("*.py"))
    names = {m for path in files for m in QUERY_NAME.findall(path.read_text())}
    if source is None or "streamer_id_min" in source.read_text():
        names |= {"streamer_id_min", "streamer_id_max"}  # read in a loop over (name, operator)
    return names


def route_query_names(route: APIRoute) -> list[str]:
    """What a route may read: its own module's parameters and the shared ones (paging, staff)."""
    module = Path(sys.modules[route.endpoint.__module__].__file__ or "")
    shared = query_names(SERVER_SOURCE / "http.py") | query_names(SERVER_SOURCE / "context.py")
    return sorted(query_names(module) | shared | {"page", "page_size"})


def takes_lists(route: APIRoute) -> bool:
    content = (route.openapi_extra or {}).get("requestBody", {}).get("content", {})
    return any("oneOf" in media.get("schema", {}) for media in content.values())


def body_fields(route: APIRoute, w: dict[str, str]) -> list[str]:
    """The fields a route documents for its body (else those the isolation walk sends)."""
    content = (route.openapi_extra or {}).get("requestBody", {}).get("content", {})
    for media in content.values():
        schema = media.get("schema", {})
        schema = schema.get("oneOf", [schema])[0]
        if schema.get("properties"):
            return sorted(schema["properties"])
    return sorted(body_for(w))


@pytest.fixture
def owner(cloud: CloudHelper, api: Api) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cloud.url, headers={"Authorization": f"jwt {api.token}"}, timeout=60) as http:
        yield http


class Failures:
    def __init__(self) -> None:
        self.found: list[str] = []
        self.sent = 0

    def send(self, client: httpx.Client, what: str, method: str, url: str, **kwargs: Any) -> None:
        started = time.perf_counter()
        try:
            response = client.request(method, url, **kwargs)
            if time.perf_counter() - started > 0.5:
                print(f"SLOW {time.perf_counter() - started:.1f}s {what}")
        except httpx.TransportError as error:  # a dropped connection is a failure too
            self.sent += 1
            self.found.append(f"{what} -> {type(error).__name__} {error}")
            return
        self.check(response, what)

    def check(self, response: httpx.Response, what: str) -> None:
        self.sent += 1
        if response.status_code >= 500:
            self.found.append(f"{what} -> {response.status_code} {response.text[:120]}")
        elif response.status_code >= 400:
            assert response.content, f"{what}: a {response.status_code} without a reason"

    def assert_none(self, minimum: int) -> None:
        assert not self.found, f"{len(self.found)} server errors:\n" + "\n".join(self.found[:60])
        assert self.sent >= minimum


def _fill_one(template: str, w: dict[str, str], param: str, value: str) -> str:
    return concrete(template.replace("{" + param + "}", "\0"), w).split("?")[0].replace("\0", value)


def test_bad_path_segments_on_every_route(owner: httpx.Client, world: dict[str, str]) -> None:
    failures = Failures()
    for method, route in api_routes():
        template = "/api/v1" + route.path
        for param in re.findall(r"\{(\w+)\}", template):
            for value in BAD_SEGMENTS:
                path = _fill_one(template, world, param, value)
                body = None if method in ("GET", "DELETE") else body_for(world)
                failures.send(owner, f"{method} {path[:120]}", method, path, json=body)
    failures.assert_none(300)


def test_bad_query_values_on_every_get_route(owner: httpx.Client, world: dict[str, str]) -> None:
    failures = Failures()
    assert {"filter", "start", "streamer_id_min", "search", "target"} <= query_names()
    for method, route in api_routes():
        if method != "GET":
            continue
        path = concrete("/api/v1" + route.path, world)
        base, _, query = path.partition("?")
        keep = dict(item.split("=", 1) for item in query.split("&") if item)
        for name in route_query_names(route):
            for value in BAD_QUERY_VALUES:
                what = f"GET {base}?{name}={value[:40]}"
                failures.send(owner, what, "GET", base, params={**keep, name: value})
    failures.assert_none(1000)


def test_bad_field_values_on_every_write_route(owner: httpx.Client, world: dict[str, str]) -> None:
    failures = Failures()
    for method, route in api_routes():
        if method not in ("POST", "PUT", "PATCH"):
            continue
        path = concrete("/api/v1" + route.path, world)
        for field in body_fields(route, world):
            for value in BAD_FIELD_VALUES:
                body = {**body_for(world), field: value}
                for shape in (body, [body]) if takes_lists(route) else (body,):
                    what = f"{method} {path} {field}={str(value)[:30]!r} {type(shape).__name__}"
                    failures.send(owner, what, method, path, json=shape)
    failures.assert_none(500)


BAD_BODIES: list[tuple[str, bytes]] = [
    ("nested 100,000 deep", b"[" * 100_000 + b"]" * 100_000),
    ("objects nested 5,000 deep", b'{"a":' * 5000 + b"1" + b"}" * 5000),
    ("a 5,000 digit integer", b'{"int_value": ' + b"9" * 5000 + b"}"),
    ("not JSON", b"{nope"),
    ("invalid UTF-8", b'{"name": "\xff\xfe"}'),
    ("a bare string", b'"x"'),
    ("NaN", b'{"value": NaN}'),
    ("a 1e999 float", b'{"value": 1e999}'),
]


@pytest.mark.parametrize(("label", "raw"), BAD_BODIES, ids=[label for label, _ in BAD_BODIES])
def test_malformed_bodies_on_every_write_route(
    cloud: CloudHelper, owner: httpx.Client, world: dict[str, str], label: str, raw: bytes
) -> None:
    failures = Failures()
    for method, route in api_routes():
        if method not in ("POST", "PUT", "PATCH"):
            continue
        path = concrete("/api/v1" + route.path, world)
        for client in (owner, httpx.Client(base_url=cloud.url)):  # authenticated and anonymous
            headers = {"Content-Type": "application/json"}
            failures.send(client, f"{method} {path} with {label}", method, path, content=raw, headers=headers)
    failures.assert_none(40)
