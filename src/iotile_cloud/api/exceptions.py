"""The exception classes of 0.9.14, and the typed ones added since: they live in ``iotile_cloud.errors``
(shared with the core client) and are re-exported here unchanged."""

from iotile_cloud.errors import (
    ApiConnectionError,
    ApiTimeoutError,
    HttpBadRequestError,
    HttpClientError,
    HttpConflictError,
    HttpCouldNotVerifyServerError,
    HttpForbiddenError,
    HttpNotFoundError,
    HttpServerError,
    HttpTooManyRequestsError,
    HttpUnauthorizedError,
    ImproperlyConfigured,
    RestBaseException,
    RestHttpBaseException,
    SerializerNoRestailable,
    SerializerNotRestailable,
    error_for_status,
)

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
