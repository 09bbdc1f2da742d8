"""The modern client: typed, with retries, timeouts, token refresh and pagination.

``Client`` and ``AsyncClient`` speak HTTP; ``iotile_cloud.api.connection.Api`` is the 0.9.14
facade over ``Client``.
"""

from iotile_cloud.client._core import (
    API_PREFIX,
    DEFAULT_DOMAIN,
    DEFAULT_TIMEOUT,
    NO_RETRY,
    AsyncClient,
    Client,
    RetryPolicy,
)

__all__ = ["API_PREFIX", "DEFAULT_DOMAIN", "DEFAULT_TIMEOUT", "NO_RETRY", "AsyncClient", "Client", "RetryPolicy"]
