"""The 0.9.14 client facade: ``Api`` and ``RestResource``.

Scripts written for the original keep working::

    api = Api('https://iotile.cloud')
    api.login(email='me@example.com', password='secret')
    api.org('my-org').projects.get()
    for device in api.device.iterate(project='p--0000-0001'):   # new: every page, lazily
        ...

Every request goes through ``api.session``, a real ``requests.Session`` (mount adapters on it, fake
the cloud with ``requests_mock``), carried by the core :class:`~iotile_cloud.client.Client`, which
owns the retry, token refresh and error policy.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import weakref
from collections.abc import Iterator, MutableMapping
from typing import IO, Any

import httpx
import requests
from requests.adapters import HTTPAdapter

from iotile_cloud.client._core import (
    _UNSET,
    API_PREFIX,
    DEFAULT_DOMAIN,
    DEFAULT_TIMEOUT,
    NO_RETRY,
    Client,
    RetryPolicy,
    decode_content,
    http_error,
)
from iotile_cloud.client._requests import SessionTransport, native_response
from iotile_cloud.errors import (
    ApiConnectionError,
    HttpClientError,
    HttpCouldNotVerifyServerError,
    HttpNotFoundError,
    HttpServerError,
    ImproperlyConfigured,
    RestBaseException,
    RestHttpBaseException,
    SerializerNoRestailable,
    SerializerNotRestailable,
)

__all__ = [
    "Api",
    "RestResource",
    "DOMAIN_NAME",
    "API_PREFIX",
    "DEFAULT_HEADERS",
    "DEFAULT_TOKEN_TYPE",
    # 0.9.14 star-imported its exceptions into this module; code imports them from here.
    "RestBaseException",
    "RestHttpBaseException",
    "HttpClientError",
    "HttpNotFoundError",
    "HttpServerError",
    "HttpCouldNotVerifyServerError",
    "SerializerNoRestailable",
    "SerializerNotRestailable",
    "ImproperlyConfigured",
    "json",
    "logging",
    "requests",
    "logger",
]

logger = logging.getLogger(__name__)

DOMAIN_NAME = DEFAULT_DOMAIN
DEFAULT_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
DEFAULT_TOKEN_TYPE = "jwt"
_LIVE_KEYS = ("token", "token_type")


class _Store(MutableMapping[str, Any]):
    """A resource's keyword arguments (0.9.14's ``_store``).

    For a resource made from an :class:`Api`, ``token`` and ``token_type`` are read from the Api
    at each use (its current token, even after a later login or refresh) unless set here by hand.
    """

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = dict(values)
        api = self._values.get("api")
        self._live = set(_LIVE_KEYS) if api is not None else set()
        for key in self._live:
            self._values.setdefault(key, None)

    def __getitem__(self, key: str) -> Any:
        if key in self._live:
            return getattr(self._values["api"], key)
        return self._values[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._live.discard(key)
        self._values[key] = value

    def __delitem__(self, key: str) -> None:
        self._live.discard(key)
        del self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return repr(dict(self))


@contextlib.contextmanager
def _requests_errors() -> Iterator[None]:
    """Let ``requests``' own transport exceptions through, as 0.9.14 did.

    Code written for 0.9.14 catches ``requests.exceptions.ConnectionError`` and its tests expect
    ``requests_mock``'s ``NoMockAddress``; the core's retries have already run when this re-raises.
    """
    try:
        yield
    except ApiConnectionError as error:
        seen: BaseException | None = error
        while seen is not None:
            if isinstance(seen, requests.exceptions.RequestException):
                raise seen from error
            seen = seen.__cause__ or seen.__context__
        raise


# Resources made by hand (``RestResource(base_url=..., session=...)``) share one core client per session.
_CLIENTS: weakref.WeakKeyDictionary[requests.Session, Client] = weakref.WeakKeyDictionary()


def _client_for(session: requests.Session) -> Client:
    client = _CLIENTS.get(session)
    if client is None:
        ref = weakref.ref(session)

        def current() -> requests.Session:
            alive = ref()
            if alive is None:  # pragma: no cover - the resource holds its session
                raise RestBaseException("The resource's requests.Session is gone")
            return alive

        client = Client(retry=NO_RETRY, auto_refresh=False, transport=SessionTransport(current))
        _CLIENTS[session] = client
    return client


class RestResource:
    """One URL of the API; attribute access and calls build nested URLs.

    Keyword arguments as in 0.9.14: ``base_url`` (ends with ``/``), ``token``, ``token_type``,
    ``use_token`` and ``session`` (a ``requests.Session``; a new one when missing). Resources made
    from an :class:`Api` also get ``api`` and use its current token, retries and refresh.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._store: MutableMapping[str, Any] = _Store(kwargs)
        api = kwargs.get("api")
        session = kwargs.get("session")
        if session is None:
            session = api.session if api is not None else requests.Session()
        self._session: requests.Session = session
        self._store.setdefault("use_token", False)
        self._store.setdefault("token_type", DEFAULT_TOKEN_TYPE)
        self._store.setdefault("base_url", "")

    # -- URLs ---------------------------------------------------------------------------------

    def __call__(self, id: Any = None, action: str | None = None) -> RestResource:  # noqa: A002
        """``api.device(slug)`` -> ``.../device/<slug>/`` (``action`` appends one more part)."""
        kwargs = self._copy_kwargs(self._store)
        url = _slash(self._store["base_url"])
        for part in (id, action):
            if part is not None:
                url = f"{url}{part}/"
        kwargs["base_url"] = url
        kwargs["session"] = self._session
        return self._get_resource(**kwargs)

    def __getattr__(self, item: str) -> RestResource:
        # Don't allow access to 'private' by convention attributes.
        if item.startswith("_"):
            raise AttributeError(item)
        kwargs = self._copy_kwargs(self._store)
        kwargs["base_url"] = f"{_slash(self._store['base_url'])}{item}/"
        kwargs["session"] = self._session
        return self._get_resource(**kwargs)

    def __repr__(self) -> str:
        return f"<RestResource {self.url()}>"

    def _copy_kwargs(self, dictionary: Any) -> dict[str, Any]:
        return dict(self._iterator(dictionary))

    @staticmethod
    def _iterator(d: Any) -> Any:
        return d.items()

    def _get_resource(self, **kwargs: Any) -> RestResource:
        return self.__class__(**kwargs)

    def url(self) -> str:
        return str(self._store["base_url"])

    # -- requests -----------------------------------------------------------------------------

    def _get_header(self) -> dict[str, str]:
        """The headers of a request; no ``Authorization`` without a token (0.9.14 sent ``jwt None``)."""
        headers = DEFAULT_HEADERS.copy()
        token = self._store.get("token")
        if self._store.get("use_token") and token:
            headers["Authorization"] = f"{self._store.get('token_type') or DEFAULT_TOKEN_TYPE} {token}"
        return headers

    def _send(
        self,
        method: str,
        data: Any = _UNSET,
        params: dict[str, Any] | None = None,
        *,
        files: Any = None,
        form: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Send through the session (with the core's retries and refresh); the requests.Response."""
        api = self._store.get("api")
        headers = self._get_header() if headers is None else headers
        if api is not None:
            # The core client adds the api's current token, and refreshes it on a 401.
            headers = {k: v for k, v in headers.items() if k != "Authorization"}
            client, auth = api.client, bool(self._store.get("use_token"))
        else:
            client, auth = _client_for(self._session), False
        with _requests_errors():
            response = client.send(
                method,
                self.url(),
                json=data,
                params=params,
                files=files,
                data=form,
                headers=headers,
                auth=auth,
                check=False,
            )
        return native_response(response)

    def _check_for_errors(self, resp: Any, url: str) -> None:
        """Raise the typed error for a 4xx/5xx answer (``resp``: a requests or httpx response)."""
        if 400 <= resp.status_code <= 599:
            method = getattr(getattr(resp, "request", None), "method", None) or "GET"
            raise http_error(resp.status_code, method, url, resp.content, resp)

    def _try_to_serialize_response(self, resp: Any) -> Any:
        return decode_content(resp.status_code, resp.content)

    def _process_response(self, resp: Any) -> Any:
        self._check_for_errors(resp, self.url())
        if 200 <= resp.status_code <= 299:
            return self._try_to_serialize_response(resp)
        return None

    def _handle_redirect(self, resp: Any, **kwargs: Any) -> Any:
        kwargs_copy = self._copy_kwargs(self._store)
        kwargs_copy.update(base_url=resp.headers["location"], session=self._session)
        return self._get_resource(**kwargs_copy).get(**kwargs)

    def get(self, **kwargs: Any) -> Any:
        return self._process_response(self._send("GET", params=kwargs))

    def post(self, data: Any = None, **kwargs: Any) -> Any:
        return self._process_response(self._send("POST", _body(data), kwargs))

    def patch(self, data: Any = None, **kwargs: Any) -> Any:
        return self._process_response(self._send("PATCH", _body(data), kwargs))

    def put(self, data: Any = None, **kwargs: Any) -> Any:
        return self._process_response(self._send("PUT", _body(data), kwargs))

    def delete(self, data: Any = None, **kwargs: Any) -> bool:
        """True on 2xx, False otherwise (as in 0.9.14, it never raises for an HTTP status)."""
        return 200 <= self._send("DELETE", _body(data), kwargs).status_code <= 299

    def upload_fp(self, fp: IO[bytes], data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """Multipart POST: the file as field ``file``, ``data`` as form fields."""
        # The file's own name, else the field's (as requests named it for 0.9.14).
        name = os.path.basename(str(getattr(fp, "name", "") or "")) or "file"
        headers = {k: v for k, v in self._get_header().items() if k != "Content-Type"}
        logger.debug("Uploading file to %s", self.url())
        response = self._send(
            "POST",
            params=kwargs,
            files={"file": (name, fp)},
            form={k: _form(v) for k, v in (data or {}).items()},
            headers=headers,
        )
        return self._process_response(response)

    def upload_file(self, filename: str, data: dict[str, Any] | None = None, mode: str = "rb", **kwargs: Any) -> Any:
        with open(filename, mode) as fp:
            return self.upload_fp(fp, data, **kwargs)

    def iterate(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every item of this list endpoint, following ``next`` links one page at a time."""
        return self._core().paginate(self.url(), **kwargs)

    def pages(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        return self._core().pages(self.url(), **kwargs)

    def _core(self) -> Client:
        api = self._store.get("api")
        return api.client if api is not None else _client_for(self._session)


def _slash(url: str) -> str:
    return url if url.endswith("/") else f"{url}/"


def _body(data: Any) -> Any:
    # 0.9.14 dropped empty dicts and lists; they are real bodies.
    return _UNSET if data is None else data


def _form(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


class _TimeoutHTTPAdapter(HTTPAdapter):
    """A requests adapter that sets a timeout on every request.

    0.9.14 mounted one on ``Api.session`` for ``timeout``/``retries``; the core client now applies
    both (with backoff), so ``Api`` no longer mounts it. Kept for code that imports it.
    """

    def __init__(self, timeout: Any = None, *args: Any, **kwargs: Any) -> None:
        self.timeout = timeout
        super().__init__(*args, **kwargs)

    def send(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["timeout"] = self.timeout
        return super().send(*args, **kwargs)


class Api:
    """Entry point of the 0.9.14 client: ``Api(domain).login(email=..., password=...)``.

    ``session`` is the ``requests.Session`` every request goes through (``verify`` as given: a bool
    or a CA bundle path).
    ``timeout`` applies to every request (default: 60 s read, 10 s connect). ``retries`` is the
    number of retries of idempotent requests on connection errors, 429 and 502/503/504, with
    jittered exponential backoff; None means no retries, as in 0.9.14, and a timeout alone never
    turns retries on. ``verify=False`` disables TLS verification whatever the environment says.
    ``auto_refresh=True`` renews a JWT shortly before it expires and once after a 401 (off by
    default: 0.9.14 never did, and tests that fake the cloud count its requests).
    ``transport`` (an httpx transport) replaces the session, for fault-injection tests.
    """

    domain = DOMAIN_NAME
    resource_class = RestResource

    def __init__(
        self,
        domain: str | None = None,
        token_type: str | None = None,
        verify: bool | str = True,
        timeout: float | httpx.Timeout | None = None,
        retries: int | RetryPolicy | None = None,
        *,
        auto_refresh: bool = False,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.domain = (domain or self.domain).rstrip("/")
        self.base_url = f"{self.domain}/{API_PREFIX}"
        self.use_token = True
        self.session = requests.Session()
        self.session.verify = verify
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
            # 0.9.14 never refreshed by itself: a 401 stays a 401 unless the caller opts in.
            auto_refresh=auto_refresh,
            transport=transport or SessionTransport(lambda: self.session),
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
        """True and the token stored on success; False (logged) when the server refuses.

        Transport failures raise (``HttpCouldNotVerifyServerError`` for a TLS certificate that does
        not verify, ``ApiConnectionError`` otherwise).
        """
        try:
            with _requests_errors():
                body = self.client.request(
                    "POST", "auth/login/", json={"email": email, "password": password}, auth=False
                )
        except (HttpClientError, HttpServerError) as error:
            logger.error("Login failed: %s", error)
            return False
        token = body.get(self.token_type) or body.get("jwt") if isinstance(body, dict) else None
        if not token:
            logger.error("Login failed: the server answered without a token")
            return False
        self.client.set_token(token)
        self.client.username = body.get("username")
        logger.debug("Welcome @%s", self.username)
        return True

    def logout(self) -> bool:
        with _requests_errors():
            response = self.client.send("POST", "auth/logout/", check=False)
        if response.status_code == 204:
            logger.debug("Goodbye @%s", self.username)
            self.client.set_token(None)
            self.client.username = None
            return True
        logger.error("Logout failed: %s %s", response.status_code, response.text[:200])
        return False

    def refresh_token(self) -> bool:
        """Swap in a fresh JWT: True; on any answer without a token, clear the token and return False."""
        with _requests_errors():
            renewed = self.client.renew_token(check=False)
        if renewed is None:
            logger.error("Token refresh failed: the server answered without a token")
            self.client.set_token(None)
            return False
        logger.info("Token refreshed")
        return True

    def close(self) -> None:
        """Close the connection pools (the session's and the core client's); the Api is done after."""
        self.client.close()
        self.session.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __getattr__(self, item: str) -> RestResource:
        """``api.<name>``: the resource ``<base_url>/<name>/``."""
        # Don't allow access to 'private' by convention attributes.
        if item.startswith("_"):
            raise AttributeError(item)
        return self._get_resource(
            token=self.token,
            base_url=f"{self.base_url}/{item}/",
            use_token=self.use_token,
            token_type=self.token_type,
            session=self.session,
            api=self,
        )

    def _get_resource(self, **kwargs: Any) -> RestResource:
        return self.resource_class(**kwargs)

    def __repr__(self) -> str:
        return f"<Api {self.base_url}>"
