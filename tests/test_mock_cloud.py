"""The original fixture names, as downstream test suites use them, backed by the real server."""

from __future__ import annotations

from pathlib import Path

from iotile_cloud.api.connection import Api
from iotile_cloud.stream.data import StreamData
from iotile_cloud.testing.cloud import CloudHelper

from .conftest import TESTDATA

SEED = TESTDATA / "seed_cloud" / "data"


def test_add_data_and_stream_folder(mock_cloud_private_nossl: tuple[str, CloudHelper]) -> None:
    domain, cloud = mock_cloud_private_nossl
    cloud.add_data(SEED / "basic_cloud.json")
    cloud.add_data(SEED / "test_project_watermeter.json")
    cloud.stream_folder = SEED / "watermeter"
    api = Api(domain)
    assert api.login(email="test@arch-iot.com", password="test")
    project = api.project("1c07fdd0-3fad-4549-bd56-5af2aca18d5b").get()
    assert (project["slug"], project["name"]) == ("p--0000-0077", "Irrigation Project")
    device = api.device("d--0000-0000-0000-00d2").get()
    assert device["label"] == "Filtration Flow" and device["project"] == project["id"]
    streams = api.stream.get(device="d--0000-0000-0000-00d2")["results"]
    assert len(streams) == 8
    data = StreamData("s--0000-0077--0000-0000-0000-00d2--5001", api)
    data.initialize_from_server()
    assert len(data.data) > 0 and data.data[0]["int_value"] == 100
    csv_data = api.data.get(filter="s--0000-0077--0000-0000-0000-00d2--5002")  # from the .csv file
    assert [p["int_value"] for p in csv_data["results"]] == [100, 99, 0]
    props = api.property.get(target="d--0000-0000-0000-00d2")["results"]
    assert {p["name"]: p["value"] for p in props} == {"CargoDescription": "SO# 83469", "Country": "KOREA"}
    assert api.event(1).data.get() == {"test": 1, "hello": 2}
    assert cloud.request_count > 5


def test_quick_helpers_over_https(mock_cloud_private: tuple[str, CloudHelper]) -> None:
    domain, cloud = mock_cloud_private
    assert domain.startswith("https://")
    cloud.quick_add_user()
    project_id, project_slug = cloud.quick_add_project()
    org = cloud.quick_add_org("Other Org")
    second_id, _ = cloud.quick_add_project("Second", org_slug=org)
    device = cloud.quick_add_device(project_id, streamers=[10, 20])
    assert cloud.quick_add_device(second_id, device_id=0x55) == "d--0000-0000-0000-0055"
    cloud.quick_add_streamer(device, 2, 99, selector=0x57FF)
    fleet = cloud.quick_add_fleet([device, ("d--0055", True)], is_network=True)
    api = Api(domain, verify=False)
    assert api.login(email="test@arch-iot.com", password="test")
    assert api.client.streamer_acks(device) == {0: 10, 1: 20, 2: 99}
    assert {d["device"]: d["is_access_point"] for d in api.fleet(fleet).devices.get()["results"]} == {
        device: False,
        "d--0000-0000-0000-0055": True,
    }
    assert api.project(project_id).get()["slug"] == project_slug
    cloud.reset()
    assert cloud.request_count == 0
    api = Api(domain, verify=False)
    assert not api.login(email="test@arch-iot.com", password="test")


def test_module_fixture_keeps_state(mock_cloud_nossl: tuple[str, CloudHelper], tmp_path: Path) -> None:
    domain, cloud = mock_cloud_nossl
    cloud.reset()
    cloud.quick_add_user("keep@example.com", "pw")
    assert Api(domain).login(email="keep@example.com", password="pw")
