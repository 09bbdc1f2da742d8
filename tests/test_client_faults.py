"""Retries, timeouts and token refresh, with faults injected at the transport.

A real server cannot be made to reset connections, time out or answer 429/503 on demand, so these
tests replace the transport (the one seam the client has); everything above it is the real client.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable

import httpx
import orjson
import pytest

from iotile_cloud.api.connection import Api
from iotile_cloud.api.exceptions import (
    ApiConnectionError,
    ApiTimeoutError,
    HttpClientError,
    HttpForbiddenError,
    HttpNotFoundError,
    HttpServerError,
    HttpTooManyRequestsError,
    HttpUnauthorizedError,
)
from iotile_cloud.client import AsyncClient, Client, RetryPolicy

FAST = RetryPolicy(max_retries=3, backoff_factor=0.001, max_backoff=0.01)


class Script:
    """A transport that answers from a list of steps (a Response factory or an exception)."""

    def __init__(self, *steps: Callable[[httpx.Request], httpx.Response] | Exception) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        if isinstance(step, Exception):
            raise step
        return step(request)


def ok(body: object = None, status: int = 200, headers: dict[str, str] | None = None) -> Callable:
    return lambda request: httpx.Response(status, json=body if body is not None else {"ok": True}, headers=headers)


def client(script: Script, **kwargs: object) -> Client:
    return Client("http://cloud.test", transport=httpx.MockTransport(script), retry=FAST, **kwargs)  # type: ignore[arg-type]


def test_connection_reset_then_success_for_get() -> None:
    script = Script(httpx.ReadError("reset"), httpx.RemoteProtocolError("dropped"), ok({"a": 1}))
    assert client(script).get("org/") == {"a": 1}
    assert len(script.requests) == 3


def test_connect_error_gives_up_with_typed_error() -> None:
    script = Script(httpx.ConnectError("refused"))
    with pytest.raises(ApiConnectionError) as info:
        client(script).get("org/")
    assert len(script.requests) == 4  # 1 + 3 retries
    assert "GET http://cloud.test/api/v1/org/" in str(info.value)
    assert isinstance(info.value, ConnectionError)


def test_timeout_is_a_typed_timeout_error() -> None:
    script = Script(httpx.ReadTimeout("slow"))
    with pytest.raises(ApiTimeoutError) as info:
        client(script).get("org/")
    assert isinstance(info.value, TimeoutError)
    assert len(script.requests) == 4


def test_post_is_not_repeated_after_a_reset_or_503() -> None:
    script = Script(httpx.ReadError("reset mid-request"))
    with pytest.raises(ApiConnectionError):
        client(script).post("data/", [{"x": 1}])
    assert len(script.requests) == 1
    script = Script(ok({"detail": "busy"}, status=503))
    with pytest.raises(HttpServerError):
        client(script).post("data/", [{"x": 1}])
    assert len(script.requests) == 1


def test_post_retried_when_never_sent_or_when_opted_in() -> None:
    script = Script(httpx.ConnectError("refused"), ok({"count": 1}, status=201))
    assert client(script).post("data/", []) == {"count": 1}
    assert len(script.requests) == 2
    script = Script(ok(status=503), ok({"count": 1}, status=201))
    assert client(script).request("POST", "data/", json=[], idempotent=True) == {"count": 1}
    assert len(script.requests) == 2


def test_429_honours_retry_after() -> None:
    script = Script(ok({"detail": "slow down"}, status=429, headers={"Retry-After": "0.2"}), ok({"a": 1}))
    c = Client(
        "http://cloud.test",
        transport=httpx.MockTransport(script),
        retry=RetryPolicy(max_retries=2, backoff_factor=0.001),
    )
    started = time.monotonic()
    assert c.get("org/") == {"a": 1}
    assert time.monotonic() - started >= 0.19


def test_503_storm_exhausts_retries() -> None:
    script = Script(ok({"detail": "down"}, status=503))
    with pytest.raises(HttpServerError) as info:
        client(script).get("org/")
    assert len(script.requests) == 4
    assert info.value.status_code == 503
    assert "Server Error 503" in str(info.value) and "down" in str(info.value)


def test_429_after_retries_carries_retry_after() -> None:
    script = Script(ok({"detail": "throttled"}, status=429, headers={"Retry-After": "0"}))
    with pytest.raises(HttpTooManyRequestsError) as info:
        client(script).get("org/")
    assert info.value.retry_after == 0
    assert isinstance(info.value, HttpClientError)


@pytest.mark.parametrize(
    "status, cls", [(401, HttpUnauthorizedError), (403, HttpForbiddenError), (404, HttpNotFoundError)]
)
def test_status_classes_keep_the_old_hierarchy(status: int, cls: type) -> None:
    script = Script(ok({"detail": "Nope."}, status=status))
    with pytest.raises(HttpClientError) as info:
        client(script, auto_refresh=False).get("org/x/")
    assert type(info.value) is cls
    assert info.value.status_code == status
    assert info.value.method == "GET"
    assert info.value.url == "http://cloud.test/api/v1/org/x/"
    assert str(info.value) == f"Client Error {status}: http://cloud.test/api/v1/org/x/ (Nope.)"
    assert len(script.requests) == 1


def test_field_errors_are_readable() -> None:
    script = Script(ok({"name": ["This field is required."]}, status=400))
    with pytest.raises(HttpClientError) as info:
        client(script).post("org/", {})
    assert "name: This field is required." in str(info.value)
    assert info.value.detail == {"name": ["This field is required."]}


def _jwt(exp: float) -> str:
    def enc(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{enc({'alg': 'HS256'})}.{enc({'user_id': 1, 'exp': int(exp)})}.sig"


def test_expiring_jwt_is_refreshed_before_the_request() -> None:
    old, new = _jwt(time.time() + 60), _jwt(time.time() + 7 * 86400)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("api-jwt-refresh/"):
            assert orjson.loads(request.content) == {"token": old}
            return httpx.Response(200, json={"token": new})
        return httpx.Response(200, json={"auth": request.headers["Authorization"]})

    c = Client("http://cloud.test", transport=httpx.MockTransport(handler), token=old)
    assert c.get("org/") == {"auth": f"jwt {new}"}


def test_401_triggers_one_refresh_and_one_retry() -> None:
    calls: list[str] = []
    old, new = _jwt(time.time() + 86400 * 5), _jwt(time.time() + 86400 * 7)

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path.endswith("api-jwt-refresh/"):
            return httpx.Response(200, json={"token": new})
        if request.headers["Authorization"] == f"jwt {old}":
            return httpx.Response(401, json={"detail": "Signature has expired."})
        return httpx.Response(200, json={"ok": True})

    c = Client("http://cloud.test", transport=httpx.MockTransport(handler), token=old)
    assert c.get("org/") == {"ok": True}
    assert calls == ["/api/v1/org/", "/api/v1/auth/api-jwt-refresh/", "/api/v1/org/"]


def test_api_timeout_alone_does_not_enable_retries() -> None:
    script = Script(httpx.ConnectError("refused"))
    api = Api("http://cloud.test", timeout=1, transport=httpx.MockTransport(script))
    with pytest.raises(ApiConnectionError):
        api.org.get()
    assert len(script.requests) == 1


def test_api_retries_when_asked() -> None:
    script = Script(httpx.ConnectError("refused"), ok({"count": 0, "results": []}))
    api = Api(
        "http://cloud.test",
        retries=RetryPolicy(max_retries=2, backoff_factor=0.001),
        transport=httpx.MockTransport(script),
    )
    assert api.org.get() == {"count": 0, "results": []}


def test_async_client_retries_and_paginates() -> None:
    import asyncio

    pages = {
        "/api/v1/device/": {"count": 3, "next": "http://cloud.test/api/v1/device/?page=2", "results": [1, 2]},
    }
    flaky = [True]

    def handler(request: httpx.Request) -> httpx.Response:
        if flaky:
            flaky.pop()
            raise httpx.ReadError("reset")
        if request.url.params.get("page") == "2":
            return httpx.Response(200, json={"count": 3, "next": None, "results": [3]})
        return httpx.Response(200, json=pages[request.url.path])

    async def run() -> list[int]:
        async with AsyncClient("http://cloud.test", transport=httpx.MockTransport(handler), retry=FAST) as c:
            return [item async for item in c.paginate("device/")]

    assert asyncio.run(run()) == [1, 2, 3]
