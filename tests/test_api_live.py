"""The 0.9.14 facade against a live local server: the original README's examples, and the fixes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx
import pytest

from iotile_cloud.api.connection import API_PREFIX, DEFAULT_HEADERS, DEFAULT_TOKEN_TYPE, DOMAIN_NAME, Api
from iotile_cloud.api.exceptions import HttpClientError, HttpNotFoundError, HttpUnauthorizedError
from iotile_cloud.stream.data import RawData, StreamData, StreamRawData
from iotile_cloud.stream.report import AccumulationReportGenerator
from iotile_cloud.testing.cloud import CloudHelper
from iotile_cloud.utils.main import BaseMain
from iotile_cloud.utils.mdo import MdoHelper

from .conftest import USER


def test_constants_and_url_building() -> None:
    assert (DOMAIN_NAME, API_PREFIX, DEFAULT_TOKEN_TYPE) == ("https://iotile.cloud", "api/v1", "jwt")
    assert DEFAULT_HEADERS["Content-Type"] == "application/json"
    api = Api("https://example.test/")  # fix: a trailing slash is tolerated
    assert api.base_url == "https://example.test/api/v1"
    assert api.org.url() == "https://example.test/api/v1/org/"
    assert api.org("x").projects.url() == "https://example.test/api/v1/org/x/projects/"
    assert api.streamer(action="report").url() == "https://example.test/api/v1/streamer/report/"
    assert api.device("d--0001").extra.url() == "https://example.test/api/v1/device/d--0001/extra/"


def test_login_logout_and_tokens(cloud: CloudHelper) -> None:
    api = Api(cloud.url)
    assert api.login(email=USER[0], password="wrong") is False
    assert api.token is None
    assert api.login(password=USER[1], email=USER[0]) is True  # the original argument order
    assert api.username == "test" and api.token
    token = api.token
    assert api.refresh_token() is True
    assert api.token
    other = Api(cloud.url)
    other.set_token(token)
    assert other.account.get()["results"][0]["email"] == USER[0]
    assert api.logout() is True
    assert api.token is None and api.username is None


def test_no_authorization_header_without_a_token(cloud: CloudHelper) -> None:
    seen: list[httpx.Request] = []
    transport = httpx.HTTPTransport()

    class Spy(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return transport.handle_request(request)

    api = Api(cloud.url, transport=Spy())
    with pytest.raises(HttpUnauthorizedError) as info:
        api.org.get()
    assert "Authorization" not in seen[0].headers
    assert info.value.detail == {"detail": "Authentication credentials were not provided."}


def test_resources_use_the_current_token(cloud: CloudHelper) -> None:
    api = Api(cloud.url)
    orgs = api.org  # made before login
    assert api.login(email=USER[0], password=USER[1])
    assert orgs.get()["count"] == 0


def test_generic_rest_examples(api: Api) -> None:
    new = api.org.post({"name": "My new Org"})
    assert new["slug"] == "my-new-org"
    assert api.org(new["slug"]).put({"about": "About Org"})["about"] == "About Org"
    assert api.org(new["slug"]).patch({"about": "About new Org"})["about"] == "About new Org"
    assert api.org(new["slug"]).get()["name"] == "My new Org"
    assert api.org(new["slug"]).delete() is False  # only staff may delete: False, never raises
    for org in api.org.get()["results"]:
        assert api.project.get(org__slug=org["slug"])["count"] == 0
        assert api.org(org["slug"]).projects.get()["results"] == []
    with pytest.raises(HttpNotFoundError) as info:
        api.org("nope").get()
    assert str(info.value).startswith(f"Client Error 404: {api.base_url}/org/nope/")


def test_empty_body_is_still_sent(api: Api) -> None:
    with pytest.raises(HttpClientError) as info:
        api.org.post({})  # 0.9.14 dropped the {} and sent no body at all
    assert info.value.detail == {"name": ["This field is required."]}
    assert api.data.post([]) == {"count": 0}


def _seeded_stream(cloud: CloudHelper, api: Api, n: int = 25) -> str:
    project_id, project_slug = cloud.quick_add_project()
    device = cloud.quick_add_device(project_id)
    stream = f"s--{project_slug[3:]}--{device[3:]}--5001"
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    points = [
        {"stream": stream, "timestamp": (start + dt.timedelta(minutes=i)).isoformat(), "int_value": i + 1}
        for i in range(n)
    ]
    assert api.data.post(points) == {"count": n}
    return stream


def test_stream_data_examples(cloud: CloudHelper, api: Api) -> None:
    stream = _seeded_stream(cloud, api)
    data = StreamData(stream, api)
    data.initialize_from_server(lastn=10)
    assert [item["int_value"] for item in data.data] == list(range(16, 26))
    data.initialize_from_server(start="2026-01-01T00:05:00.000Z", end="2026-01-01T00:08:00.000Z")
    assert [item["int_value"] for item in data.data] == [6, 7, 8]
    data.initialize_from_server(page_size=4)  # 7 pages, fetched concurrently, in order
    assert [item["int_value"] for item in data.data] == list(range(1, 26))
    assert data.data[0]["output_value"] == pytest.approx(1.0)

    raw = RawData(api)
    raw.initialize_from_server(filter=stream, page_size=10)
    assert len(raw.data) == 25 and raw.data[0]["stream"] == stream

    units = api.stream(stream).get()["output_unit"]
    mdo = MdoHelper(m=units.get("m", 1), d=units.get("d", 1), o=units.get("o", 0.0))
    raw_stream = StreamRawData(stream, api)
    raw_stream.initialize_from_server(lastn=5)
    assert [round(mdo.compute_value(item["value"]), 6) for item in raw_stream.data] == [21, 22, 23, 24, 25]


def test_accumulation_report(cloud: CloudHelper, api: Api) -> None:
    stream = _seeded_stream(cloud, api, n=10)
    project = "p--" + stream.split("--")[1]
    device = "d--" + stream.split("--")[2]
    gen = AccumulationReportGenerator(api)
    stats = gen.compute_sum(sources=[project, device, stream], start=dt.datetime(2025, 1, 1))
    assert list(stats["streams"]) == [stream]  # de-duplicated
    assert stats["streams"][stream]["sum"] == pytest.approx(55.0)
    assert stats["streams"][stream]["units"] == "G"
    assert stats["total"] == pytest.approx(55.0)
    assert gen.compute_sum(sources=["p--0000-9999"], start="2025-01-01T00:00:00Z") == {
        "error": "No streams were found for these GIDs"
    }


def test_upload_file_and_iterate(cloud: CloudHelper, api: Api, tmp_path: Path) -> None:
    project_id, _ = cloud.quick_add_project()
    for _ in range(3):
        cloud.quick_add_device(project_id)
    slugs = [d["slug"] for d in api.device.iterate(project=project_id, page_size=2)]
    assert len(slugs) == 3 and len(set(slugs)) == 3


def test_base_main_flow(cloud: CloudHelper, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    class MyScript(BaseMain):
        def add_extra_args(self) -> None:
            self.parser.add_argument("foo", type=str)

        def after_login(self) -> None:
            calls.append(f"work {self.args.foo} {self.api.org.get()['count']}")
            raise RuntimeError("boom")

        def logout(self) -> None:
            super().logout()
            calls.append("logout")

    monkeypatch.setattr("getpass.getpass", lambda *a, **k: USER[1])
    script = MyScript(["--domain", cloud.url, "-u", USER[0], "bar"])
    with pytest.raises(RuntimeError, match="boom"):
        script.main()
    assert calls == ["work bar 0", "logout"]  # logged out even though the work failed


def test_async_client_against_the_server(cloud: CloudHelper) -> None:
    import asyncio

    from iotile_cloud.client import AsyncClient

    project_id, _ = cloud.quick_add_project()
    for _ in range(5):
        cloud.quick_add_device(project_id)

    async def run() -> list[str]:
        async with AsyncClient(cloud.url) as client:
            await client.login(USER[0], USER[1])
            return [d["slug"] async for d in client.paginate("device/", project=project_id, page_size=2)]

    assert len(asyncio.run(run())) == 5


def test_client_from_config(cloud: CloudHelper, monkeypatch: pytest.MonkeyPatch) -> None:
    from iotile_cloud.client import Client
    from iotile_cloud.client.config import save_credentials

    api = Api(cloud.url)
    assert api.login(email=USER[0], password=USER[1])
    save_credentials(cloud.url, str(api.token), "jwt", "test")
    with Client.from_config() as client:
        assert client.domain == cloud.url and client.get("account/")["count"] == 1
    monkeypatch.setenv("IOTILE_CLOUD_TOKEN", "not-a-token")
    with Client.from_config(cloud.url) as client:
        assert client.token == "not-a-token"
