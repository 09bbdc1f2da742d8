"""The rest of the original API: notes, locations, aliases and taps, property templates, configuration
attributes, device keys and the read-only template catalogs, each walked by the owner, a member, a
read-only member, an outsider and a device token."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from iotile_cloud.api.connection import Api
from iotile_cloud.server import db
from iotile_cloud.testing.cloud import CloudHelper


@dataclass
class World:
    org: str
    project: dict[str, Any]
    device: str
    stream: str
    clients: dict[str, httpx.Client]

    def __getitem__(self, who: str) -> httpx.Client:
        return self.clients[who]


def _client(cloud: CloudHelper, header: str) -> httpx.Client:
    return httpx.Client(base_url=cloud.url + "/api/v1", headers={"Authorization": header}, timeout=30)


def _login(cloud: CloudHelper, email: str, username: str) -> Api:
    cloud.quick_add_user(email, "pass-" + username, username=username)
    with cloud.engine.begin() as conn:  # helper users share helper orgs: start with no memberships
        user = conn.execute(sa.select(db.users.c.id).where(db.users.c.slug == username)).scalar_one()
        conn.execute(sa.delete(db.memberships).where(db.memberships.c.user_id == user))
    api = Api(cloud.url)
    assert api.login(email=email, password="pass-" + username)
    return api


@pytest.fixture
def world(cloud: CloudHelper, api: Api) -> Iterator[World]:
    org = api.org.post({"name": "Fleet Owner"})["slug"]
    project = api.project.post({"name": "Site", "org": org})
    device = cloud.quick_add_device(project["id"], 0x51)
    stream = f"s--{project['slug'][3:]}--0000-0000-0000-0051--5001"
    clients = {"owner": _client(cloud, f"jwt {api.token}")}
    for role, who in (("m1", "member"), ("r1", "reader")):
        other = _login(cloud, f"{who}@example.com", who)
        api.org(org).register.post({"user": who, "role": role})
        clients[who] = _client(cloud, f"jwt {other.token}")
    clients["outsider"] = _client(cloud, f"jwt {_login(cloud, 'out@example.com', 'out').token}")
    key = api.device(device).key.get(type="a-jwt")["key"]
    clients["device"] = _client(cloud, f"a-jwt {key}")
    yield World(org, project, device, stream, clients)
    for client in clients.values():
        client.close()


# -- notes --------------------------------------------------------------------------------------


def test_notes_on_devices_and_streams(world: World) -> None:
    body = {"target": world.device, "timestamp": "2026-03-01T10:00:00Z", "note": "Replaced the battery"}
    created = world["member"].post("/note/", json=body)
    assert created.status_code == 201, created.text
    note = created.json()
    assert set(note) == {"id", "target", "timestamp", "note", "type", "user_info", "attachment"}
    assert note["type"] == "ui" and note["user_info"]["username"] == "@member" and note["attachment"] is None
    many = world["owner"].post(
        "/note/",
        json=[
            {"target": world.stream, "timestamp": "2026-03-01T11:00:00Z", "note": "a"},
            {"target": world.stream, "timestamp": "2026-03-02T11:00:00Z", "note": "b"},
        ],
    )
    assert many.status_code == 201 and many.json() == {"count": 2}
    page = world["reader"].get("/note/", params={"target": world.stream}).json()
    assert [n["note"] for n in page["results"]] == ["a", "b"]
    assert (
        world["reader"].get("/note/", params={"target": world.stream, "lastn": 1}).json()["results"][0]["note"] == "b"
    )
    assert (
        world["reader"].get("/note/", params={"target": world.stream, "start": "2026-03-02T00:00:00Z"}).json()["count"]
        == 1
    )
    assert world["reader"].get(f"/note/{note['id']}/").json()["note"] == "Replaced the battery"
    # Read-only members read but do not write; outsiders neither.
    assert world["reader"].post("/note/", json=body).status_code == 403
    assert world["outsider"].post("/note/", json=body).status_code == 400
    assert world["outsider"].get("/note/", params={"target": world.device}).json()["count"] == 0
    assert world["outsider"].get(f"/note/{note['id']}/").status_code == 403
    assert world["outsider"].delete(f"/note/{note['id']}/").status_code == 403
    # Bad input.
    assert world["owner"].get("/note/").json() == {"target": ["This field is required."]}
    assert world["owner"].get("/note/abc/").json() == ["Note ID must be a integer"]
    assert world["owner"].get("/note/999999/").status_code == 404
    missing = world["owner"].post("/note/", json={"target": world.device}).json()
    assert missing == {"timestamp": ["This field is required."], "note": ["This field is required."]}
    assert world["owner"].patch(f"/note/{note['id']}/", json={"note": "Battery swapped"}).json()["note"] == (
        "Battery swapped"
    )
    assert world["owner"].delete(f"/note/{note['id']}/").status_code == 204


def test_device_token_notes_only_on_its_device(cloud: CloudHelper, world: World) -> None:
    body = {"target": world.device, "timestamp": "2026-03-01T10:00:00Z", "note": "from the device"}
    assert world["device"].post("/note/", json=body).status_code == 403  # user routes refuse device tokens


# -- locations ----------------------------------------------------------------------------------


def test_location_history_moves_the_device(world: World) -> None:
    one = {"target": world.device, "timestamp": "2026-03-01T10:00:00Z", "lat": 37.1, "lon": -122.2}
    created = world["member"].post("/location/", json=one)
    assert created.status_code == 201, created.text
    assert created.json()["lat"] == "37.100000" and created.json()["user"] == "member"
    many = (
        world["owner"]
        .post(
            "/location/",
            json=[
                {"target": world.device, "timestamp": "2026-03-02T10:00:00Z", "lat": 38.0, "lon": -121.0},
                {"target": world.device, "timestamp": "2026-03-03T10:00:00Z", "lat": 39.5, "lon": -120.5},
            ],
        )
        .json()
    )
    assert many["count"] == 2 and many["last"]["lat"] == "39.500000"
    device = world["owner"].get(f"/device/{world.device}/").json()
    assert (device["lat"], device["lon"]) == ("39.500000", "-120.500000")
    assert world["reader"].get("/location/", params={"target": world.device}).json()["count"] == 3
    assert world["outsider"].get("/location/", params={"target": world.device}).json()["count"] == 0
    assert world["owner"].get("/location/").json()["count"] == 0  # no target: nothing, as the original
    # Data mask: only locations inside it.
    assert world["owner"].patch(
        f"/device/{world.device}/mask/", json={"start": "2026-03-02T00:00:00Z"}
    ).status_code in (
        200,
        202,
    )
    assert world["owner"].get("/location/", params={"target": world.device, "mask": 1}).json()["count"] == 2
    # Permissions and bad input.
    assert world["reader"].post("/location/", json=one).status_code == 403
    assert world["outsider"].post("/location/", json=one).status_code == 400
    mixed = [one, {**one, "target": "d--0000-0000-0000-0052"}]
    assert world["owner"].post("/location/", json=mixed).json() == [
        "Found more than one target. All entries must be for same target."
    ]
    assert world["owner"].post("/location/", json={**one, "lat": 123}).status_code == 400
    assert world["owner"].get("/location/x/").json() == ["Location ID must be a integer"]


# -- aliases and taps ---------------------------------------------------------------------------


def test_alias_follows_a_sensor_across_a_device_swap(cloud: CloudHelper, world: World) -> None:
    spare = cloud.quick_add_device(world.project["id"], 0x52)
    spare_stream = f"s--{world.project['slug'][3:]}--{spare[3:]}--5001"
    alias = world["owner"].post("/alias/", json={"name": "Pump 1 flow", "org": world.org})
    assert alias.status_code == 201, alias.text
    slug = alias.json()["slug"]
    assert set(alias.json()) == {"id", "slug", "gid", "name", "org", "created_on", "created_by"}
    for when, stream in (("2026-01-01T00:00:00Z", world.stream), ("2026-02-01T00:00:00Z", spare_stream)):
        tap = world["owner"].post("/tap/", json={"alias": slug, "timestamp": when, "stream": stream})
        assert tap.status_code == 201, tap.text
    taps = world["owner"].get("/tap/", params={"target": slug}).json()["results"]
    assert [t["stream"] for t in taps] == [world.stream, spare_stream]
    assert world["member"].get("/alias/").json()["count"] == 1  # members list them...
    assert world["member"].get(f"/alias/{slug}/").status_code == 403  # ...only admins manage them
    assert world["member"].post("/alias/", json={"name": "x", "org": world.org}).status_code == 403
    assert (
        world["reader"]
        .post("/tap/", json={"alias": slug, "timestamp": "2026-03-01T00:00:00Z", "stream": world.stream})
        .status_code
        == 403
    )
    assert world["outsider"].get("/alias/").json()["count"] == 0
    assert world["outsider"].get(f"/alias/{slug}/").status_code == 404
    assert world["outsider"].get(f"/tap/{taps[0]['id']}/").status_code == 404
    assert world["device"].get("/alias/").status_code == 403
    # Bad input: a stream of another org, unknown alias, missing fields.
    other_org = world["outsider"].post("/org/", json={"name": "Elsewhere"}).json()["slug"]
    other_alias = world["outsider"].post("/alias/", json={"name": "Theirs", "org": other_org}).json()["slug"]
    assert world["outsider"].post(
        "/tap/", json={"alias": other_alias, "timestamp": "2026-01-01T00:00:00Z", "stream": world.stream}
    ).json() == ["Stream is not in the Org of Alias"]
    assert world["owner"].post("/tap/", json={}).status_code == 400
    assert world["owner"].get("/alias/a--zz/").status_code == 404
    moved = world["owner"].patch(f"/tap/{taps[1]['id']}/", json={"timestamp": "2026-02-15T00:00:00Z"})
    assert moved.json()["timestamp"] == "2026-02-15T00:00:00Z"
    assert world["owner"].delete(f"/alias/{slug}/").status_code == 204
    assert world["owner"].get("/tap/").json()["count"] == 0
