"""The rest of the original API: notes, locations, aliases and taps, property templates, configuration
attributes, device keys and the read-only template catalogs, each walked by the owner, a member, a
read-only member, an outsider and a device token."""

from __future__ import annotations

import re
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


def _login(cloud: CloudHelper, email: str, username: str, is_staff: bool = False) -> Api:
    # quick_add_user makes every user an owner of every org: so users are made before roles are given
    cloud.quick_add_user(email, "pass-" + username, username=username, is_staff=is_staff)
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
    clients["staff"] = _client(cloud, f"jwt {_login(cloud, 'root@example.com', 'root', is_staff=True).token}")
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


def test_location_records_are_edited_by_members(world: World) -> None:
    one = {"target": world.device, "timestamp": "2026-03-01T10:00:00Z", "lat": 37.1, "lon": -122.2}
    location = world["member"].post("/location/", json=one).json()
    path = f"/location/{location['id']}/"
    patched = world["member"].patch(path, json={"lat": 40.25})
    assert patched.status_code == 200, patched.text
    assert patched.json() == {**location, "lat": "40.250000"}
    replaced = world["owner"].put(path, json={**one, "timestamp": "2026-03-04T00:00:00Z", "lon": 10})
    assert replaced.status_code == 200, replaced.text
    assert (replaced.json()["timestamp"], replaced.json()["lat"], replaced.json()["lon"]) == (
        "2026-03-04T00:00:00Z",
        "37.100000",
        "10.000000",
    )
    assert replaced.json()["user"] == "member"  # the record keeps who made it
    assert world["reader"].get(path).json()["lon"] == "10.000000"
    # The device keeps the position of its newest POST (the original changed only the record).
    assert world["owner"].get(f"/device/{world.device}/").json()["lat"] == "37.100000"
    # Read-only members, outsiders and device tokens change nothing.
    assert world["reader"].patch(path, json={"lat": 1}).status_code == 403
    assert world["outsider"].patch(path, json={"lat": 1}).status_code == 403
    assert world["device"].patch(path, json={"lat": 1}).status_code == 403
    assert world["outsider"].put(path, json=one).status_code == 403
    # Bad input: each field named, nothing stored.
    assert world["owner"].put(path, json={"lat": 1}).json() == {
        "target": ["This field is required."],
        "timestamp": ["This field is required."],
        "lon": ["This field is required."],
    }
    assert world["owner"].patch(path, json={"lat": None}).json() == {"lat": ["This field may not be null."]}
    assert world["owner"].patch(path, json={"lat": 91}).json() == {"lat": ["Ensure this value is between -90 and 90."]}
    assert world["owner"].patch(path, json={"timestamp": "soon"}).status_code == 400
    assert world["owner"].patch(path, json=[1]).status_code == 400
    unknown = world["owner"].patch(path, json={"target": "d--0000-0000-0000-0fff"})
    assert unknown.json() == {"target": ["Object with slug=d--0000-0000-0000-0fff does not exist."]}
    assert world["owner"].patch("/location/x/", json={"lat": 1}).json() == ["Location ID must be a integer"]
    assert world["owner"].patch("/location/999999/", json={"lat": 1}).status_code == 404
    assert world["reader"].get(path).json() == replaced.json()


# -- note attachments ---------------------------------------------------------------------------


def _attach(client: httpx.Client, note_id: int, name: str, data: bytes) -> httpx.Response:
    """The original's three steps: ask where to upload, upload, confirm."""
    target = client.post(f"/note/{note_id}/uploadurl/", json={"name": name})
    assert target.status_code == 202, target.text
    form = target.json()
    uploaded = client.post(form["url"], data=form["fields"], files={"file": (name, data)})
    assert uploaded.status_code == 204, uploaded.text
    return client.post(f"/note/{note_id}/uploadsuccess/", json={"name": name, "uuid": form["uuid"]})


def test_note_attachments(cloud: CloudHelper, world: World) -> None:
    body = {"target": world.device, "timestamp": "2026-03-01T10:00:00Z", "note": "Photo of the mast"}
    note = world["member"].post("/note/", json=body).json()
    assert note["attachment"] is None
    attached = _attach(world["member"], note["id"], "mast.png", b"\x89PNG fake image")
    assert attached.status_code == 202, attached.text
    file = attached.json()
    assert set(file) == {"id", "title", "url", "file_type", "created_on", "created_by"}
    assert (file["title"], file["file_type"]) == ("mast.png", "image")
    assert world["reader"].get(f"/note/{note['id']}/").json()["attachment"] == file
    listed = world["reader"].get("/note/", params={"target": world.device}).json()["results"]
    assert [n["attachment"] for n in listed] == [file]
    download = world["reader"].get(file["url"])
    assert download.status_code == 200 and download.content == b"\x89PNG fake image"
    assert download.headers["content-disposition"].startswith("attachment")
    # Stored owner-only in the data folder.
    stored = cloud.server.data_dir / "notes" / str(note["id"]) / file["id"] / "mast.png"
    assert stored.read_bytes() == b"\x89PNG fake image"
    assert stored.stat().st_mode & 0o777 == 0o600 and stored.parent.stat().st_mode & 0o777 == 0o700
    # A second file replaces the first (and its upload is removed).
    report = _attach(world["owner"], note["id"], "log.txt", b"rebooted twice").json()
    assert report["file_type"] == "unk" and not stored.exists()
    assert world["reader"].get(report["url"]).content == b"rebooted twice"
    # Permissions: readers may download, not attach; outsiders and device tokens neither.
    assert world["reader"].post(f"/note/{note['id']}/uploadurl/", json={"name": "x.png"}).status_code == 403
    assert world["outsider"].post(f"/note/{note['id']}/uploadurl/", json={"name": "x.png"}).status_code == 403
    assert world["device"].post(f"/note/{note['id']}/uploadurl/", json={"name": "x.png"}).status_code == 403
    assert world["outsider"].get(report["url"]).status_code == 403
    assert world["device"].get(report["url"]).status_code == 403
    form = world["owner"].post(f"/note/{note['id']}/uploadurl/", json={"name": "x.png"}).json()
    sneaky = world["reader"].post(form["url"], data=form["fields"], files={"file": ("x.png", b"x")})
    assert sneaky.status_code == 403
    # Bad input.
    owner = world["owner"]
    assert owner.post(f"/note/{note['id']}/uploadurl/", json={}).json() == {"name": ["This field is required."]}
    bad_name = owner.post(f"/note/{note['id']}/uploadurl/", json={"name": "../x"}).json()
    assert bad_name == {"name": ["Enter a file name without folders."]}
    assert owner.post("/note/abc/uploadurl/", json={"name": "a"}).json() == ["Note ID must be a integer"]
    assert owner.post("/note/999999/uploadurl/", json={"name": "a"}).status_code == 404
    wrong_key = owner.post(form["url"], data={"key": "not-a-uuid/x.png"}, files={"file": ("x.png", b"x")})
    assert wrong_key.json() == {"key": ["The key does not belong to this note."]}
    escape = owner.post(form["url"], data={"key": f"{form['uuid']}/../x"}, files={"file": ("x", b"x")})
    assert escape.status_code == 400
    assert owner.post(form["url"], data=form["fields"]).status_code == 400  # no file
    too_big = owner.post(form["url"], data=form["fields"], files={"file": ("x.png", b"x" * 4_096_001)})
    assert too_big.json() == {"file": ["File too large: at most 4096000 bytes."]}
    never = owner.post(f"/note/{note['id']}/uploadsuccess/", json={"name": "x.png", "uuid": form["uuid"]})
    assert never.json() == {"name": ["No file x.png was uploaded for this note."]}
    assert owner.post(f"/note/{note['id']}/uploadsuccess/", json={"name": "x.png", "uuid": "nope"}).json() == {
        "uuid": ["Must be a valid UUID."]
    }
    duplicate = owner.post(f"/note/{note['id']}/uploadsuccess/", json={"name": "log.txt", "uuid": report["id"]})
    assert duplicate.json() == {"detail": "Illegal or duplicate UUID"}
    assert owner.get(f"/note/{note['id']}/").json()["attachment"] == report
    # Deleting the note removes its files.
    assert owner.delete(f"/note/{note['id']}/").status_code == 204
    assert not (cloud.server.data_dir / "notes" / str(note["id"])).exists()
    bare = owner.post("/note/", json=body).json()
    assert owner.get(f"/note/{bare['id']}/attachment/").status_code == 404


# -- aliases and taps ---------------------------------------------------------------------------


def test_alias_follows_a_sensor_across_a_device_swap(cloud: CloudHelper, world: World) -> None:
    spare = cloud.quick_add_device(world.project["id"], 0x52)
    spare_stream = f"s--{world.project['slug'][3:]}--{spare[3:]}--5001"
    alias = world["owner"].post("/alias/", json={"name": "Pump 1 flow", "org": world.org})
    assert alias.status_code == 201, alias.text
    slug = alias.json()["slug"]
    assert set(alias.json()) == {"id", "slug", "gid", "name", "org", "created_on", "created_by"}
    # The original's formatted_alias_id: four hex groups, found only as written.
    gid = alias.json()["gid"]
    assert re.fullmatch("[0-9a-f]{4}(-[0-9a-f]{4}){3}", gid) and int(gid.replace("-", ""), 16) == alias.json()["id"]
    assert slug == f"a--{gid}"
    assert world["owner"].get(f"/alias/a--{gid[10:]}/").status_code == 404  # the short form of an earlier version
    assert world["owner"].get(f"/alias/{slug.upper()}/").status_code == 404
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


# -- property templates -------------------------------------------------------------------------


def test_property_templates_and_their_enums(world: World) -> None:
    body = {"org": world.org, "name": "Site", "type": "str", "default": "north", "extra": {"ui": "select"}}
    created = world["owner"].post("/propertytemplate/", json=body)
    assert created.status_code == 201, created.text
    template = created.json()
    assert set(template) == {"id", "org", "type", "name", "default", "enums", "extra", "created_by"}
    assert template["enums"] == [] and template["extra"] == {"ui": "select"}
    enum_url = f"/propertytemplate/{template['id']}/enum/"
    assert world["owner"].post(enum_url, json={"value": "north"}).status_code == 201
    assert world["owner"].post(enum_url, json={"value": "south"}).status_code == 201
    assert world["owner"].post(enum_url, json={"value": "south"}).status_code == 201  # get or create
    assert world["reader"].get(f"/propertytemplate/{template['id']}/").json()["enums"] == ["north", "south"]
    assert world["member"].get(enum_url).json()["count"] == 2
    assert world["owner"].request("DELETE", enum_url, json={"value": "west"}).json() == {
        "error": "Enum Value not found in Property Template"
    }
    assert world["owner"].request("DELETE", enum_url, json={"value": "south"}).status_code == 204
    # Only org admins change them; outsiders never see them.
    assert world["member"].post("/propertytemplate/", json={**body, "name": "Other"}).status_code == 403
    assert world["reader"].patch(f"/propertytemplate/{template['id']}/", json={"default": "x"}).status_code == 403
    assert world["outsider"].get("/propertytemplate/").json()["count"] == 0
    assert world["outsider"].get(f"/propertytemplate/{template['id']}/").status_code == 404
    assert world["device"].get("/propertytemplate/").status_code == 403
    # Bad input.
    assert world["owner"].post("/propertytemplate/", json=body).json() == {
        "non_field_errors": ["The fields org, name must make a unique set."]
    }
    assert world["owner"].post("/propertytemplate/", json={**body, "name": "T", "type": "float"}).status_code == 400
    assert world["owner"].post("/propertytemplate/", json={"name": "T"}).json() == {"org": ["This field is required."]}
    assert world["owner"].get("/propertytemplate/", params={"org": "no-such-org"}).status_code == 404
    assert world["owner"].delete(f"/propertytemplate/{template['id']}/").status_code == 204


# -- configuration attributes -------------------------------------------------------------------


def test_configuration_attributes(world: World) -> None:
    root = world["staff"]
    name = root.post("/config/name/", json={"name": ":classic:ui:device", "tags": ["ui"]})
    assert name.status_code == 201 and name.json()["tags"] == ["ui"]
    assert root.post("/config/name/", json={"name": "no colon"}).status_code == 400
    assert root.get("/key/").status_code == 405
    key = root.post("/key/", json={"slug": world.device, "type": "SSH", "secret": "s3cr3t", "downloadable": True})
    assert key.status_code == 201 and key.json()["secret"] == "s3cr3t"
    assert world["member"].post("/config/name/", json={"name": ":mine"}).status_code == 403
    assert world["member"].get("/config/name/", params={"tag": "ui"}).json()["count"] == 1
    # Device keys: uploaded by staff, downloaded by members.
    assert world["owner"].post("/key/", json={"slug": world.device, "secret": "x"}).status_code == 403
    assert world["owner"].get("/key/").status_code == 403
    assert world["owner"].get(f"/device/{world.device}/key/", params={"type": "ssh"}).json() == {"key": "s3cr3t"}
    assert world["owner"].get(f"/device/{world.device}/key/", params={"type": "usr"}).status_code == 403
    assert world["owner"].get(f"/device/{world.device}/key/").json() == {"msg": "No type specified"}

    org_level = world["owner"].post(
        "/config/attr/", json={"target": f"^{world.org}", "name": ":classic:ui:device", "data": {"a": 1}}
    )
    assert org_level.status_code == 201, org_level.text
    assert set(org_level.json()) == {"id", "target", "name", "data", "updated_on"}
    # A device without its own attribute finds its org's; then its own.
    search = {"target": world.device, "name": ":classic:ui:device"}
    assert world["reader"].get("/config/attr/search/", params=search).json()["data"] == {"a": 1}
    own = world["member"].post(
        "/config/attr/",
        json={"target": world.device, "name": ":classic:ui:device", "data": {"a": 2}, "log_as_note": True},
    )
    assert own.status_code == 201
    assert world["reader"].get("/config/attr/search/", params=search).json()["data"] == {"a": 2}
    notes = world["owner"].get("/note/", params={"target": world.device}).json()["results"]
    assert notes[-1]["type"] == "si" and "a: 2" in notes[-1]["note"]
    again = world["member"].post(
        "/config/attr/", json={"target": world.device, "name": ":classic:ui:device", "data": 3}
    )
    assert again.json()["id"] == own.json()["id"] and again.json()["data"] == 3  # overwritten in place
    assert world["reader"].get("/config/attr/", params={"target": world.device}).json()["count"] == 1
    # Permissions and bad input.
    assert world["reader"].post("/config/attr/", json={**search, "data": 1}).status_code == 403
    assert world["outsider"].post("/config/attr/", json={**search, "data": 1}).status_code == 403
    assert world["outsider"].get("/config/attr/", params={"target": world.device}).json()["count"] == 0
    assert world["outsider"].get(f"/config/attr/{own.json()['id']}/").status_code == 403
    assert world["outsider"].get("/config/attr/search/", params=search).status_code == 403
    assert world["owner"].get("/config/attr/").json() == {"target": ["This field is required."]}
    assert world["owner"].get("/config/attr/search/").json() == {"error": "Missing target and/or name"}
    assert world["owner"].post("/config/attr/", json={**search, "name": ":unknown", "data": 1}).json() == [
        "Most use a valid Configuration Attribute Name"
    ]
    assert world["owner"].post("/config/attr/", json={**search, "target": "x--1", "data": 1}).status_code == 400
    assert world["owner"].patch(f"/config/attr/{own.json()['id']}/", json={"data": 1}).json() == {
        "error": "PUT and PATCH methods are not supported; use POST with the right target"
    }
    assert world["owner"].get("/config/attr/abc/").status_code == 400
    assert world["owner"].delete(f"/config/attr/{own.json()['id']}/").status_code == 204


def test_configuration_pages_follow_the_original_default_pagination(world: World) -> None:
    """No pagination class of their own in the original: its default, 100 a page, at most 1000."""
    for n in range(1, 102):
        assert world["staff"].post("/config/name/", json={"name": f":page:{n:03d}"}).status_code == 201
        attr = {"target": world.device, "name": f":page:{n:03d}", "data": n}
        assert world["owner"].post("/config/attr/", json=attr).status_code == 201
    for path, params in (("/config/name/", {}), ("/config/attr/", {"target": world.device})):
        first = world["reader"].get(path, params=params).json()
        assert first["count"] == 101 and len(first["results"]) == 100 and first["next"], path
        assert len(world["reader"].get(first["next"]).json()["results"]) == 1
        assert len(world["reader"].get(path, params={**params, "page_size": 5000}).json()["results"]) == 101
        assert len(world["reader"].get(path, params={**params, "page_size": 7}).json()["results"]) == 7


# -- built-in templates -------------------------------------------------------------------------


def test_builtin_templates_are_read_only(world: World) -> None:
    templates = world["reader"].get("/pt/").json()
    assert templates["count"] == 4 and templates["results"][0]["slug"] == "default-template-v1-0-0"
    assert world["reader"].get("/pt/shipping-template-v1-0-0/").json()["extra_data"]["mobile"]["waveform"] is True
    assert world["reader"].get("/ot/default-template-v1-0-0/").json()["version"] == "v1.0.0"
    assert world["reader"].get("/pt/nope/").status_code == 404
    # The original's serializers: versions are write-only, and one creation time for the whole catalog
    # (the original stamps its install time on each built-in record).
    stamp = world["reader"].get("/sg/water-meter-v1-1-0/").json()["created_on"]
    for template in templates["results"]:
        assert set(template) == {"id", "name", "slug", "org", "version", "extra_data", "created_on"}
        assert template["org"] == "arch-systems" and template["created_on"] == stamp
    org_template = world["reader"].get("/ot/").json()["results"][0]
    assert set(org_template) == {"id", "name", "slug", "version", "extra_data", "created_on"}
    assert org_template["created_on"] == stamp == world["reader"].get("/dt/pod-1gg1-v3-0-0/").json()["created_on"]
    # A project names one of them; an unknown one is the original's SlugRelatedField error.
    project = {"name": "Trucks", "org": world.org, "project_template": "shipping-template-v1-0-0"}
    assert world["owner"].post("/project/", json=project).json()["project_template"] == "shipping-template-v1-0-0"
    unknown = world["owner"].post("/project/", json={**project, "project_template": "water-meter-v1-1-0"})
    assert unknown.json() == {"project_template": ["Object with slug=water-meter-v1-1-0 does not exist."]}
    assert world["reader"].get("/component/").json()["count"] == 0
    assert world["owner"].post("/pt/", json={"name": "Mine"}).status_code == 403
    # As the original: variable and widget templates are never read through the API.
    assert world["owner"].get("/vartemplate/").json() == {"detail": 'Method "GET" not allowed.'}
    assert world["owner"].get("/widget/1/").status_code == 405
    assert world["owner"].post("/vartemplate/", json={}).status_code == 403


# -- device sub-routes --------------------------------------------------------------------------


def test_device_health_status_and_mask(world: World) -> None:
    status = world["reader"].get(f"/device/{world.device}/status/").json()
    assert status["alert"] == "DSBL" and status["last_report_ts"] is None and status["health_check_period"] == 7200
    changed = world["member"].patch(
        f"/device/{world.device}/health/",
        json={"health_check_enabled": True, "health_check_period": 3600, "notification_recipients": ["a@b.c"]},
    )
    assert changed.json() == {
        "health_check_enabled": True,
        "health_check_period": 3600,
        "notification_recipients": ["a@b.c"],
    }
    assert world["reader"].get(f"/device/{world.device}/health/").json()["alert"] == "UNK"
    assert world["reader"].patch(f"/device/{world.device}/health/", json={"health_check_period": 1}).status_code == 403
    assert (
        world["member"].patch(f"/device/{world.device}/health/", json={"notification_recipients": "x"}).status_code
        == 400
    )
    assert world["reader"].get(f"/device/{world.device}/mask/").json() == {"start": None, "end": None}
    mask = {"start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z"}
    assert world["member"].patch(f"/device/{world.device}/mask/", json=mask).status_code == 403  # admins only
    assert world["owner"].patch(f"/device/{world.device}/mask/", json=mask).json() == mask
    assert world["reader"].get(f"/device/{world.device}/mask/").json() == mask
    assert world["owner"].patch(f"/device/{world.device}/mask/", json={}).json() == {
        "non_field_errors": ["At least one of start/end should be defined"]
    }
    assert world["owner"].patch(
        f"/device/{world.device}/mask/", json={"start": mask["end"], "end": mask["start"]}
    ).json() == {"non_field_errors": ["Start is after end"]}
    assert world["owner"].delete(f"/device/{world.device}/mask/").status_code == 204
    assert world["outsider"].get(f"/device/{world.device}/status/").status_code == 403


def test_device_reset_trim_and_upgrade(cloud: CloudHelper, api: Api, world: World) -> None:
    points = [{"stream": world.stream, "timestamp": f"2026-01-0{d}T00:00:00Z", "int_value": d} for d in range(1, 6)]
    api.data.post(points)
    trimmed = world["member"].post(
        f"/device/{world.device}/trim/", json={"start": "2026-01-02T00:00:00Z", "end": "2026-01-04T00:00:00Z"}
    )
    assert trimmed.status_code == 202 and trimmed.json() == {"trim": "scheduled"}
    assert [p["int_value"] for p in api.data.get(filter=world.stream)["results"]] == [2, 3, 4]
    assert (
        world["reader"].post(f"/device/{world.device}/trim/", json={"start": "2026-01-01T00:00:00Z"}).status_code == 403
    )
    api.property.post({"target": world.device, "name": "site", "str_value": "north"})
    assert world["member"].post(f"/device/{world.device}/reset/", json={}).status_code == 403  # admins only
    reset = world["owner"].post(f"/device/{world.device}/reset/", json={"include_properties": False})
    assert reset.status_code == 202 and reset.json()["reset"] == "scheduled"
    assert api.data.get(filter=world.stream)["count"] == 0
    assert api.property.get(target=world.device)["count"] == 1
    upgrade = world["member"].post(f"/device/{world.device}/upgrade/", json={"firmware": "2.1.0"})
    assert upgrade.json() == {"slug": world.device, "msg": f"Device {world.device} firmware upgraded to 2.1.0"}
    # the notice is a note on the device: a write, so not for read-only members
    assert world["reader"].post(f"/device/{world.device}/upgrade/", json={"firmware": "2.1.0"}).status_code == 403
    assert world["owner"].post(f"/device/{world.device}/upgrade/", json={"firmware": "x" * 11}).status_code == 400
    assert world["outsider"].post(f"/device/{world.device}/reset/", json={}).status_code == 403


def test_device_sg_template_versions_filterlog(world: World) -> None:
    sg = world["reader"].get(f"/device/{world.device}/sg/")
    assert sg.status_code == 200 and sg.json()["slug"] == "water-meter-v1-1-0"
    assert world["reader"].get("/sg/water-meter-v1-1-0/").json() == sg.json()
    template = world["reader"].get(f"/device/{world.device}/template/").json()
    device_template = world["reader"].get(f"/device/{world.device}/").json()["template"]
    assert template["slug"] == device_template
    assert template == world["reader"].get(f"/dt/{device_template}/").json()
    assert world["reader"].get(f"/device/{world.device}/versions/").json() == []
    assert world["reader"].get(f"/device/{world.device}/filterlog/").json() == {
        "slug": world.device,
        "device_filter_logs": [],
    }
    for sub in ("sg", "template", "versions", "filterlog"):
        assert world["outsider"].get(f"/device/{world.device}/{sub}/").status_code == 403
        assert world["owner"].get(f"/device/d--0000-0000-0000-0fff/{sub}/").status_code == 404


# -- sub-routes ---------------------------------------------------------------------------------


def test_invite_a_member_who_accepts(cloud: CloudHelper, world: World) -> None:
    invited = world["owner"].post(f"/org/{world.org}/invite/", json={"email": "New.Person@example.com", "role": "r1"})
    assert invited.status_code == 201 and invited.json()["email"] == "new.person@example.com"
    token = invited.json()["token"]
    with cloud.engine.connect() as conn:  # only its digest is kept
        stored = conn.execute(sa.select(db.invitations.c.token)).scalar_one()
    assert stored != token and len(stored) == 64
    pending = world["owner"].get(f"/org/{world.org}/pending/").json()
    assert [(p["email"], p["sent_by"]) for p in pending["results"]] == [("new.person@example.com", "test")]
    assert world["member"].get(f"/org/{world.org}/pending/").status_code == 403
    assert world["member"].post(f"/org/{world.org}/invite/", json={"email": "x@example.com"}).status_code == 403
    assert world["outsider"].post(f"/org/{world.org}/invite/", json={"email": "x@example.com"}).status_code == 404
    assert world["owner"].post(f"/org/{world.org}/invite/", json={"email": "not-an-email"}).status_code == 400
    # The invitee signs up (or already has an account) and accepts with the token the admin passed on:
    # signing up with the invited address is not enough (nobody checks who owns an email here).
    newcomer = _login(cloud, "new.person@example.com", "newcomer")
    with _client(cloud, f"jwt {newcomer.token}") as client:
        assert client.get(f"/org/{world.org}/").status_code == 404
        assert client.post(f"/org/{world.org}/accept/", json={}).status_code == 400
        assert client.post(f"/org/{world.org}/accept/", json={"token": "guess"}).status_code == 404
        accepted = client.post(f"/org/{world.org}/accept/", json={"token": token})
        assert accepted.status_code == 201 and accepted.json()["role"] == "r1"
        assert client.get(f"/org/{world.org}/").status_code == 200
        assert client.post(f"/org/{world.org}/accept/", json={"token": token}).status_code == 404
    assert world["owner"].get(f"/org/{world.org}/pending/").json()["count"] == 0
    assert world["outsider"].post(f"/org/{world.org}/accept/", json={"token": token}).status_code == 404
    again = world["owner"].post(f"/org/{world.org}/invite/", json={"email": "new.person@example.com"})
    assert again.status_code == 400  # already a member through it


def test_org_devices_project_properties_and_password(cloud: CloudHelper, world: World) -> None:
    listing = world["reader"].get(f"/org/{world.org}/devices/").json()
    assert listing["count"] == 1 and listing["next_page"] is None and listing["results"][0]["slug"] == world.device
    assert world["outsider"].get(f"/org/{world.org}/devices/").status_code == 404
    project = world.project["id"]
    created = world["member"].post(f"/project/{project}/new_property/", json={"name": "site", "str_value": "north"})
    assert created.status_code == 201 and created.json()["value"] == "north"
    assert world["reader"].get(f"/project/{project}/properties/").json()[0]["name"] == "site"
    assert (
        world["reader"].post(f"/project/{project}/new_property/", json={"name": "x", "int_value": 1}).status_code == 403
    )
    assert world["member"].post(f"/project/{project}/new_property/", json={"name": "y"}).status_code == 400
    assert world["outsider"].get(f"/project/{project}/properties/").status_code == 404
    changed = world["member"].post("/account/member/set_password/", json={"password": "a-new-password"})
    assert changed.json() == {"status": "password set"}
    assert Api(cloud.url).login(email="member@example.com", password="a-new-password")
    assert world["member"].post("/account/member/set_password/", json={"password": "short"}).status_code == 400
    assert world["member"].post("/account/reader/set_password/", json={"password": "a-new-password"}).status_code == 404


def test_variable_type_stream_csv_event_url_and_streamer_reports(cloud: CloudHelper, api: Api, world: World) -> None:
    variable = f"v--{world.project['slug'][3:]}--5001"
    var_type = world["reader"].get(f"/variable/{variable}/type/")
    assert var_type.status_code == 200
    assert var_type.json() == world["reader"].get(f"/vartype/{var_type.json()['slug']}/").json()
    api.data.post([{"stream": world.stream, "timestamp": "2026-01-01T00:00:00Z", "int_value": 7}])
    csv_text = world["reader"].get(f"/stream/{world.stream}/csv/").text
    frame = world["reader"].get("/df/", params={"filter": world.stream, "format": "csv"}).text.splitlines()
    assert frame[0] == "row,value,stream_slug"  # the original's data frame columns
    assert [line.rsplit(",", 1)[0] for line in frame[1:]] == csv_text.splitlines()[1:]
    assert csv_text.splitlines()[0] == "timestamp,value" and csv_text.splitlines()[1].startswith(
        "2026-01-01T00:00:00Z,"
    )
    assert world["outsider"].get(f"/stream/{world.stream}/csv/").status_code in (403, 404)
    event_stream = f"s--{world.project['slug'][3:]}--0000-0000-0000-0051--5002"
    plain = api.event.post({"stream": event_stream, "timestamp": "2026-01-01T00:00:00Z", "extra_data": {}})
    assert world["reader"].get(f"/event/{plain['id']}/url/").json() == {"error": "Event has no data"}
    assert world["outsider"].get(f"/event/{plain['id']}/url/").status_code == 403
    streamer = f"t--{world.device[3:]}--0000"
    assert world["reader"].get(f"/streamer/{streamer}/report/").json()["count"] == 0
    assert world["owner"].get("/production/device/").status_code == 403


NEW_PATHS = [
    "/note/",
    "/note/{note_id}/",
    "/location/",
    "/alias/",
    "/alias/{slug}/",
    "/tap/",
    "/tap/{tap_id}/",
    "/propertytemplate/",
    "/propertytemplate/{template_id}/enum/",
    "/config/name/",
    "/config/attr/",
    "/config/attr/search/",
    "/key/",
    "/vartemplate/",
    "/widget/",
    "/pt/",
    "/ot/",
    "/component/",
    "/account/{slug}/set_password/",
    "/org/{slug}/invite/",
    "/org/{slug}/pending/",
    "/org/{slug}/devices/",
    "/project/{project_id}/properties/",
    "/project/{project_id}/new_property/",
    "/device/{slug}/health/",
    "/device/{slug}/mask/",
    "/device/{slug}/reset/",
    "/device/{slug}/sg/",
    "/device/{slug}/status/",
    "/device/{slug}/template/",
    "/device/{slug}/trim/",
    "/device/{slug}/upgrade/",
    "/device/{slug}/versions/",
    "/device/{slug}/filterlog/",
    "/variable/{slug}/type/",
    "/stream/{slug}/csv/",
    "/event/{event_id}/url/",
    "/streamer/{slug}/report/",
    "/production/device/",
]


NEW_OPERATIONS = [
    ("patch", "/location/{location_id}/"),
    ("put", "/location/{location_id}/"),
    ("post", "/note/{note_id}/uploadurl/"),
    ("post", "/note/{note_id}/upload/"),
    ("post", "/note/{note_id}/uploadsuccess/"),
    ("get", "/note/{note_id}/attachment/"),
]


def test_new_routes_are_in_the_openapi_description(cloud: CloudHelper) -> None:
    paths = httpx.get(cloud.url + "/api/schema/").json()["paths"]
    missing = [p for p in NEW_PATHS if "/api/v1" + p not in paths]
    assert not missing
    absent = [(m, p) for m, p in NEW_OPERATIONS if m not in paths.get("/api/v1" + p, {})]
    assert not absent
