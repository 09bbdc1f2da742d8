"""The 0.9.14 client facade: ``Api`` and ``RestResource``, a thin layer over :class:`Client`.

Scripts written for the original keep working::

    api = Api('https://iotile.cloud')
    api.login(email='me@example.com', password='secret')
    api.org('my-org').projects.get()
    for device in api.device.iterate(project='p--0000-0001'):   # new: every page, lazily
        ...
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import IO, Any

import httpx

from iotile_cloud.api.exceptions import RestHttpBaseException
from iotile_cloud.client._core import (
    _UNSET,
    API_PREFIX,
    DEFAULT_DOMAIN,
    DEFAULT_TIMEOUT,
    NO_RETRY,
    Client,
    RetryPolicy,
    decode_body,
)

__all__ = ["Api", "RestResource", "DOMAIN_NAME", "API_PREFIX", "DEFAULT_HEADERS", "DEFAULT_TOKEN_TYPE"]

logger = logging.getLogger(__name__)

DOMAIN_NAME = DEFAULT_DOMAIN
DEFAULT_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
DEFAULT_TOKEN_TYPE = "jwt"


class RestResource:
    """One URL of the API; attribute access and calls build nested URLs."""

    def __init__(self, api: Api, base_url: str) -> None:
        self._api = api
        self._base_url = base_url.rstrip("/")

    def __getattr__(self, item: str) -> RestResource:
        if item.startswith("_"):
            raise AttributeError(item)
        return RestResource(self._api, f"{self._base_url}/{item}")

    def __call__(self, id: Any = None, action: str | None = None) -> RestResource:  # noqa: A002
        url = self._base_url
        if id is not None:
            url = f"{url}/{id}"
        if action is not None:
            url = f"{url}/{action}"
        return RestResource(self._api, url)

    def __repr__(self) -> str:
        return f"<RestResource {self.url()}>"

    def url(self) -> str:
        return f"{self._base_url}/"

    def _request(self, method: str, data: Any = _UNSET, params: dict[str, Any] | None = None) -> Any:
        return self._api.client.request(method, self.url(), json=data, params=params)

    def get(self, **kwargs: Any) -> Any:
        return self._request("GET", params=kwargs)

    def post(self, data: Any = None, **kwargs: Any) -> Any:
        return self._request("POST", _body(data), kwargs)

    def patch(self, data: Any = None, **kwargs: Any) -> Any:
        return self._request("PATCH", _body(data), kwargs)

    def put(self, data: Any = None, **kwargs: Any) -> Any:
        return self._request("PUT", _body(data), kwargs)

    def delete(self, data: Any = None, **kwargs: Any) -> bool:
        """True on 2xx, False otherwise (as in 0.9.14, it never raises for an HTTP status)."""
        response = self._api.client.send("DELETE", self.url(), json=_body(data), params=kwargs, check=False)
        return response.is_success

    def upload_fp(self, fp: IO[bytes], data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """Multipart POST: the file as field ``file``, ``data`` as form fields."""
        name = os.path.basename(getattr(fp, "name", "") or "upload")
        return decode_body(
            self._api.client.send(
                "POST",
                self.url(),
                params=kwargs,
                files={"file": (name, fp)},
                data={k: _form(v) for k, v in (data or {}).items()},
            )
        )

    def upload_file(self, filename: str, data: dict[str, Any] | None = None, mode: str = "rb", **kwargs: Any) -> Any:
        with open(filename, mode) as fp:
            return self.upload_fp(fp, data, **kwargs)

    def iterate(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every item of this list endpoint, following ``next`` links one page at a time."""
        return self._api.client.paginate(self.url(), **kwargs)

    def pages(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        return self._api.client.pages(self.url(), **kwargs)


def _body(data: Any) -> Any:
    # 0.9.14 dropped empty dicts and lists; they are real bodies.
    return _UNSET if data is None else data


def _form(value: Any) -> str:
    if isinstance(value, (dict, list)):
        import orjson

        return orjson.dumps(value).decode()
    return str(value)


class Api:
    """Entry point of the 0.9.14 client: ``Api(domain).login(email=..., password=...)``.

    ``timeout`` applies to every request (default: 60 s read, 10 s connect). ``retries`` is the
    number of retries of idempotent requests on connection errors, 429 and 502/503/504, with
    jittered exponential backoff; None means no retries, as in 0.9.14, and a timeout alone never
    turns retries on. ``verify=False`` disables TLS verification whatever the environment says.
    """

    resource_class = RestResource

    def __init__(
        self,
        domain: str | None = None,
        token_type: str | None = None,
        verify: bool = True,
        timeout: float | httpx.Timeout | None = None,
        retries: int | RetryPolicy | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.domain = (domain or DOMAIN_NAME).rstrip("/")
        self.base_url = f"{self.domain}/{API_PREFIX}"
        if isinstance(retries, RetryPolicy):
            policy = retries
        elif retries:
            policy = RetryPolicy(max_retries=int(retries))
        else:
            policy = NO_RETRY
        self.client = Client(
            self.domain,
            token_type=token_type or DEFAULT_TOKEN_TYPE,
            timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
            retry=policy,
            verify=verify,
            transport=transport,
        )

    # Token state lives in the client so every resource sees the current token.
    @property
    def token(self) -> str | None:
        return self.client.token

    @token.setter
    def token(self, value: str | None) -> None:
        self.client.set_token(value)

    @property
    def token_type(self) -> str:
        return self.client.token_type

    @token_type.setter
    def token_type(self, value: str) -> None:
        self.client.token_type = value

    @property
    def username(self) -> str | None:
        return self.client.username

    @username.setter
    def username(self, value: str | None) -> None:
        self.client.username = value

    def set_token(self, token: str | None, token_type: str | None = None) -> None:
        self.client.set_token(token, token_type)

    def login(self, password: str, email: str) -> bool:
        """True and the token stored on success; False (logged) when the server refuses."""
        try:
            body = self.client.request("POST", "auth/login/", json={"email": email, "password": password}, auth=False)
        except RestHttpBaseException as error:
            logger.error("Login failed: %s", error)
            return False
        token = body.get(self.token_type) if isinstance(body, dict) else None
        if not token:
            token = body.get("jwt") if isinstance(body, dict) else None
        if not token:
            logger.error("Login failed: the server answered without a token")
            return False
        self.client.set_token(token)
        self.client.username = body.get("username")
        return True

    def logout(self) -> bool:
        response = self.client.send("POST", "auth/logout/", check=False)
        if response.status_code == 204:
            self.client.set_token(None)
            self.client.username = None
            return True
        logger.error("Logout failed: %s %s", response.status_code, response.text[:200])
        return False

    def refresh_token(self) -> bool:
        """Swap in a fresh JWT; on failure clear the token and return False."""
        try:
            self.client.refresh_token()
        except RestHttpBaseException as error:
            logger.error("Token refresh failed: %s", error)
            self.client.set_token(None)
            return False
        return True

    def __getattr__(self, item: str) -> RestResource:
        if item.startswith("_"):
            raise AttributeError(item)
        return self.resource_class(self, f"{self.base_url}/{item}")

    def __repr__(self) -> str:
        return f"<Api {self.base_url}>"
