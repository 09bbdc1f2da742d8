"""Exceptions raised by the client (the core and the 0.9.14 facade raise the same classes).

``iotile_cloud.api.exceptions`` re-exports every name of this module unchanged.

The hierarchy keeps every class of 0.9.14 and adds one class per meaningful status::

    RestBaseException
    ├── RestHttpBaseException            (keyword args become attributes: response, content, ...)
    │   ├── HttpClientError              4xx
    │   │   ├── HttpBadRequestError      400
    │   │   ├── HttpUnauthorizedError    401
    │   │   ├── HttpForbiddenError       403
    │   │   ├── HttpNotFoundError        404
    │   │   ├── HttpConflictError        409
    │   │   └── HttpTooManyRequestsError 429
    │   ├── HttpServerError              5xx
    │   └── HttpCouldNotVerifyServerError  TLS verification failed
    ├── ApiConnectionError               could not connect / connection reset (also a ConnectionError)
    │   └── ApiTimeoutError              timed out (also a TimeoutError)
    ├── SerializerNoRestailable / SerializerNotRestailable
    └── ImproperlyConfigured

Every HTTP error carries ``status_code``, ``method``, ``url``, ``detail`` (the server's message, a
string or the field-error dict) and ``content`` (the raw body), and its ``str()`` reads
``Client Error 404: <url> (Not found.)``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "RestBaseException",
    "RestHttpBaseException",
    "HttpClientError",
    "HttpBadRequestError",
    "HttpUnauthorizedError",
    "HttpForbiddenError",
    "HttpNotFoundError",
    "HttpConflictError",
    "HttpTooManyRequestsError",
    "HttpServerError",
    "HttpCouldNotVerifyServerError",
    "ApiConnectionError",
    "ApiTimeoutError",
    "SerializerNoRestailable",
    "SerializerNotRestailable",
    "ImproperlyConfigured",
    "error_for_status",
]


class RestBaseException(Exception):
    """Base of every exception raised by this package's client."""


class RestHttpBaseException(RestBaseException):
    """An HTTP exchange failed. Keyword arguments become attributes (``response``, ``content``)."""

    response: Any = None
    content: Any = None
    status_code: int | None = None
    method: str | None = None
    url: str | None = None
    detail: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        for key, value in kwargs.items():
            setattr(self, key, value)
        super().__init__(*args)


class HttpClientError(RestHttpBaseException):
    """4xx."""


class HttpBadRequestError(HttpClientError):
    """400: the server refused the input; ``detail`` holds its reasons."""


class HttpUnauthorizedError(HttpClientError):
    """401: missing, invalid or expired credentials."""


class HttpForbiddenError(HttpClientError):
    """403: authenticated but not allowed."""


class HttpNotFoundError(HttpClientError):
    """404."""


class HttpConflictError(HttpClientError):
    """409."""


class HttpTooManyRequestsError(HttpClientError):
    """429: throttled; ``retry_after`` holds the server's hint in seconds when it gave one."""

    retry_after: float | None = None


class HttpServerError(RestHttpBaseException):
    """5xx."""


class HttpCouldNotVerifyServerError(RestHttpBaseException):
    """The server's TLS certificate could not be verified."""


class ApiConnectionError(RestBaseException, ConnectionError):
    """The request could not be sent or its answer was cut off (after any retries)."""

    def __init__(self, message: str, *, method: str | None = None, url: str | None = None) -> None:
        super().__init__(message)
        self.method = method
        self.url = url


class ApiTimeoutError(ApiConnectionError, TimeoutError):
    """The server did not answer in time (after any retries)."""


class SerializerNoRestailable(RestBaseException):
    pass


# Both spellings existed in 0.9.14.
class SerializerNotRestailable(SerializerNoRestailable):
    pass


class ImproperlyConfigured(RestBaseException):
    pass


_BY_STATUS: dict[int, type[RestHttpBaseException]] = {
    400: HttpBadRequestError,
    401: HttpUnauthorizedError,
    403: HttpForbiddenError,
    404: HttpNotFoundError,
    409: HttpConflictError,
    429: HttpTooManyRequestsError,
}


def _describe(detail: Any) -> str:
    """One readable line from a DRF error body: a string, ``{"detail"}``, field errors or a list."""
    if detail is None or detail == "" or detail == b"":
        return ""
    if isinstance(detail, bytes):
        text = detail.decode("utf-8", "replace").strip()
        return text[:300]
    if isinstance(detail, str):
        return detail
    if isinstance(detail, dict):
        for key in ("detail", "error"):
            if key in detail and len(detail) == 1:
                return _describe(detail[key])
        return "; ".join(f"{k}: {_describe(v)}" for k, v in detail.items())
    if isinstance(detail, list):
        return "; ".join(_describe(v) for v in detail if v not in ({}, None))
    return str(detail)


def error_for_status(
    status_code: int, method: str, url: str, detail: Any, content: Any, response: Any = None
) -> RestHttpBaseException:
    """Build the exception for a failed response (not raised here)."""
    if 500 <= status_code <= 599:
        cls: type[RestHttpBaseException] = HttpServerError
        prefix = "Server Error"
    else:
        cls = _BY_STATUS.get(status_code, HttpClientError)
        prefix = "Client Error"
    message = f"{prefix} {status_code}: {url}"
    described = _describe(detail)
    if described:
        message += f" ({described})"
    return cls(
        message,
        response=response,
        content=content,
        status_code=status_code,
        method=method,
        url=url,
        detail=detail,
    )
