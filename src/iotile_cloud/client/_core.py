"""The one place that speaks HTTP: URLs, auth header, timeouts, retries, token refresh, pagination.

``Client`` (sync) and ``AsyncClient`` have the same shape. The retry and error decisions are plain
functions shared by both, so the two can never disagree.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import json
import random
import ssl
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import orjson

from iotile_cloud import __version__
from iotile_cloud.errors import (
    ApiConnectionError,
    ApiTimeoutError,
    HttpCouldNotVerifyServerError,
    HttpTooManyRequestsError,
    RestHttpBaseException,
    error_for_status,
)

__all__ = [
    "DEFAULT_DOMAIN",
    "API_PREFIX",
    "DEFAULT_TIMEOUT",
    "RetryPolicy",
    "Client",
    "AsyncClient",
    "TokenType",
    "decode_content",
    "decode_body",
    "http_error",
    "check_response",
]

DEFAULT_DOMAIN = "https://iotile.cloud"
API_PREFIX = "api/v1"
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0, pool=10.0)
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
TokenType = Literal["jwt", "token", "a-jwt"]
_UNSET: Any = object()
# Request extension telling a transport that the caller reads the body as it arrives.
STREAM_EXTENSION = "iotile_stream"


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before trying a request again.

    Connection failures before anything was sent are retried for every method (nothing reached the
    server). Resets, read timeouts and the ``statuses`` are retried only for idempotent methods,
    unless the request is marked idempotent or ``retry_non_idempotent`` is set.
    """

    max_retries: int = 3
    backoff_factor: float = 0.5
    max_backoff: float = 30.0
    statuses: frozenset[int] = field(default_factory=lambda: frozenset({429, 502, 503, 504}))
    retry_non_idempotent: bool = False

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, factor * 2**attempt)]."""
        return random.uniform(0, min(self.max_backoff, self.backoff_factor * (2**attempt)))


NO_RETRY = RetryPolicy(max_retries=0)


def _retry_after(response: Any) -> float | None:
    """The server's ``Retry-After`` in seconds (httpx and requests responses alike)."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, parsed.timestamp() - time.time())


def _retry_delay(
    policy: RetryPolicy,
    attempt: int,
    idempotent: bool,
    response: httpx.Response | None = None,
    error: Exception | None = None,
) -> float | None:
    """Seconds to wait before the next attempt, or None to stop here."""
    if attempt >= policy.max_retries:
        return None
    may_repeat = idempotent or policy.retry_non_idempotent
    if error is not None:
        never_sent = isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout)) and not _is_tls(error)
        if never_sent or (may_repeat and isinstance(error, httpx.TransportError) and not _is_tls(error)):
            return policy.backoff(attempt)
        return None
    assert response is not None
    if response.status_code in policy.statuses and may_repeat:
        hint = _retry_after(response)
        if hint is not None:
            return min(hint, policy.max_backoff)
        return policy.backoff(attempt)
    return None


def _is_tls(error: BaseException) -> bool:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _transport_error(error: Exception, method: str, url: str) -> Exception:
    if _is_tls(error):
        return HttpCouldNotVerifyServerError(
            f"Could not verify the TLS certificate of {url}: {error}", method=method, url=url
        )
    if isinstance(error, httpx.TimeoutException):
        return ApiTimeoutError(f"{method} {url} timed out: {error!r}", method=method, url=url)
    return ApiConnectionError(f"{method} {url} failed: {error!r}", method=method, url=url)


def decode_content(status_code: int, content: bytes) -> Any:
    """A body as 0.9.14 read it: None for 204/205, parsed JSON whenever it parses (whatever the
    Content-Type says), else the raw bytes (CSV from ``/df/``, files, an empty body)."""
    if status_code in (204, 205):
        return None
    if not content:
        return content
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        pass
    # The standard parser also takes what orjson refuses (NaN, huge ints, UTF-16/32 bodies).
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return content


def decode_body(response: httpx.Response) -> Any:
    return decode_content(response.status_code, response.content)


def http_error(status_code: int, method: str, url: str, content: bytes, response: Any = None) -> RestHttpBaseException:
    """The typed error for a failed answer (httpx or requests response); not raised here."""
    detail = decode_content(status_code, content) if content else None
    error = error_for_status(status_code, method, url, detail, content, response)
    if isinstance(error, HttpTooManyRequestsError) and response is not None:
        error.retry_after = _retry_after(response)
    return error


def check_response(response: httpx.Response) -> None:
    """Raise the typed error for a non-2xx response."""
    if response.is_success:
        return
    raise http_error(
        response.status_code, response.request.method, str(response.request.url), response.content, response
    )


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT, read without verifying (we only decide when to refresh)."""
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        exp = orjson.loads(base64.urlsafe_b64decode(payload)).get("exp")
        return float(exp) if exp is not None else None
    except (IndexError, ValueError, orjson.JSONDecodeError, AttributeError):
        return None


class _Base:
    """State and request building shared by the sync and async clients."""

    def __init__(
        self,
        domain: str | None = None,
        *,
        token: str | None = None,
        token_type: TokenType | str = "jwt",
        timeout: httpx.Timeout | float | None = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        verify: bool | str | ssl.SSLContext = True,
        refresh_margin: float = 3600.0,
        auto_refresh: bool = True,
    ) -> None:
        self.domain = (domain or DEFAULT_DOMAIN).rstrip("/")
        self.base_url = f"{self.domain}/{API_PREFIX}"
        self.retry = retry if retry is not None else RetryPolicy()
        self.refresh_margin = refresh_margin
        self.auto_refresh = auto_refresh
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._verify = verify
        self._lock = threading.RLock()
        self.token: str | None = token
        self.token_type: str = token_type or "jwt"
        self.username: str | None = None

    # -- auth state ---------------------------------------------------------------------------

    def set_token(self, token: str | None, token_type: str | None = None) -> None:
        with self._lock:
            self.token = token
            if token_type:
                self.token_type = token_type

    def auth_headers(self) -> dict[str, str]:
        with self._lock:
            if not self.token:
                return {}
            return {"Authorization": f"{self.token_type} {self.token}"}

    def _needs_refresh(self) -> bool:
        if not (self.auto_refresh and self.token and self.token_type == "jwt"):
            return False
        exp = jwt_expiry(self.token)
        return exp is not None and exp - time.time() < self.refresh_margin and exp > time.time()

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    @staticmethod
    def _headers() -> dict[str, str]:
        return {"Accept": "application/json", "User-Agent": f"iotile-cloud-python/{__version__}"}

    @staticmethod
    def _content(json: Any) -> tuple[bytes | None, dict[str, str]]:
        if json is _UNSET:
            return None, {}
        # orjson: fast and handles datetimes; an empty dict or list is still sent as a body.
        return orjson.dumps(json, option=orjson.OPT_NAIVE_UTC | orjson.OPT_SERIALIZE_NUMPY), {
            "Content-Type": "application/json"
        }


class Client(_Base):
    """Synchronous client. Thread-safe: one connection pool shared by every thread.

    >>> client = Client("http://127.0.0.1:8000")
    >>> client.login("me@example.com", "secret")
    >>> for device in client.paginate("device/", project="p--0000-0001"):
    ...     print(device["slug"])
    """

    def __init__(
        self,
        domain: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        max_connections: int = 32,
        **kwargs: Any,
    ) -> None:
        super().__init__(domain, **kwargs)
        self._http = httpx.Client(
            timeout=self._timeout,
            verify=self._verify,
            transport=transport,
            headers=self._headers(),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            # A compatible server answers a second login that carries session cookies with 403.
            cookies=None,
            # A given transport owns proxies and certificates (the facade's requests.Session does).
            trust_env=self._verify is not False and transport is None,
        )

    @classmethod
    def from_config(cls, domain: str | None = None, **kwargs: Any) -> Client:
        """A client for ``domain`` (default: ``IOTILE_CLOUD_DOMAIN`` or the last login) with the token
        from ``IOTILE_CLOUD_TOKEN`` or the one ``iotile-cloud login`` stored."""
        from iotile_cloud.client import config

        domain = (domain or config.default_domain()).rstrip("/")
        saved = config.load_credentials(domain) or {}
        client = cls(domain, token=saved.get("token"), token_type=saved.get("token_type") or "jwt", **kwargs)
        client.username = saved.get("username")
        return client

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests -----------------------------------------------------------------------------

    def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = _UNSET,
        files: Any = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        auth: bool = True,
        check: bool = True,
    ) -> httpx.Response:
        """Send one request with retries; returns the response (raises typed errors if ``check``)."""
        method = method.upper()
        url = self.url(path)
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        content, extra = self._content(json)
        refreshed = False
        attempt = 0
        while True:
            if auth and self._needs_refresh():
                self._try_refresh()
            all_headers = {**extra, **(self.auth_headers() if auth else {}), **(headers or {})}
            try:
                response = self._http.request(
                    method,
                    url,
                    params=_clean(params),
                    content=content,
                    files=files,
                    data=data,
                    headers=all_headers,
                )
            except httpx.TransportError as error:
                delay = _retry_delay(self.retry, attempt, idempotent, error=error)
                if delay is None:
                    raise _transport_error(error, method, url) from error
                _rewind(files)
                time.sleep(delay)
                attempt += 1
                continue
            if response.status_code == 401 and auth and not refreshed and self._try_refresh():
                refreshed = True
                _rewind(files)
                continue
            delay = _retry_delay(self.retry, attempt, idempotent, response=response)
            if delay is not None:
                response.close()
                _rewind(files)
                time.sleep(delay)
                attempt += 1
                continue
            if check:
                check_response(response)
            return response

    @contextlib.contextmanager
    def stream(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[httpx.Response]:
        """A response whose body is read as it arrives (not checked: look at ``status_code``).

        Connection failures and the retry statuses are retried before the body starts, as for
        :meth:`send`; once the body flows, a failure raises.
        """
        method = method.upper()
        url = self.url(path)
        attempt = 0
        while True:
            if self._needs_refresh():
                self._try_refresh()
            request = self._http.build_request(
                method,
                url,
                params=_clean(params),
                headers={**self.auth_headers(), **(headers or {})},
                extensions={STREAM_EXTENSION: True},
            )
            try:
                response = self._http.send(request, stream=True)
            except httpx.TransportError as error:
                delay = _retry_delay(self.retry, attempt, method in IDEMPOTENT_METHODS, error=error)
                if delay is None:
                    raise _transport_error(error, method, url) from error
                time.sleep(delay)
                attempt += 1
                continue
            delay = _retry_delay(self.retry, attempt, method in IDEMPOTENT_METHODS, response=response)
            if delay is not None:
                response.close()
                time.sleep(delay)
                attempt += 1
                continue
            try:
                yield response
            except httpx.TransportError as error:
                raise _transport_error(error, method, url) from error
            finally:
                response.close()
            return

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send and decode: parsed JSON, None for 204, raw bytes for anything else."""
        return decode_body(self.send(method, path, **kwargs))

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, json: Any = _UNSET, **params: Any) -> Any:
        return self.request("POST", path, json=json, params=params)

    def put(self, path: str, json: Any = _UNSET, **params: Any) -> Any:
        return self.request("PUT", path, json=json, params=params)

    def patch(self, path: str, json: Any = _UNSET, **params: Any) -> Any:
        return self.request("PATCH", path, json=json, params=params)

    def delete(self, path: str, json: Any = _UNSET, **params: Any) -> Any:
        return self.request("DELETE", path, json=json, params=params)

    def pages(self, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every page body of a paginated list, following ``next`` links."""
        page: Any = self.get(path, **params)
        while True:
            if not isinstance(page, dict):
                raise RestHttpBaseException(f"Expected a paginated list from {self.url(path)}, got {page!r}")
            yield page
            next_url = page.get("next")
            if not next_url:
                return
            page = self.request("GET", next_url)

    def paginate(self, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a list endpoint, one page in memory at a time."""
        for page in self.pages(path, **params):
            yield from page.get("results") or []

    # -- streamer reports and events -------------------------------------------------------

    def upload_report(self, report: Any, received: Any = None, filename: str | None = None) -> dict[str, Any]:
        """Upload a report (a path, bytes, or a report object) and return the server's answer.

        ``received`` is when the gateway got the report (default: now, UTC); it anchors uptime
        timestamps. A report object is encoded here; bytes need a ``filename`` for JSON/msgpack.
        """
        import datetime as dt
        from pathlib import Path

        if isinstance(report, (str, Path)):
            path = Path(report)
            data, name = path.read_bytes(), filename or path.name
        elif isinstance(report, (bytes, bytearray)):
            data, name = bytes(report), filename or "report.bin"
        elif hasattr(report, "encode_msgpack"):
            data, name = report.encode_msgpack(), filename or "report.mp"
        else:
            data, name = report.encode(), filename or "report.bin"
        when = received or dt.datetime.now(dt.timezone.utc)
        stamp = (
            when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            if hasattr(when, "astimezone")
            else str(when)
        )
        result = self.request("POST", "streamer/report/", params={"timestamp": stamp}, files={"file": (name, data)})
        return dict(result)

    def upload_event(
        self,
        stream: str,
        timestamp: Any,
        path: Any,
        extra_data: dict[str, Any] | None = None,
        device_timestamp: int | None = None,
        streamer_local_id: int | None = None,
    ) -> dict[str, Any]:
        """Upload an event with its ``.json`` / ``.json.gz`` file."""
        from pathlib import Path

        from iotile_cloud.utils.basic import utc_isoformat

        file_path = Path(path)
        form: dict[str, Any] = {
            "stream": str(stream),
            "timestamp": utc_isoformat(timestamp) if hasattr(timestamp, "tzinfo") else str(timestamp),
            "encoded_extra_data": orjson.dumps(extra_data or {}).decode(),
        }
        if device_timestamp is not None:
            form["device_timestamp"] = str(device_timestamp)
        if streamer_local_id is not None:
            form["streamer_local_id"] = str(streamer_local_id)
        with file_path.open("rb") as fp:
            result = self.request("POST", "event/upload/", files={"file": (file_path.name, fp)}, data=form)
        return dict(result)

    def streamer_acks(self, device: Any) -> dict[int, int]:
        """The highest acknowledged reading id (``last_id``) of each of a device's streamers."""
        from iotile_cloud.utils.gid import IOTileDeviceSlug

        slug = str(IOTileDeviceSlug(device))
        return {int(s["index"]): int(s["last_id"]) for s in self.paginate("streamer/", device=slug)}

    # -- auth ---------------------------------------------------------------------------------

    def login(self, email: str, password: str) -> dict[str, Any]:
        """POST ``auth/login/``; stores the JWT and returns the account (raises on failure)."""
        body = self.request("POST", "auth/login/", json={"email": email, "password": password}, auth=False)
        with self._lock:
            self.token = body["jwt"]
            self.token_type = "jwt"
            self.username = body.get("username")
        return dict(body)

    def logout(self) -> None:
        self.send("POST", "auth/logout/")
        with self._lock:
            self.token = None
            self.username = None

    def renew_token(self, *, check: bool = True) -> str | None:
        """POST ``auth/api-jwt-refresh/`` and swap the fresh JWT in (unless another thread already did).

        Returns the current token, or None when the server answered without one (any status, an
        empty 204 included) and ``check`` is off; with ``check`` a refusal raises its typed error.
        Transport and TLS failures always raise.
        """
        with self._lock:
            current = self.token
        response = self.send("POST", "auth/api-jwt-refresh/", json={"token": current}, auth=False, check=check)
        fresh = _token_in(decode_body(response)) if response.is_success else None
        if fresh is None:
            return None
        with self._lock:
            if self.token == current:
                self.token = fresh
            return self.token

    def refresh_token(self) -> str:
        """Swap the current JWT for a fresh one (raises when the server refuses)."""
        token = self.renew_token()
        if token is None:
            raise RestHttpBaseException("The server answered the token refresh without a token")
        return token

    def _try_refresh(self) -> bool:
        with self._lock:
            if not (self.auto_refresh and self.token and self.token_type == "jwt"):
                return False
            try:
                self.refresh_token()
            except (RestHttpBaseException, ApiConnectionError):
                return False
            return True


class AsyncClient(_Base):
    """Asynchronous client with the same shape as :class:`Client`."""

    def __init__(
        self,
        domain: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 32,
        **kwargs: Any,
    ) -> None:
        super().__init__(domain, **kwargs)
        self._http = httpx.AsyncClient(
            timeout=self._timeout,
            verify=self._verify,
            transport=transport,
            headers=self._headers(),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            trust_env=self._verify is not False,
        )
        self._alock = asyncio.Lock()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = _UNSET,
        files: Any = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        auth: bool = True,
        check: bool = True,
    ) -> httpx.Response:
        method = method.upper()
        url = self.url(path)
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        content, extra = self._content(json)
        refreshed = False
        attempt = 0
        while True:
            if auth and self._needs_refresh():
                await self._try_refresh()
            all_headers = {**extra, **(self.auth_headers() if auth else {}), **(headers or {})}
            try:
                response = await self._http.request(
                    method,
                    url,
                    params=_clean(params),
                    content=content,
                    files=files,
                    data=data,
                    headers=all_headers,
                )
            except httpx.TransportError as error:
                delay = _retry_delay(self.retry, attempt, idempotent, error=error)
                if delay is None:
                    raise _transport_error(error, method, url) from error
                _rewind(files)
                await asyncio.sleep(delay)
                attempt += 1
                continue
            if response.status_code == 401 and auth and not refreshed and await self._try_refresh():
                refreshed = True
                _rewind(files)
                continue
            delay = _retry_delay(self.retry, attempt, idempotent, response=response)
            if delay is not None:
                await response.aclose()
                _rewind(files)
                await asyncio.sleep(delay)
                attempt += 1
                continue
            if check:
                check_response(response)
            return response

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        return decode_body(await self.send(method, path, **kwargs))

    async def get(self, path: str, **params: Any) -> Any:
        return await self.request("GET", path, params=params)

    async def post(self, path: str, json: Any = _UNSET, **params: Any) -> Any:
        return await self.request("POST", path, json=json, params=params)

    async def put(self, path: str, json: Any = _UNSET, **params: Any) -> Any:
        return await self.request("PUT", path, json=json, params=params)

    async def patch(self, path: str, json: Any = _UNSET, **params: Any) -> Any:
        return await self.request("PATCH", path, json=json, params=params)

    async def delete(self, path: str, json: Any = _UNSET, **params: Any) -> Any:
        return await self.request("DELETE", path, json=json, params=params)

    async def pages(self, path: str, **params: Any) -> AsyncIterator[dict[str, Any]]:
        page: Any = await self.get(path, **params)
        while True:
            if not isinstance(page, dict):
                raise RestHttpBaseException(f"Expected a paginated list from {self.url(path)}, got {page!r}")
            yield page
            next_url = page.get("next")
            if not next_url:
                return
            page = await self.request("GET", next_url)

    async def paginate(self, path: str, **params: Any) -> AsyncIterator[dict[str, Any]]:
        async for page in self.pages(path, **params):
            for item in page.get("results") or []:
                yield item

    async def login(self, email: str, password: str) -> dict[str, Any]:
        body = await self.request("POST", "auth/login/", json={"email": email, "password": password}, auth=False)
        with self._lock:
            self.token = body["jwt"]
            self.token_type = "jwt"
            self.username = body.get("username")
        return dict(body)

    async def logout(self) -> None:
        await self.send("POST", "auth/logout/")
        with self._lock:
            self.token = None
            self.username = None

    async def refresh_token(self) -> str:
        current = self.token
        fresh = _token_in(await self.request("POST", "auth/api-jwt-refresh/", json={"token": current}, auth=False))
        if fresh is None:
            raise RestHttpBaseException("The server answered the token refresh without a token")
        with self._lock:
            if self.token == current:
                self.token = fresh
            return str(self.token)

    async def _try_refresh(self) -> bool:
        async with self._alock:
            if not (self.auto_refresh and self.token and self.token_type == "jwt"):
                return False
            try:
                await self.refresh_token()
            except (RestHttpBaseException, ApiConnectionError):
                return False
            return True


def _token_in(body: Any) -> str | None:
    """The token of a refresh answer, if it has one."""
    token = body.get("token") if isinstance(body, dict) else None
    return str(token) if token else None


def _clean(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Drop None values; format datetimes and booleans the way the API expects."""
    if not params:
        return None
    out: dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue
        if hasattr(value, "isoformat") and hasattr(value, "tzinfo"):
            from iotile_cloud.utils.basic import datetime_to_str

            value = datetime_to_str(value)
        elif isinstance(value, bool):
            value = "1" if value else "0"
        out[key] = value
    return out


def _rewind(files: Any) -> None:
    """Seek uploaded file objects back to the start before a retry."""
    if not files:
        return
    values = files.values() if isinstance(files, Mapping) else [f for _, f in files]
    for value in values:
        fp = value[1] if isinstance(value, tuple) else value
        if hasattr(fp, "seek"):
            fp.seek(0)
