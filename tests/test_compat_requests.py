"""The facade over a real ``requests.Session``: requests_mock, mounted adapters, ``api.session`` used
directly, typed errors carrying the requests response, token refresh edge cases, the data paths."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from typing import Any

import pytest
import requests
import requests_mock
from requests.adapters import BaseAdapter, HTTPAdapter

from iotile_cloud.api.connection import Api, RestResource
from iotile_cloud.api.exceptions import (
    HttpClientError,
    HttpConflictError,
    HttpForbiddenError,
    HttpNotFoundError,
    HttpTooManyRequestsError,
    HttpUnauthorizedError,
    RestHttpBaseException,
)
from iotile_cloud.client import RetryPolicy
from iotile_cloud.stream.data import RawData, StreamData, UnexpectedPageError
from iotile_cloud.stream.report import AccumulationReportGenerator
from iotile_cloud.testing.cloud import CloudHelper

from .original_client import run_original

DOMAIN = "http://iotile.test"
BASE = f"{DOMAIN}/api/v1"


class CountingAdapter(HTTPAdapter):
    """A user's adapter mounted on ``api.session``: every request must pass through it."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.urls.append(str(request.url))
        return super().send(request, **kwargs)


# -- requests_mock around Api ------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, kind, reason",
    [
        (401, HttpUnauthorizedError, "Authentication credentials were not provided."),
        (403, HttpForbiddenError, "You do not have permission to perform this action."),
        (404, HttpNotFoundError, "Not found."),
        (409, HttpConflictError, "Already claimed."),
        (429, HttpTooManyRequestsError, "Request was throttled."),
    ],
)
def test_typed_errors_carry_the_requests_response(status: int, kind: type, reason: str) -> None:
    with requests_mock.Mocker() as m:
        m.get(f"{BASE}/org/x/", status_code=status, json={"detail": reason}, headers={"Retry-After": "7"})
        with pytest.raises(HttpClientError) as info:
            Api(domain=DOMAIN).org("x").get()
    error = info.value
    assert type(error) is kind and isinstance(error, RestHttpBaseException)
    assert str(error) == f"Client Error {status}: {BASE}/org/x/ ({reason})"
    assert isinstance(error.response, requests.Response) and error.response.status_code == status
    assert json.loads(error.content) == {"detail": reason}
    if status == 429:
        assert error.retry_after == 7.0


def test_bodies_parse_as_json_whatever_the_content_type() -> None:
    with requests_mock.Mocker() as m:
        api = Api(domain=DOMAIN)
        m.get(f"{BASE}/a/", text='{"x": 1}', headers={"Content-Type": "text/plain"})
        m.get(f"{BASE}/b/", text="row,value\n1,2\n", headers={"Content-Type": "application/json"})
        m.get(f"{BASE}/c/", status_code=204)
        m.get(f"{BASE}/d/", status_code=205, text="ignored")
        m.get(f"{BASE}/e/", content=b"")
        assert api.a.get() == {"x": 1}
        assert api.b.get() == b"row,value\n1,2\n"
        assert api.c.get() is None and api.d.get() is None
        assert api.e.get() == b""  # 0.9.14 gave the (empty) content back


@pytest.mark.parametrize(
    "answer",
    [
        {"status_code": 204},
        {"status_code": 200, "json": {"detail": "no token here"}},
        {"status_code": 200, "text": "<html>maintenance</html>"},
        {"status_code": 400, "json": {"non_field_errors": ["Signature has expired."]}},
    ],
)
def test_refresh_without_a_token_returns_false_and_clears(answer: dict[str, Any]) -> None:
    with requests_mock.Mocker() as m:
        m.post(f"{BASE}/auth/api-jwt-refresh/", **answer)
        api = Api(domain=DOMAIN)
        api.set_token("old")
        assert api.refresh_token() is False
        assert api.token is None


def test_requests_mock_around_api_login_verbs_and_upload() -> None:
    api = Api(domain=DOMAIN, verify=False)
    assert isinstance(api.session, requests.Session) and api.session.verify is False
    with requests_mock.Mocker() as m:
        m.post(f"{BASE}/auth/login/", json={"jwt": "t1", "username": "u"})
        m.get(f"{BASE}/org/", json={"count": 0, "next": None, "results": []})
        m.post(f"{BASE}/streamer/report/", json={"count": 3})
        m.post(f"{BASE}/auth/logout/", status_code=204)
        assert api.login(email="u@x.com", password="p")
        assert m.request_history[0].json() == {"email": "u@x.com", "password": "p"}
        assert api.org.get()["count"] == 0
        assert m.last_request.headers["Authorization"] == "jwt t1"
        assert api.streamer.report.upload_fp(_named(b"abc", "r.bin"), data={"note": "n"}, timestamp="t")["count"] == 3
        upload = m.last_request
        assert upload.headers["Authorization"] == "jwt t1"
        assert upload.headers["Content-Type"].startswith("multipart/form-data")
        assert b'name="file"; filename="r.bin"' in upload.body and b'name="note"' in upload.body
        assert upload.qs == {"timestamp": ["t"]}
        assert api.logout() is True and api.token is None
        assert m.call_count == 4


class AnsweringAdapter(BaseAdapter):
    """A user's own adapter mounted on ``api.session``: it answers every request itself."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[requests.PreparedRequest, dict[str, Any]]] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.seen.append((request, kwargs))
        response = requests.Response()
        response.status_code, response.url, response.request = 200, str(request.url), request
        response._content = b'{"ok": true}'
        return response

    def close(self) -> None:
        pass


def test_a_mounted_adapter_carries_every_request() -> None:
    api = Api(domain=DOMAIN, verify=False, timeout=5)
    adapter = AnsweringAdapter()
    api.session.mount(DOMAIN, adapter)
    api.set_token("t")
    assert api.org.get() == {"ok": True}
    assert api.device("d--0001").patch({"sg": "x"}) == {"ok": True}
    assert api.refresh_token() is False  # answered without a token
    (get, options), (patch, _), (refresh, _) = adapter.seen
    assert get.headers["Authorization"] == "jwt t" and options["verify"] is False
    assert options["timeout"] == (5, 5)
    assert (patch.method, json.loads(patch.body)) == ("PATCH", {"sg": "x"})
    assert refresh.url == f"{BASE}/auth/api-jwt-refresh/" and "Authorization" not in refresh.headers


def _named(data: bytes, name: str) -> Any:
    import io

    fp = io.BytesIO(data)
    fp.name = name
    return fp


def test_resources_made_by_hand_and_the_store() -> None:
    session = requests.Session()
    with requests_mock.Mocker() as m:
        m.get(f"{BASE}/org/x/projects/", json={"results": [1]})
        m.get(f"{BASE}/org/", json={"results": []})
        resource = RestResource(base_url=f"{BASE}/org/", session=session, token="T", token_type="jwt", use_token=True)
        assert resource._session is session
        assert resource("x").projects.get() == {"results": [1]}
        assert m.last_request.headers["Authorization"] == "jwt T"
        assert resource._get_header()["Authorization"] == "jwt T"
        RestResource(base_url=f"{BASE}/org/").get()  # no token: no Authorization header at all
        assert "Authorization" not in m.last_request.headers

        api = Api(domain=DOMAIN)
        early = api.org  # made before the token existed
        api.set_token("fresh", token_type="a-jwt")
        assert (early._store["token"], early._store["token_type"]) == ("fresh", "a-jwt")
        assert dict(early._copy_kwargs(early._store))["token"] == "fresh"
        early.get()
        assert m.last_request.headers["Authorization"] == "a-jwt fresh"
        early._store["token"] = "pinned"  # set by hand: kept
        assert early._store["token"] == "pinned"


def test_retries_and_refresh_through_the_session() -> None:
    with requests_mock.Mocker() as m:
        m.get(f"{BASE}/org/", [{"status_code": 503}, {"status_code": 200, "json": {"ok": True}}])
        m.post(f"{BASE}/org/", status_code=503)
        api = Api(domain=DOMAIN, retries=RetryPolicy(max_retries=2, backoff_factor=0.001))
        assert api.org.get() == {"ok": True}
        with pytest.raises(RestHttpBaseException):
            api.org.post({"name": "x"})  # not idempotent: not repeated
        assert [r.method for r in m.request_history] == ["GET", "GET", "POST"]

    with requests_mock.Mocker() as m:
        m.get(f"{BASE}/device/", [{"status_code": 401}, {"status_code": 200, "json": {"count": 0}}])
        m.post(f"{BASE}/auth/api-jwt-refresh/", json={"token": "new"})
        api = Api(domain=DOMAIN, auto_refresh=True)  # opt-in: 0.9.14 never refreshed by itself
        api.set_token("old")
        assert api.device.get() == {"count": 0}
        assert [r.headers.get("Authorization") for r in m.request_history] == ["jwt old", None, "jwt new"]

    with requests_mock.Mocker() as m:
        m.get(f"{BASE}/device/", status_code=401)
        api = Api(domain=DOMAIN)
        api.set_token("old")
        with pytest.raises(HttpClientError):
            api.device.get()  # as 0.9.14: one request, no refresh behind the caller's back
        assert m.call_count == 1


def test_transport_failures_are_requests_own() -> None:
    """As 0.9.14: requests' exceptions reach the caller (and requests_mock's NoMockAddress)."""
    with requests_mock.Mocker() as m:
        m.get(f"{BASE}/slow/", exc=requests.exceptions.ReadTimeout)
        m.get(f"{BASE}/down/", exc=requests.exceptions.ConnectionError)
        api = Api(domain=DOMAIN, timeout=1)
        with pytest.raises(requests.exceptions.ReadTimeout):
            api.slow.get()
        with pytest.raises(requests.exceptions.ConnectionError):
            api.down.get()
        assert m.call_count == 2  # a timeout alone never turns retries on
        with pytest.raises(requests_mock.exceptions.NoMockAddress):
            api.unregistered.get()
        with pytest.raises(requests_mock.exceptions.NoMockAddress):
            api.login(email="a@b.c", password="x")


def _points(n: int, start: int = 0) -> list[dict[str, Any]]:
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    return [
        {"timestamp": (t0 + dt.timedelta(seconds=i)).isoformat(), "int_value": i, "output_value": float(i)}
        for i in range(start, start + n)
    ]


def test_stream_data_under_requests_mock_uses_json_pages() -> None:
    """A big ``count`` makes StreamData try the Arrow stream; unregistered, it silently reads pages
    (item pages, from a server that does not know the columns pages)."""
    pages = {1: _points(3), 2: _points(2, 3)}

    def page(request: Any, context: Any) -> str:
        number = int(request.qs.get("page", ["1"])[0])
        has_next = number < len(pages)
        return json.dumps(
            {"count": 10**6, "next": f"{BASE}/x/?page={number + 1}" if has_next else None, "results": pages[number]}
        )

    with requests_mock.Mocker() as m:
        m.get(f"{BASE}/stream/s--0000-0001--0000-0000-0000-0002--5001/data/", text=page)
        data = StreamData("s--0000-0001--0000-0000-0000-0002--5001", Api(domain=DOMAIN))
        data.initialize_from_server(start="2026-01-01T00:00:00Z")
        assert [p["int_value"] for p in data.data] == [0, 1, 2, 3, 4]
        assert any("/df/" in r.url for r in m.request_history)  # tried, failed, fell back
        # Pages were asked for as columns; this server answered item pages, taken as they came.
        assert "application/vnd.iotile.columns+json" in m.request_history[0].headers["Accept"]

        m.get(f"{BASE}/data/", json={"count": 1, "next": None})
        with pytest.raises(UnexpectedPageError):
            RawData(Api(domain=DOMAIN)).initialize_from_server(filter="d--0001")


def test_accumulation_report_under_requests_mock() -> None:
    slug1 = "s--0000-0001--0000-0000-0000-0002--5001"
    slug2 = "s--0000-0001--0000-0000-0000-0002--5002"
    with requests_mock.Mocker() as m:
        m.get(
            f"{BASE}/stream/?project=p--0000-0001",
            [
                {
                    "json": {
                        "count": 2,
                        "next": f"{BASE}/stream/?page=2",
                        "results": [{"slug": slug1, "output_unit": {"unit_short": "G"}}],
                    }
                },
                {"json": {"count": 2, "next": None, "results": [{"slug": slug2, "output_unit": None}]}},
            ],
        )
        m.get(f"{BASE}/stream/{slug1}/", json={"slug": slug1, "output_unit": {"unit_short": "G"}})
        m.get(f"{BASE}/stream/{slug1}/data/", json={"count": 3, "next": None, "results": _points(3, 1)})
        m.get(f"{BASE}/stream/{slug2}/data/", json={"count": 1, "next": None, "results": _points(1, 10)})
        stats = AccumulationReportGenerator(Api(domain=DOMAIN)).compute_sum(
            sources=["p--0000-0001", slug1], start=dt.datetime(2026, 1, 1), end=dt.datetime(2026, 1, 2)
        )
        assert stats == {
            "streams": {slug1: {"sum": 6.0, "units": "G"}, slug2: {"sum": 10.0, "units": ""}},
            "total": 16.0,
        }
        assert m.request_history[-1].qs["start"] == ["2026-01-01t00:00:00z"]  # qs is lowercased by requests_mock
        assert AccumulationReportGenerator(Api(domain=DOMAIN)).compute_sum(["x--1"], start="2026") == {
            "error": "No streams were found for these GIDs"
        }


def test_star_import_of_report_and_data_brings_the_original_names() -> None:
    namespace: dict[str, Any] = {}
    exec("from iotile_cloud.stream.report import *", namespace)  # noqa: S102 - the point of the test
    assert namespace["Api"] is Api
    for name in ("BaseReportGenerator", "AccumulationReportGenerator", "StreamData", "IOTileStreamSlug", "datetime"):
        assert name in namespace
    exec("from iotile_cloud.stream.data import *", namespace)  # noqa: S102
    exec("from iotile_cloud.api.connection import *", namespace)  # noqa: S102
    assert namespace["HttpNotFoundError"] is HttpNotFoundError


ORIGINAL_MODULES = [
    "iotile_cloud.api.connection",
    "iotile_cloud.api.exceptions",
    "iotile_cloud.stream.data",
    "iotile_cloud.stream.report",
    "iotile_cloud.utils.gid",
    "iotile_cloud.utils.mdo",
    "iotile_cloud.utils.basic",
    "iotile_cloud.utils.main",
]


def test_every_name_of_the_original_modules_exists() -> None:
    script = (
        "import importlib, json, sys\n"
        "print(json.dumps({m: [n for n in dir(importlib.import_module(m)) if not n.startswith('__')]"
        " for m in sys.argv[1:]}))"
    )
    result = run_original(script, *ORIGINAL_MODULES)
    assert result.returncode == 0, result.stderr[-2000:]
    original = json.loads(result.stdout.strip().splitlines()[-1])
    import importlib

    missing = {m: sorted(set(names) - set(dir(importlib.import_module(m)))) for m, names in original.items()}
    assert missing == {m: [] for m in ORIGINAL_MODULES}


# -- against the live local server ---------------------------------------------------------------


def test_api_session_used_directly(cloud: CloudHelper, api: Api) -> None:
    """Downstream code calls ``api.session.get/post`` itself, with headers it builds from the token."""
    headers = {"Authorization": f"{api.token_type} {api.token}"}
    response = api.session.post(f"{api.base_url}/org/", json={"name": "Direct Org"}, headers=headers)
    assert response.status_code == 201
    assert api.org(response.json()["slug"]).get()["name"] == "Direct Org"
    listing = api.session.get(f"{api.base_url}/org/", headers=headers)
    assert [o["name"] for o in listing.json()["results"]] == ["Direct Org"]
    assert api.org._process_response(listing)["count"] == 1
    with pytest.raises(HttpUnauthorizedError):
        api.org._process_response(api.session.get(f"{api.base_url}/org/"))


def _seed(cloud: CloudHelper, api: Api, n: int) -> str:
    project_id, project = cloud.quick_add_project()
    device = cloud.quick_add_device(project_id)
    stream = f"s--{project[3:]}--{device[3:]}--5001"
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    points = [
        {"stream": stream, "timestamp": (t0 + dt.timedelta(seconds=i)).isoformat(), "int_value": i} for i in range(n)
    ]
    for i in range(0, n, 5000):
        api.data.post(points[i : i + 5000])
    return stream


def test_stream_data_picks_json_or_arrow_by_size(cloud: CloudHelper, api: Api) -> None:
    stream = _seed(cloud, api, 3000)
    api.data.post(  # a float-only point (no int_value) and the largest int: the columns with nulls
        [
            {"stream": stream, "timestamp": "2026-02-01T00:00:00.250000Z", "value": 12.5, "type": "ITR"},
            {"stream": stream, "timestamp": "2026-02-01T00:00:01Z", "int_value": 4294967295, "streamer_local_id": 7},
        ]
    )
    spy = CountingAdapter()
    api.session.mount(cloud.url, spy)

    small = StreamData(stream, api)
    small.initialize_from_server(lastn=100)  # small: one JSON page, no Arrow
    assert len(small.data) == 100 and not any("/df/" in u for u in spy.urls)

    forced = StreamData(stream, api)
    forced.columnar_min_points = 1000  # "big" for this test: Arrow after the first page showed the size
    forced.initialize_from_server(page_size=500)
    assert any("/df/" in u and "format=arrow" in u for u in spy.urls)
    json_pages = StreamData(stream, api)
    json_pages.columnar = False
    json_pages.initialize_from_server(page_size=500)
    assert forced.data == json_pages.data and len(forced.data) == 3002
    assert forced.data[-2]["int_value"] is None and forced.data[-2]["timestamp"] == "2026-02-01T00:00:00.250000Z"

    class GarbageArrow(HTTPAdapter):
        def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
            response = super().send(request, **kwargs)
            if "/df/" in str(request.url):
                response._content = b"not an arrow stream"
                response.headers["Content-Type"] = "application/vnd.apache.arrow.stream"
            return response

    api.session.mount(cloud.url, GarbageArrow())
    fallback = StreamData(stream, api)
    fallback.columnar_min_points = 0
    fallback.initialize_from_server()
    assert fallback.data == json_pages.data


def test_stream_data_does_not_import_pandas(cloud: CloudHelper, api: Api) -> None:
    stream = _seed(cloud, api, 1500)
    script = (
        "import sys\n"
        "from iotile_cloud.api.connection import Api\n"
        "from iotile_cloud.stream.data import StreamData\n"
        "api = Api(sys.argv[1]); api.set_token(sys.argv[2])\n"
        "urls = []\n"
        "api.session.hooks['response'].append(lambda r, *a, **k: urls.append(r.url))\n"
        "data = StreamData(sys.argv[3], api); data.columnar_min_points = 0\n"
        "data.initialize_from_server()\n"
        "print(len(data.data), any('/df/' in u for u in urls), 'pandas' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, cloud.url, str(api.token), stream],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["1500", "True", "False"]


def test_api_closes_its_connections(cloud: CloudHelper) -> None:
    """``Api`` is a context manager; ``close()`` leaves no socket open (no ResourceWarning)."""
    import gc
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        with Api(cloud.url) as api:
            assert api.login(email="test@arch-iot.com", password="test")
            assert api.account.get()["count"] == 1
            adapter = api.session.get_adapter(cloud.url)
        assert not adapter.poolmanager.pools  # type: ignore[attr-defined]
        del api
        gc.collect()
