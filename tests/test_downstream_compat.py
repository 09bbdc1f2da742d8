"""What downstream test suites (iotile-ext-cloud, iotile-analytics, the original client's tests) do with
the mock cloud fixtures that the original fake allowed and the real server must keep allowing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iotile_cloud.api.connection import Api
from iotile_cloud.api.exceptions import HttpBadRequestError, HttpForbiddenError, HttpNotFoundError
from iotile_cloud.testing.cloud import CloudHelper

from .conftest import TESTDATA

SEED = TESTDATA / "seed_cloud" / "data"
PROJECT = "6a1d1f52-5c6d-4b43-9d3e-0d2f7c1b2a11"


def _stream(slug: str, stream_id: str) -> dict[str, object]:
    return {
        "id": stream_id,
        "project_id": PROJECT,
        "project": "p--0000-0042",
        "device": "d--0000-0000-0000-0042",
        "variable": "v--0000-0042--" + slug.rsplit("--", 1)[1],
        "var_name": "IO",
        "mdo_type": "S",
        "multiplication_factor": 1,
        "division_factor": 1,
        "slug": slug,
    }


def test_add_data_loads_records_that_share_an_id(
    mock_cloud_private_nossl: tuple[str, CloudHelper], tmp_path: Path
) -> None:
    """The original keyed streams by slug: a fixture file with a copied record (same id, new slug) loads."""
    domain, cloud = mock_cloud_private_nossl
    one = "s--0000-0042--0000-0000-0000-0042--5001"
    two = "s--0000-0042--0000-0000-0000-0042--5003"
    shared_id = "0b7e3c1c-9a52-4bd2-8f43-7f6a8f0c4d55"
    fixture = {
        "users": {"dup@arch-iot.com": "pw"},
        "projects": [{"id": PROJECT, "slug": "p--0000-0042", "name": "Dup", "org": "dup-org"}],
        "devices": [{"slug": "d--0000-0000-0000-0042", "project": PROJECT, "org": "dup-org"}],
        "streams": [_stream(one, shared_id), _stream(two, shared_id)],
    }
    path = tmp_path / "dup.json"
    path.write_text(json.dumps(fixture))
    cloud.add_data(path)

    api = Api(domain)
    assert api.login(email="dup@arch-iot.com", password="pw")
    first, second = api.stream(one).get(), api.stream(two).get()
    assert first["id"] == shared_id  # the first record keeps its id
    assert second["slug"] == two and second["id"] != shared_id
    assert {s["slug"] for s in api.stream.get(device="d--0000-0000-0000-0042")["results"]} == {one, two}
    assert set(cloud.streams) == {one, two}


def _seeded(cloud: CloudHelper, domain: str) -> Api:
    """The original client's ``water_meter`` data (iotile-analytics loads the same files)."""
    cloud.add_data(SEED / "basic_cloud.json")
    cloud.add_data(SEED / "test_project_watermeter.json")
    cloud.stream_folder = SEED / "watermeter"
    api = Api(domain)
    assert api.login(email="test@arch-iot.com", password="test")
    return api


def test_properties_of_a_data_block(mock_cloud_private_nossl: tuple[str, CloudHelper]) -> None:
    """A ``b--`` property target is the data block itself (in its own org), even where no device has its
    number: ``AnalysisGroup.FromArchive`` reads the block's properties first."""
    domain, cloud = mock_cloud_private_nossl
    api = _seeded(cloud, domain)
    block = "b--0001-0000-0000-04e7"
    assert api.property.get(target=block) == {"count": 0, "next": None, "previous": None, "results": []}
    api.property.post({"target": block, "name": "Ship", "str_value": "Ever Given"})
    assert [(p["name"], p["value"]) for p in api.property.get(target=block)["results"]] == [("Ship", "Ever Given")]
    with pytest.raises(HttpForbiddenError):
        api.property.get(target="b--0001-0000-0000-04e8")  # no such block, no such device


def test_streams_of_a_data_block(mock_cloud_private_nossl: tuple[str, CloudHelper]) -> None:
    """``GET /stream/?block=`` lists a block's streams (iotile-analytics' archive groups), not every stream."""
    domain, cloud = mock_cloud_private_nossl
    api = _seeded(cloud, domain)
    block = "b--0001-0000-0000-04e7"
    assert api.stream.get(device="d--0000-0000-0000-00d2")["count"] > 0
    assert api.stream.get(block=block, all=1)["results"] == []
    assert api.stream.get(device=block)["results"] == []
    assert api.stream.get(archived=1)["results"] == []
    with pytest.raises(HttpNotFoundError):
        api.stream.get(block="b--0001-0000-0000-04e8")


def test_patch_device_to_an_unregistered_sensor_graph(mock_cloud_private_nossl: tuple[str, CloudHelper]) -> None:
    """The mock cloud fixtures store any sg/template slug on a device (the original fake did; the original
    client's ``test_device_patch`` relies on it)."""
    domain, cloud = mock_cloud_private_nossl
    cloud.quick_add_user("test@arch-iot.com", "test")
    project, _ = cloud.quick_add_project()
    device = cloud.quick_add_device(project, 15)
    api = Api(domain)
    assert api.login(email="test@arch-iot.com", password="test")
    assert api.device(device).get()["sg"] == "water-meter-v1-1-0"
    api.device(device).patch({"sg": "water-meter-v1-1-1", "template": "no-such-template-v1-0-0"})
    got = api.device(device).get()
    assert (got["sg"], got["template"]) == ("water-meter-v1-1-1", "no-such-template-v1-0-0")
    with pytest.raises(HttpNotFoundError):
        api.sg("water-meter-v1-1-1").get()  # nothing was registered


def test_a_plain_server_refuses_an_unregistered_sensor_graph(iotile_cloud: CloudHelper) -> None:
    """(Apart from the test above: with PostgreSQL both fixtures' servers share one database.)"""
    iotile_cloud.quick_add_user("test@arch-iot.com", "test")
    project, _ = iotile_cloud.quick_add_project()
    device = iotile_cloud.quick_add_device(project, 15)
    plain = Api(iotile_cloud.url)
    assert plain.login(email="test@arch-iot.com", password="test")
    with pytest.raises(HttpBadRequestError):
        plain.device(device).patch({"sg": "water-meter-v1-1-1"})
    assert plain.device(device).get()["sg"] == "water-meter-v1-1-0"
