"""An httpx transport that sends every request through a ``requests.Session``.

The 0.9.14 facade promises ``api.session`` is a real ``requests.Session``: users mount adapters on
it, set ``verify``, headers or proxies, and fake the cloud with ``requests_mock``. With this
transport under the core :class:`~iotile_cloud.client.Client`, all of that holds while the retry,
refresh and error policy stays in one place (the core). ``requests`` failures are turned into the
httpx errors the core's retry decisions understand.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import requests
import urllib3.exceptions
import urllib3.response

from iotile_cloud.client._core import STREAM_EXTENSION

__all__ = ["SessionTransport", "RESPONSE_EXTENSION", "native_response"]

# httpx response extension: the requests.Response behind an httpx one.
RESPONSE_EXTENSION = "requests_response"
# requests sets these itself (and undoes the compression), so they must not be forwarded.
_REQUEST_HEADERS_SKIPPED = frozenset({"host", "content-length", "connection", "accept-encoding", "transfer-encoding"})
_RESPONSE_HEADERS_SKIPPED = frozenset({"content-encoding", "content-length", "transfer-encoding"})
_CHUNK = 1 << 20


def native_response(response: httpx.Response) -> Any:
    """The requests.Response an httpx response was made from (the httpx one without a session)."""
    return response.extensions.get(RESPONSE_EXTENSION, response)


def _find(error: BaseException, kind: type[BaseException] | tuple[type[BaseException], ...]) -> BaseException | None:
    """The first exception of ``kind`` in an error's causes, contexts, ``reason`` and ``args``."""
    seen: set[int] = set()
    todo: list[Any] = [error]
    while todo:
        item = todo.pop(0)
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, kind):
            return item
        todo.extend([item.__cause__, item.__context__, getattr(item, "reason", None), *item.args])
    return None


def _as_httpx(error: requests.exceptions.RequestException, request: httpx.Request) -> Exception:
    """The httpx error with the same meaning for the core's retry and error decisions."""
    message = str(error)
    if isinstance(error, requests.exceptions.SSLError):
        failure = httpx.ConnectError(message, request=request)
        failure.__cause__ = _find(error, ssl.SSLCertVerificationError) or error
        return failure
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return httpx.ConnectTimeout(message, request=request)
    if isinstance(error, requests.exceptions.Timeout):
        return httpx.ReadTimeout(message, request=request)
    if isinstance(error, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
        return httpx.ReadError(message, request=request)
    if isinstance(error, requests.exceptions.ConnectionError):
        # A reset after the request went out may have reached the server: not "never sent".
        if _find(error, urllib3.exceptions.ProtocolError) is not None:
            return httpx.RemoteProtocolError(message, request=request)
        return httpx.ConnectError(message, request=request)
    return error  # invalid URLs, too many redirects...: raised as requests raised them (as 0.9.14)


def _read_whole(answer: requests.Response) -> None:
    """Read a body as ``requests`` does without ``stream=True`` (so ``answer.content`` works for the
    caller's hooks and after), in large pieces when it comes from urllib3, and give the connection
    back. An answer made some other way (a user's adapter) is read as requests would read it."""
    if answer._content is not False or not isinstance(answer.raw, urllib3.response.BaseHTTPResponse):
        answer.content  # noqa: B018 - reading it is the point
        return
    try:
        answer._content = b"".join(answer.iter_content(_CHUNK)) or b""
    finally:
        answer._content_consumed = True
        answer.close()


class _Body(httpx.SyncByteStream):
    def __init__(self, response: requests.Response, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._response.iter_content(_CHUNK)
        except requests.exceptions.RequestException as error:
            raise _as_httpx(error, self._request) from error

    def close(self) -> None:
        self._response.close()


class SessionTransport(httpx.BaseTransport):
    """Hands each httpx request to ``session()`` (looked up per request, so a replaced
    ``api.session`` is honoured) with the request's timeouts and the session's own ``verify``."""

    def __init__(self, session: Callable[[], requests.Session]) -> None:
        self._session = session

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session()
        timeout = request.extensions.get("timeout") or {}
        streaming = bool(request.extensions.get(STREAM_EXTENSION))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _REQUEST_HEADERS_SKIPPED}
        try:
            answer = session.request(
                request.method,
                str(request.url),
                data=request.read() or None,
                headers=headers,
                timeout=(timeout.get("connect"), timeout.get("read")),
                # Per request, so verify=False wins over REQUESTS_CA_BUNDLE (a requests quirk).
                verify=session.verify,
                # Always streamed: a body read whole by requests comes in 10 KiB pieces, each a trip
                # through urllib3 (a 6 MB page: ~600 of them); read below in 1 MiB pieces instead.
                stream=True,
            )
            if not streaming:
                _read_whole(answer)
        except requests.exceptions.RequestException as error:
            raise _as_httpx(error, request) from error
        response_headers = [(k, v) for k, v in answer.headers.items() if k.lower() not in _RESPONSE_HEADERS_SKIPPED]
        extensions = {RESPONSE_EXTENSION: answer}
        if streaming:
            return httpx.Response(
                answer.status_code,
                headers=response_headers,
                stream=_Body(answer, request),
                request=request,
                extensions=extensions,
            )
        return httpx.Response(
            answer.status_code, headers=response_headers, content=answer.content, request=request, extensions=extensions
        )
