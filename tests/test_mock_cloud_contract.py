"""The original mock cloud's whole contract over the real server, used as downstream suites use it.

The fixtures below follow the usage patterns of iotile-coretools' ``iotile_ext_cloud`` tests
(``basic_cloud``, ``ota_cloud``) and of the original client's tests (``water_meter``, report upload).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pytest

from iotile_cloud.api.connection import Api
from iotile_cloud.api.exceptions import HttpClientError, HttpNotFoundError
from iotile_cloud.server.run import LiveServer
from iotile_cloud.testing.cloud import CloudHelper

from .conftest import TESTDATA

SEED = TESTDATA / "seed_cloud" / "data"
REPORT = TESTDATA / "seed_cloud" / "reports" / "report_100readings_10dev.bin"
WATERMETER_DEVICE = "d--0000-0000-0000-00d2"
S5001 = "s--0000-0077--0000-0000-0000-00d2--5001"
S5C00 = "s--0000-0077--0000-0000-0000-00d2--5c00"


def _token_api(domain: str) -> Api:
    """An Api that uses the fixed token, as coretools does with ``arch:cloud_token = JWT_USER``."""
    api = Api(domain, verify=False)
    api.set_token("JWT_USER", token_type="jwt")
    return api


@pytest.fixture
def basic_cloud(mock_cloud_private_nossl: tuple[str, CloudHelper]) -> Iterator[tuple[Api, str, CloudHelper]]:
    """coretools' ``basic_cloud``: devices 1-5 (streamers 100/200) in one project, device 6 in another."""
    domain, cloud = mock_cloud_private_nossl
    cloud.quick_add_user("test@arch-iot.com", "test")
    proj_id, _ = cloud.quick_add_project()
    proj2_id, _ = cloud.quick_add_project()
    for number in range(1, 6):
        cloud.quick_add_device(proj_id, number, streamers=[100, 200])
    cloud.quick_add_device(proj2_id)
    cloud.quick_add_sg(slug="water-meter-v1-1-0", app_tag=123)
    cloud.quick_add_sg(slug="water-meter-v1-1-1", app_tag=124)
    cloud.quick_add_dt(slug="internaltestingtemplate-v0-1-0", os_tag=234)
    cloud.quick_add_dt(slug="internaltestingtemplate-v0-1-1", os_tag=235)
    yield _token_api(domain), proj_id, cloud


def test_fixed_token_and_login(basic_cloud: tuple[Api, str, CloudHelper]) -> None:
    api, proj_id, cloud = basic_cloud
    assert {d["id"] for d in api.device.get()["results"]} == {1, 2, 3, 4, 5, 6}
    assert {d["id"] for d in api.device.get(project=proj_id)["results"]} == {1, 2, 3, 4, 5}
    assert api.streamer("t--0000-0000-0000-0001--0000").get()["last_id"] == 100
    assert api.streamer("t--0000-0000-0000-0001--0001").get()["last_id"] == 200
    login = Api(cloud.url)
    assert login.login(email="test@arch-iot.com", password="test")
    assert login.token == "JWT_USER" and login.username == "test@arch-iot.com"
    with httpx.Client(base_url=cloud.url) as http:  # the original fake's very answer (iotile-analytics checks it)
        answer = http.post("/api/v1/auth/login/", json={"email": "test@arch-iot.com", "password": "test"})
        assert answer.json() == {"username": "test@arch-iot.com", "jwt": "JWT_USER"}
    assert login.refresh_token() is True and login.token == "JWT_USER"
    cloud.quick_add_user("second@arch-iot.com", "pw2")
    second = Api(cloud.url)
    assert second.login(email="second@arch-iot.com", password="pw2")
    assert second.token != "JWT_USER"  # a real JWT, accepted as well
    assert second.account.get()["results"][0]["email"] == "second@arch-iot.com"
    with httpx.Client(base_url=cloud.url) as http:
        assert http.get("/api/v1/org/", headers={"Authorization": "jwt JWT_OTHER"}).status_code == 401


def test_serve_refuses_fixed_tokens(tmp_path: Path) -> None:
    """``iotile-cloud serve`` builds its app without fixed tokens: JWT_USER is just a bad token."""
    server = LiveServer(tmp_path).start()
    try:
        CloudHelper(server).quick_add_user("test@arch-iot.com", "test")
        assert server.app.state.iotile.fixed_tokens is None
        with httpx.Client(base_url=server.url) as http:
            answer = http.get("/api/v1/org/", headers={"Authorization": "jwt JWT_USER"})
            assert answer.status_code == 401
            login = http.post("/api/v1/auth/login/", json={"email": "test@arch-iot.com", "password": "test"})
            assert login.status_code == 200 and login.json()["jwt"] != "JWT_USER"
    finally:
        server.stop()


def test_sensor_graph_and_template_registry(basic_cloud: tuple[Api, str, CloudHelper]) -> None:
    """coretools' set_sensorgraph / set_device_template: check the tag, then PATCH the device."""
    api, _, cloud = basic_cloud
    device = api.device("d--0000-0000-0000-0001").get()
    assert (device["sg"], device["template"]) == ("water-meter-v1-1-0", "internaltestingtemplate-v0-1-0")
    sg = api.sg("water-meter-v1-1-1").get()
    assert sg["app_tag"] == 124 and sg["slug"] == "water-meter-v1-1-1"
    assert {"app_version", "report_processing_engine_ver", "ui_extra", "variable_templates"} <= set(sg)
    assert api.sg("water-meter-v1-1-0").get()["variable_templates"]  # the built-in entry, with its new tag
    with pytest.raises(HttpNotFoundError):
        api.sg("water-meter-v1-1-2").get()
    api.device("d--0000-0000-0000-0001").patch({"sg": "water-meter-v1-1-1"})
    assert api.device("d--0000-0000-0000-0001").get()["sg"] == "water-meter-v1-1-1"
    dt = api.dt("internaltestingtemplate-v0-1-1").get()
    assert dt["os_tag"] == 235 and {"hw_tag", "os_version", "released_on", "slots", "version"} <= set(dt)
    with pytest.raises(HttpNotFoundError):
        api.dt("internaltestingtemplate-v0-1-2").get()
    api.device("d--0000-0000-0000-0001").patch({"template": "internaltestingtemplate-v0-1-1"})
    assert api.device("d--0000-0000-0000-0001").get()["template"] == "internaltestingtemplate-v0-1-1"
    # As the original fake, the fixture servers store a slug nobody registered (a plain server answers 400).
    api.device("d--0000-0000-0000-0001").patch({"template": "internaltestingtemplate-v0-1-2"})
    assert api.device("d--0000-0000-0000-0001").get()["template"] == "internaltestingtemplate-v0-1-2"
    with pytest.raises(HttpNotFoundError):
        api.dt("internaltestingtemplate-v0-1-2").get()
    assert set(cloud.sgs) == {"water-meter-v1-1-0", "water-meter-v1-1-1"}
    assert cloud.dts["internaltestingtemplate-v0-1-0"]["os_tag"] == 234
    slugs = [entry["slug"] for entry in api.sg.get(page_size=1000)["results"]]
    assert "water-meter-v1-1-1" in slugs and len(slugs) == len(set(slugs))


@pytest.fixture
def ota_cloud(mock_cloud_private_nossl: tuple[str, CloudHelper]) -> Iterator[tuple[Api, CloudHelper]]:
    """coretools' ``ota_cloud``: devices 1-6, four fleets and four deployments (the last completed)."""
    domain, cloud = mock_cloud_private_nossl
    cloud.quick_add_user("test@arch-iot.com", "test")
    proj_id, _ = cloud.quick_add_project()
    proj2_id, _ = cloud.quick_add_project()
    for number in range(1, 7):
        cloud.quick_add_device(proj_id, number, streamers=[100, 200])
        cloud.quick_add_ota_device_info(number)
    cloud.quick_add_device(proj2_id)
    cloud.quick_add_fleet(devices=[1, 2], fleet_slug=1)
    cloud.quick_add_fleet(devices=[4, 5], fleet_slug=2)
    cloud.quick_add_fleet(devices=[1, 2, 4, 5, 6], fleet_slug=3)
    cloud.quick_add_fleet(devices=[1, 3, 4, 6], fleet_slug=4)
    eq = ["os_tag:eq:234", "app_tag:eq:123", "os_version:eq:0.0.2", "app_version:eq:0.0.2"]
    lt = ["os_tag:eq:235", "app_tag:eq:124", "os_version:lt:0.0.2", "app_version:lteq:0.0.2"]
    cloud.quick_add_deployment_to_fleet(fleet_id=1, deployment_id=1, criteria=eq)
    cloud.quick_add_deployment_to_fleet(fleet_id=2, deployment_id=2, criteria=eq)
    cloud.quick_add_deployment_to_fleet(fleet_id=3, deployment_id=3, criteria=lt)
    cloud.quick_add_deployment_to_fleet(fleet_id=4, deployment_id=4, criteria=lt, completed=True)
    yield _token_api(domain), cloud


def test_ota_device_view_and_actions(ota_cloud: tuple[Api, CloudHelper]) -> None:
    api, cloud = ota_cloud
    info = api.ota.device("d--0000-0000-0000-0001").get()
    assert set(info) == {"slug", "template", "sg", "deployments", "actions", "versions"}
    # One request per device and deployment, numbered in order: device 1 is the first of fleets 1, 3, 4.
    assert [d["id"] for d in info["deployments"]] == [1, 5, 10]
    first = info["deployments"][0]
    assert first["script"] == "z--0000-0002" and first["released_on"] == "2018-10-16T00:00:00Z"
    assert first["completed_on"] is None and first["fleet"] == "g--0000-0000-0001"
    assert info["deployments"][2]["completed_on"] == "2018-10-15T00:00:00Z"
    assert [d["id"] for d in api.ota.device("d--0000-0000-0000-0004").get()["deployments"]] == [3, 7, 12]
    assert api.ota.device("d--0000-0000-0000-0003").get()["deployments"][0]["selection_criteria"][0] == "os_tag:eq:235"
    script = api.ota.script("z--0000-0002").file.get()
    assert script["url"] == "bar.com/zipzap"
    action = api.ota.action.post(
        {
            "deployment": 1,
            "device": "d--0000-0000-0000-0001",
            "attempt_successful": True,
            "last_attempt_on": "2018-10-17T00:00:00Z",
        }
    )
    assert action["deployment"] == 1 and action["attempt_successful"] is True
    assert api.ota.device("d--0000-0000-0000-0001").get()["actions"][0]["deployment"] == 1
    assert api.ota.action.get(device="d--0000-0000-0000-0001")["count"] == 1
    with pytest.raises(HttpClientError):
        api.ota.action.post({"deployment": 99, "device": "d--0000-0000-0000-0001"})
    assert cloud.deployment_count == 13
    assert cloud.ota_scripts["z--0000-0002"]["url"] == "bar.com/zipzap"
    assert [d["id"] for d in cloud.ota_devices["d--0000-0000-0000-0006"]["deployments"]] == [9, 13]
    with pytest.raises(ValueError):
        cloud.quick_add_deployment_to_fleet(fleet_id=1, deployment_id=1, criteria=[])


def test_upload_report_for_unknown_device(mock_cloud_private_nossl: tuple[str, CloudHelper]) -> None:
    """The original client's test: upload with plain requests for a device no helper added."""
    domain, cloud = mock_cloud_private_nossl
    cloud.quick_add_user("test@arch-iot.com", "test")
    api = Api(domain=domain)
    api.login(email="test@arch-iot.com", password="test")
    data = REPORT.read_bytes()
    resource = api.streamer.report
    assert len(resource.get()["results"]) == 0
    answer = httpx.post(
        resource.url(),
        files={"file": ("file", BytesIO(data))},
        headers={"Authorization": f"{api.token_type} {api.token}"},
        params={"timestamp": cloud._fixed_utc_timestr()},
    )
    assert answer.json()["count"] == 100
    streamer = api.streamer("t--0000-0000-0000-000a--0001").get()
    assert streamer["last_id"] == 100 and streamer["selector"] == 0xABCD
    reports = resource.get()["results"]
    assert len(reports) == 1
    assert api.streamer.report(reports[0]["id"]).get()["id"] == reports[0]["id"]
    assert cloud.raw_report_files[reports[0]["id"]] == data
    assert cloud._get_streamer_ack(10, 1) == 100


def test_upload_report_for_streamer_only_device(mock_cloud_private_nossl: tuple[str, CloudHelper]) -> None:
    domain, cloud = mock_cloud_private_nossl
    cloud.quick_add_user("test@arch-iot.com", "test")
    cloud.quick_add_streamer(10, 1, 50)
    assert cloud.streamers["t--0000-0000-0000-000a--0001"]["last_id"] == 50
    assert "d--0000-0000-0000-000a" not in {d["slug"] for d in _token_api(domain).device.get()["results"]}
    api = _token_api(domain)
    with REPORT.open("rb") as fp:
        answer = httpx.post(
            api.streamer.report.url(),
            files={"file": ("report.bin", fp)},
            headers={"Authorization": "jwt JWT_USER"},
            params={"timestamp": cloud._fixed_utc_timestr()},
        )
    assert answer.status_code == 201 and answer.json() == {"count": 100}
    assert api.streamer("t--0000-0000-0000-000a--0001").get()["last_id"] == 100
    project, _ = cloud.quick_add_project()
    assert cloud.quick_add_device(project, 10) == "d--0000-0000-0000-000a"  # the known device is claimed
    assert api.device("d--0000-0000-0000-000a").get()["project"] == project


@pytest.fixture
def water_meter(mock_cloud_private_nossl: tuple[str, CloudHelper]) -> tuple[Api, CloudHelper]:
    domain, cloud = mock_cloud_private_nossl
    cloud.add_data(SEED / "basic_cloud.json")
    cloud.add_data(SEED / "test_project_watermeter.json")
    cloud.stream_folder = SEED / "watermeter"
    api = Api(domain)
    assert api.login(email="test@arch-iot.com", password="test")
    return api, cloud


def test_add_data_keeps_each_record(water_meter: tuple[Api, CloudHelper]) -> None:
    api, cloud = water_meter
    device = api.device(WATERMETER_DEVICE).get()
    project = api.project(device["project"]).get()
    assert device["org"] == "test_org" and project["org"] == "test"  # the record's own org wins
    block = api.datablock("b--0001-0000-0000-04e7").get()
    assert (block["slug"], block["title"], block["org"]) == ("b--0001-0000-0000-04e7", "Archive: POD1-M (04e7)", "Acme")
    assert api.datablock.get()["count"] == 1
    assert list(cloud.datablocks) == ["b--0001-0000-0000-04e7"]
    events = api.event.get(filter=S5001)["results"]
    assert len(events) == 3 and api.event(2).data.get() == {"test": 1, "goodbye": 15}


def test_stream_without_record(water_meter: tuple[Api, CloudHelper]) -> None:
    api, cloud = water_meter
    counts = api.device(WATERMETER_DEVICE).extra.get()["stream_counts"]
    raw_lines = [line for line in (SEED / "watermeter" / f"{S5C00}.csv").read_text().splitlines() if line.strip()]
    assert counts[S5C00] == {"data_cnt": len(raw_lines), "has_streamid": False}
    assert counts[S5001] == {"data_cnt": len(_points(S5001)), "has_streamid": True}
    assert set(counts) == {S5001, S5C00, S5001[:-4] + "5002"}  # every stream with data, and only those
    assert cloud._raw_stream_counts(WATERMETER_DEVICE) == counts
    assert S5C00 not in {s["slug"] for s in api.stream.get(device=WATERMETER_DEVICE)["results"]}
    assert S5C00 not in cloud.streams
    with pytest.raises(HttpNotFoundError):
        api.stream(S5C00).get()
    assert [p["int_value"] for p in api.data.get(filter=S5C00)["results"]] == [int(x.split(",")[1]) for x in raw_lines]


def test_folder_variable_types_replace_the_built_ins(water_meter: tuple[Api, CloudHelper]) -> None:
    api, _ = water_meter
    slugs = {v["slug"] for v in api.vartype.get()["results"]}
    files = {json.loads(p.read_text())["slug"] for p in (SEED / "watermeter" / "variable_types").glob("*.json")}
    assert slugs == files
    assert api.vartype("default").get()["name"] == "Default"


def test_null_event_time_and_inconsistent_stream(
    mock_cloud_private_nossl: tuple[str, CloudHelper], tmp_path: Path
) -> None:
    domain, cloud = mock_cloud_private_nossl
    fixture = json.loads((SEED / "test_project_watermeter.json").read_text())
    fixture["events"][2]["timestamp"] = None
    odd = dict(fixture["streams"][0], slug="s--0000-0077--0000-0000-0000-00d2--6001", id="odd-stream")
    fixture["streams"].append(odd)  # its var_lid (0x100b) disagrees with its slug (6001)
    path = tmp_path / "fixture.json"
    path.write_text(json.dumps(fixture))
    cloud.add_data(SEED / "basic_cloud.json")
    cloud.add_data(path)
    api = Api(domain)
    api.login(email="test@arch-iot.com", password="test")
    stamps = [e["timestamp"] for e in api.event.get(filter=S5001)["results"]]
    assert stamps.count(None) == 1 and stamps[-1] is None  # last, on SQLite as on PostgreSQL
    assert api.event.get(filter=S5001, lastn=1)["results"][0]["timestamp"] is None
    assert api.stream("s--0000-0077--0000-0000-0000-00d2--6001").get()["slug"] == odd["slug"]


def _points(slug: str) -> list[dict[str, Any]]:
    points: list[dict[str, Any]] = json.loads((SEED / "watermeter" / f"{slug}.json").read_text())
    return points


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_data_frame_columns(water_meter: tuple[Api, CloudHelper]) -> None:
    api, cloud = water_meter
    headers = {"Authorization": f"jwt {api.token}"}
    with httpx.Client(base_url=cloud.url + "/api/v1", headers=headers) as http:
        rows = _csv(http.get("/df/", params={"filter": S5001}).text)
        points = _points(S5001)
        assert list(rows[0]) == ["row", "value", "stream_slug"] and len(rows) == len(points)
        assert rows[0]["stream_slug"] == S5001 and float(rows[0]["value"]) == points[0]["value"]
        raw = _csv(http.get("/df/", params={"filter": S5C00}).text)
        assert list(raw[0]) == ["row", "int_value", "stream_slug"]
        assert [r["int_value"] for r in raw] == [str(p["int_value"]) for p in api.data.get(filter=S5C00)["results"]]
        extended = _csv(http.get("/df/", params={"filter": S5001, "extended": 1}).text)
        assert list(extended[0]) == ["row", "value", "stream_slug", "device_timestamp", "streamer_local_id"]
        mdo = http.get("/df/", params={"filter": S5001, "apply_mdo": 1, "format": "json"}).json()
        stream = api.stream(S5001).get()
        unit = stream["output_unit"]
        expected = points[0]["value"] * unit["m"] / unit["d"] + unit["o"]
        assert mdo[0]["value"] == pytest.approx(expected) and mdo[0]["row"] == rows[0]["row"]
        pivot = _csv(http.get("/df/", params={"filter": WATERMETER_DEVICE, "pivot": 1}).text)
        assert list(pivot[0])[0] == "row" and S5001 in pivot[0] and S5C00 not in pivot[0]
        stats = _csv(
            http.get("/df/", params={"filter": WATERMETER_DEVICE, "pivot": 1, "apply_mdo": 1, "stats": 1}).text
        )
        assert [r["row"] for r in stats] == ["count", "sum", "mean", "std", "min", "median", "max"]
        assert stats[0][S5001] == str(len(points))
        assert http.get("/df/", params={"filter": S5001, "start": "yesterday"}).status_code == 400


def test_generated_report_upload(mock_cloud_private_nossl: tuple[str, CloudHelper]) -> None:
    domain, cloud = mock_cloud_private_nossl
    cloud.quick_add_user("test@arch-iot.com", "test")
    cloud.quick_add_org("Reports Org")
    api = _token_api(domain)
    record = api.report.generated.post(
        {"label": "Monthly", "org": "reports-org", "source_ref": "d--0000-0000-0000-0001"}
    )
    assert record["status"] == "GS" and record["org"] == "reports-org"
    target = api.report.generated(record["id"]).uploadurl.post({"name": "summary.csv", "acl": "private"})
    assert target["uuid"] == record["id"]
    with pytest.raises(HttpClientError):
        api.report.generated(record["id"]).uploadsuccess.post({"name": "summary.csv"})  # nothing uploaded yet
    answer = httpx.post(
        target["url"],
        data=target["fields"],
        files={"file": ("summary.csv", b"a,b\n1,2\n")},
        headers={"Authorization": "jwt JWT_USER"},
    )
    assert answer.status_code == 204
    done = api.report.generated(record["id"]).uploadsuccess.post({"name": "summary.csv"})
    assert httpx.get(done["url"], headers={"Authorization": "jwt JWT_USER"}).content == b"a,b\n1,2\n"
    assert api.report.generated(record["id"]).get()["status"] == "G1"
    assert list(cloud.generated_reports) == [record["id"]]
    with pytest.raises(HttpClientError):
        api.report.generated(record["id"]).uploadurl.post({"name": "../escape"})


ORIGINAL_HELPERS = [
    "DEFAULT_ORG_NAME",
    "DEFAULT_ORG_SLUG",
    "reset",
    "add_data",
    "stream_folder",
    "quick_add_user",
    "quick_add_org",
    "quick_add_project",
    "quick_add_device",
    "quick_add_streamer",
    "quick_add_fleet",
    "quick_add_sg",
    "quick_add_dt",
    "quick_add_ota_device_info",
    "quick_add_deployment_to_fleet",
    "deployment_incrementer",
    "_fixed_utc_timestr",
    "_ensure_quicktest_org",
    "_find_unique_slug",
    "_get_streamer_ack",
    "_raw_stream_counts",
    "request_count",
    "error_count",
    "users",
    "devices",
    "datablocks",
    "dts",
    "streams",
    "properties",
    "projects",
    "orgs",
    "fleets",
    "fleet_members",
    "streamers",
    "sgs",
    "reports",
    "raw_report_files",
    "generated_reports",
    "ota_devices",
    "deployments",
    "deployment_count",
    "ota_scripts",
    "events",
    "logger",
]  # the original MockIOTileCloud's helpers and records (its WSGI handlers are the real server's routes)


def test_every_original_helper_and_record(mock_cloud_private_nossl: tuple[str, CloudHelper]) -> None:
    domain, cloud = mock_cloud_private_nossl
    missing = [name for name in ORIGINAL_HELPERS if not hasattr(cloud, name)]
    assert missing == []
    cloud.quick_add_user()
    assert cloud.users == {"test@arch-iot.com": "test"}
    project, slug = cloud.quick_add_project()
    assert cloud.projects[project]["slug"] == slug and cloud._ensure_quicktest_org() == "quick-test-org"
    dev = cloud.quick_add_device(project, 3, streamers=[5])
    fleet = cloud.quick_add_fleet([dev, (dev, True)][:1], is_network=True)
    api = _token_api(domain)
    assert api.fleet(fleet).get() == cloud.fleets[fleet]
    assert cloud.fleet_members[fleet] == {dev: (dev, False, True)}
    assert cloud._find_unique_slug("d", list(cloud.devices)) == ("d--0000-0000-0000-0001", 1)
    assert cloud._fixed_utc_timestr() == "2018-01-01T00:00:00Z"
    assert cloud.devices[dev]["template"] == "internaltestingtemplate-v0-1-0"
    before = cloud.error_count
    with pytest.raises(HttpNotFoundError):
        api.device("d--0000-0000-0000-0099").get()
    assert cloud.error_count == before + 1
    with pytest.raises(ValueError):
        cloud.quick_add_fleet([99])
    with pytest.raises(ValueError):
        cloud.quick_add_fleet([dev], fleet_slug=fleet)


def test_config_file_reloads_on_reset(tmp_path: Path) -> None:
    server = LiveServer(tmp_path, fixed_tokens=True).start()
    try:
        cloud = CloudHelper(server, config_file=SEED / "basic_cloud.json")
        cloud.reset()
        assert cloud.users == {"test@arch-iot.com": "test"}
        body: Any = httpx.get(server.url + "/api/v1/account/", headers={"Authorization": "jwt JWT_USER"}).json()
        assert body["results"][0]["email"] == "test@arch-iot.com"
    finally:
        server.stop()


def test_catalogs_and_openapi(api: Api, cloud: CloudHelper) -> None:
    """The original's 21 variable types and its product device templates, paginated; new routes documented."""
    vartypes = api.vartype.get()
    assert vartypes["count"] == 21 and vartypes["next"] is None
    assert api.vartype("trip-summary").get()["stream_data_type"] == "E0"
    templates = api.dt.get(page_size=10)
    assert templates["count"] >= 43 and len(templates["results"]) == 10 and templates["next"]
    pod = api.dt("pod-1mae1-v2-v2-7-0").get()
    assert (pod["os_tag"], pod["os_version"], pod["hw_tag"], pod["version"]) == (2050, "v2.7", 8195, "v2.7.0")
    assert pod["slots"][0] == {"number": 0, "component": "btc1-4-0-0", "hw_tag": "btc1_v4"}
    with pytest.raises(HttpNotFoundError):
        api.dt("protopod-1-es1-v1-0-0").get()  # inactive in the original's product data
    paths = httpx.get(cloud.url + "/api/schema/").json()["paths"]
    for path in (
        "/api/v1/ota/device/{slug}/",
        "/api/v1/ota/script/",
        "/api/v1/ota/script/{slug}/file/",
        "/api/v1/ota/request/",
        "/api/v1/ota/action/",
        "/api/v1/ota/version/",
        "/api/v1/datablock/",
        "/api/v1/datablock/{slug}/",
        "/api/v1/report/generated/",
        "/api/v1/report/generated/{report_id}/uploadurl/",
        "/api/v1/report/generated/{report_id}/uploadsuccess/",
    ):
        assert path in paths, path
