"""Bad input on every route answers 4xx with a reason, never 5xx, and stores nothing half-done."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from iotile_cloud.api.connection import Api
from iotile_cloud.testing.cloud import CloudHelper

from .test_isolation import concrete, routes, snapshot, world  # noqa: F401 - the shared fixture

BAD_BODIES: list[Any] = [
    b"{not json",
    b"[",
    b"\xff\xfe",
    "null",
    "[]",
    "[1, 2]",
    '"text"',
    "123",
    "{}",
    '{"name": 5, "org": [], "project": {}, "device": 1.5, "stream": null, "timestamp": "yesterday", '
    '"int_value": "x", "value": "NaN", "lid": -1, "label": {"a": 1}, "slugs": "d--1", "target": 7, "role": true}',
    '{"stream": "s--garbage", "timestamp": "2026-01-01T00:00:00Z", "int_value": 99999999999999999999999}',
    '{"device": "d--zzzz", "project": "p--zz"}',
]


def _reason(response: httpx.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return bool(body)


def test_every_route_with_bad_bodies(cloud: CloudHelper, api: Api, world: dict[str, str]) -> None:  # noqa: F811
    headers = {"Authorization": f"jwt {api.token}", "Content-Type": "application/json"}
    checked = 0
    with httpx.Client(base_url=cloud.url, headers=headers, timeout=30) as http:
        for method, template in routes(cloud):
            if template in ("/api/v1/auth/logout/",) or method in ("GET", "DELETE"):
                continue
            path = concrete(template, world)
            for body in BAD_BODIES:
                response = http.request(method, path, content=body)
                checked += 1
                where = f"{method} {path} {body!r} -> {response.status_code} {response.text[:200]}"
                assert response.status_code < 500, where
                if response.status_code >= 400:
                    assert _reason(response), where
    assert checked > 300


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/device/d--zzzz/",
        "/api/v1/device/%00/",
        "/api/v1/stream/s--1/",
        "/api/v1/variable/v--x/",
        "/api/v1/project/123/",
        "/api/v1/fleet/g--zz/",
        "/api/v1/event/abc/",
        "/api/v1/data/abc/",
        "/api/v1/data/?filter=s--0000-0001&page_size=100000000",
        "/api/v1/data/?filter=d--xyz",
        "/api/v1/data/?filter=v--1--2--3",
        "/api/v1/data/?filter=zzz",
        "/api/v1/org/?page=abc",
        "/api/v1/org/?page=-1",
        "/api/v1/data/?filter=s--0000-0001--0000-0000-0000-0001--5001&lastn=0",
        "/api/v1/data/?filter=s--0000-0001--0000-0000-0000-0001--5001&start=yesterday",
        "/api/v1/streamer/?device=garbage",
        "/api/v1/streamer/report/?streamer__slug=zz",
        "/api/v1/df/?filter=s--0000-0001--0000-0000-0000-0001--5001&format=xml",
        "/api/v1/property/?target=zz",
        "/api/v1/device/?page_size=-5",
        "/api/v1/stream/?page_size=abc",
    ],
)
def test_malformed_urls(cloud: CloudHelper, api: Api, path: str) -> None:
    with httpx.Client(base_url=cloud.url, headers={"Authorization": f"jwt {api.token}"}) as http:
        response = http.get(path)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert _reason(response)
    else:
        assert response.json() is not None


def test_huge_page_size_is_clamped(cloud: CloudHelper, api: Api) -> None:
    body = api.org.get(page_size=10**9)
    assert body["count"] == 0
    with httpx.Client(base_url=cloud.url, headers={"Authorization": f"jwt {api.token}"}) as http:
        response = http.get("/api/v1/org/", params={"page_size": 10**9, "page": 2})
    assert response.status_code == 404 and response.json() == {"detail": "Invalid page."}
