"""Org isolation: every route, walked as a user of another org and as an anonymous caller.

The outsider must never see the owner's objects (404, 403, or an empty list) and never change
anything (the whole database is compared before and after).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.routing import APIRoute

from iotile_cloud.api.connection import Api
from iotile_cloud.reports import Reading, SignedListReport
from iotile_cloud.server import db, points
from iotile_cloud.server.app import routers
from iotile_cloud.server.context import device_or_user
from iotile_cloud.testing.cloud import CloudHelper

OPEN = {
    ("GET", "/api/v1/"),  # the API root lists the resource URLs, nothing else
    ("GET", "/api/v1/server/"),
    ("POST", "/api/v1/account/"),
    ("POST", "/api/v1/auth/login/"),
    ("POST", "/api/v1/auth/api-jwt-auth/"),
    ("POST", "/api/v1/auth/api-jwt-refresh/"),
    ("POST", "/api/v1/auth/api-jwt-verify/"),
    ("POST", "/api/v1/auth/password/reset/"),
}
# Routes where the outsider acts on its own account or makes its own org: allowed to write.
OWN = {
    ("POST", "/api/v1/org/"),
    ("POST", "/api/v1/account/"),
    ("PATCH", "/api/v1/account/{slug}/"),
    ("POST", "/api/v1/auth/logout/"),
}


# Bookkeeping every request may touch: request/error counters (all workers, written about once a second)
# and failed-login counts.
BOOKKEEPING = {"counters", "login_failures"}


def snapshot(cloud: CloudHelper) -> dict[str, list[Any]]:
    """Every table's rows; stored points as points (background compaction may regroup segments)."""
    with cloud.engine.connect() as conn:
        tables = {
            t.name: sorted(map(tuple, conn.execute(sa.select(t)).all()), key=repr)
            for t in db.metadata.sorted_tables
            if t.name not in BOOKKEEPING and t.name != "segments"
        }
        stored = points.Points.concat_or_empty(
            [points.decode(row.payload, row.stream_pk) for row in conn.execute(sa.select(db.segments))]
        ).as_lists()
    tables["points"] = sorted(zip(*stored.values(), strict=True), key=repr)
    return tables


@pytest.fixture
def world(cloud: CloudHelper, api: Api) -> dict[str, str]:
    """The owner's org with one of everything."""
    org = api.org.post({"name": "Owner Org"})["slug"]
    project = api.project.post({"name": "Secret Project", "org": org})
    with cloud.engine.begin() as conn:
        conn.execute(
            sa.insert(db.devices).values(
                id=10,
                label="Secret",
                sg="water-meter-v1-1-0",
                template="internaltestingtemplate-v1-0-0",
                created_on=db.now_us(),
            )
        )
    device = "d--0000-0000-0000-000a"
    api.device.claim.post({"device": device, "project": project["id"]})
    stream = f"s--{project['slug'][3:]}--0000-0000-0000-000a--5001"
    api.data.post([{"stream": stream, "timestamp": "2026-01-01T00:00:00Z", "int_value": 5}])
    event = api.event.post({"stream": stream, "timestamp": "2026-01-01T00:00:00Z", "data": {"x": 1}})
    api.property.post({"target": device, "name": "Secret Prop", "str_value": "s"})
    fleet = api.fleet.post({"name": "Secret Fleet", "org": org})["slug"]
    api.fleet(fleet).register.post({"device": device})
    report = SignedListReport(device=10, report_id=9, sent_timestamp=5, readings=[Reading(0x5001, 1, 1, 7)])
    api.client.upload_report(report, received=dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc))
    record = api.streamer.report.get()["results"][0]["id"]
    note = api.note.post({"target": device, "timestamp": "2026-01-01T00:00:00Z", "note": "Secret note"})
    upload = api.note(note["id"]).uploadurl.post({"name": "secret.txt"})
    attached = httpx.post(
        upload["url"],
        data=upload["fields"],
        files={"file": ("secret.txt", b"Secret attachment")},
        headers={"Authorization": f"jwt {api.token}"},
    )
    assert attached.status_code == 204, attached.text
    api.note(note["id"]).uploadsuccess.post({"name": "secret.txt", "uuid": upload["uuid"]})
    location = api.location.post({"target": device, "timestamp": "2026-01-01T00:00:00Z", "lat": 1.5, "lon": 2.5})
    alias = api.alias.post({"name": "Secret Alias", "org": org})["slug"]
    tap = api.tap.post({"alias": alias, "timestamp": "2026-01-01T00:00:00Z", "stream": stream})
    template = api.propertytemplate.post({"org": org, "name": "Secret Template", "type": "str"})
    with cloud.engine.begin() as conn:  # configuration names are made by staff
        config_name = db.new_id(
            conn.execute(
                sa.insert(db.config_names).values(
                    name=":secret",
                    created_on=0,
                    created_by=sa.select(db.users.c.id).where(db.users.c.slug == "test").scalar_subquery(),
                )
            )
        )
    config = api.config.attr.post({"target": device, "name": ":secret", "data": {"Secret": 1}})
    point = api.data.get(filter=stream)["results"][0]["id"]
    script = api.ota.script.post({"name": "Secret Script", "org": org})["slug"]
    deployment = api.ota.request.post({"script": script, "org": org, "fleet": fleet, "selection_criteria": []})
    api.ota.action.post({"deployment": deployment["id"], "device": device, "attempt_successful": True})
    generated = api.report.generated.post({"label": "Secret Report", "org": org})["id"]
    with cloud.engine.begin() as conn:
        org_id = conn.execute(sa.select(db.orgs.c.id).where(db.orgs.c.slug == org)).scalar_one()
        conn.execute(
            sa.insert(db.datablocks).values(
                slug="b--0001-0000-0000-000a",
                id=1,
                device_id=10,
                block=1,
                title="Secret",
                org_id=org_id,
                created_on=db.now_us(),
            )
        )
        conn.execute(sa.insert(db.device_versions).values(device_id=10, type="os", tag=1, created_on=db.now_us()))
    return {
        "script": script,
        "deployment": str(deployment["id"]),
        "datablock": "b--0001-0000-0000-000a",
        "generated": generated,
        "org": org,
        "project": project["id"],
        "project_slug": project["slug"],
        "device": device,
        "stream": stream,
        "variable": f"v--{project['slug'][3:]}--5001",
        "event": str(event["id"]),
        "fleet": fleet,
        "streamer": "t--0000-0000-0000-000a--0000",
        "report": record,
        "point": str(point),
        "property": str(api.property.get(target=device)["results"][0]["id"]),
        "note": str(note["id"]),
        "location": str(location["id"]),
        "alias": alias,
        "tap": str(tap["id"]),
        "template": str(template["id"]),
        "config": str(config["id"]),
        "config_name": str(config_name),
    }


def concrete(path: str, w: dict[str, str]) -> str:
    """Fill a route template with the owner's objects."""
    values = [
        ("/org/{slug}", w["org"]),
        ("/project/{project_id}", w["project"]),
        ("/device/{slug}", w["device"]),
        ("/stream/{slug}", w["stream"]),
        ("/variable/{slug}", w["variable"]),
        ("/fleet/{slug}", w["fleet"]),
        ("/event/{event_id}", w["event"]),
        ("/streamer/report/{report_id}", w["report"]),
        ("/streamer/{slug}", w["streamer"]),
        ("/data/{point_id}", w["point"]),
        ("/property/{prop_id}", w["property"]),
        ("/account/{slug}", "test"),
        ("/note/{note_id}", w["note"]),
        ("/location/{location_id}", w["location"]),
        ("/alias/{slug}", w["alias"]),
        ("/tap/{tap_id}", w["tap"]),
        ("/propertytemplate/{template_id}", w["template"]),
        ("/config/attr/{attr_id}", w["config"]),
        ("/config/name/{name_id}", w["config_name"]),
        ("/pt/{slug}", "default-template-v1-0-0"),
        ("/ot/{slug}", "default-template-v1-0-0"),
        ("/component/{slug}", "none"),
        ("/vartemplate/{item_id}", "1"),
        ("/widget/{item_id}", "1"),
        ("/production/device/{slug}", w["device"]),
        ("/vartype/{slug}", "water-meter-volume"),
        ("/sg/{slug}", "water-meter-v1-1-0"),
        ("/dt/{slug}", "internaltestingtemplate-v1-0-0"),
        ("/ota/device/{slug}", w["device"]),
        ("/ota/script/{slug}", w["script"]),
        ("/ota/request/{deployment_id}", w["deployment"]),
        ("/datablock/{slug}", w["datablock"]),
        ("/report/generated/{report_id}", w["generated"]),
        ("/file/{name}", "report.csv"),
    ]
    for prefix, value in values:
        if prefix in path:
            path = path.replace(prefix, prefix.split("{")[0] + value)
    assert "{" not in path, path
    query = {
        "/data/": f"?filter={w['stream']}",
        "/event/": f"?filter={w['device']}",
        "/property/": f"?target={w['device']}",
        "/df/": f"?filter={w['stream']}",
        "/streamer/": f"?device={w['device']}",
        "/device/": f"?project={w['project']}",
        "/stream/": f"?project={w['project_slug']}",
        "/variable/": f"?project={w['project']}",
        "/note/": f"?target={w['device']}",
        "/location/": f"?target={w['device']}",
        "/tap/": f"?target={w['alias']}",
        "/config/attr/": f"?target={w['device']}",
        "/config/attr/search/": f"?target={w['device']}&name=:secret",
    }
    for suffix, q in query.items():
        if path == f"/api/v1{suffix}":
            return path + q
    return path


def routes(cloud: CloudHelper) -> list[tuple[str, str]]:
    out = []
    for router in routers():
        for route in router.routes:
            if isinstance(route, APIRoute):
                out += [(method, "/api/v1" + route.path) for method in sorted(route.methods - {"HEAD"})]
    return out


def body_for(w: dict[str, str]) -> dict[str, Any]:
    return {
        "org": w["org"],
        "project": w["project"],
        "device": w["device"],
        "stream": w["stream"],
        "variable": w["variable"],
        "target": w["device"],
        "name": "hacked",
        "user": "outsider",
        "role": "a0",
        "slugs": [w["device"]],
        "label": "hacked",
        "about": "hacked",
        "lid": 1,
        "int_value": 1,
        "timestamp": "2026-01-01T00:00:00Z",
        "str_value": "x",
        "clean_streams": True,
        "note": "hacked",
        "lat": 1.0,
        "lon": 1.0,
        "alias": w["alias"],
        "firmware": "v2",
        "start": "2025-01-01T00:00:00Z",
        "email": "outsider@example.com",
        "password": "hacked-password",
    }


def test_outsider_sees_nothing_and_changes_nothing(cloud: CloudHelper, world: dict[str, str]) -> None:
    cloud.quick_add_user("outsider@example.com", "outsider-pw", username="outsider")
    with cloud.engine.begin() as conn:  # helper users share helper orgs: make the outsider a true outsider
        outsider = conn.execute(sa.select(db.users.c.id).where(db.users.c.slug == "outsider")).scalar_one()
        conn.execute(sa.delete(db.memberships).where(db.memberships.c.user_id == outsider))
    outsider_api = Api(cloud.url)
    assert outsider_api.login(email="outsider@example.com", password="outsider-pw")
    secrets = [world[k] for k in ("org", "project", "device", "stream", "fleet", "report", "alias", "generated")] + [
        "Secret"
    ]
    walk_as(cloud, world, {"Authorization": f"jwt {outsider_api.token}"}, secrets)


def test_device_token_never_reaches_a_sibling_device(cloud: CloudHelper, api: Api, world: dict[str, str]) -> None:
    """A device token of another device in the SAME project: only the device scope stands in the way."""
    sibling = cloud.quick_add_device(world["project"], device_id=0x0ABC)
    token = api.device(sibling).key.get(type="a-jwt")["key"]
    secrets = [world[k] for k in ("device", "stream", "fleet", "report", "point")] + ["Secret"]
    walk_as(cloud, world, {"Authorization": f"a-jwt {token}"}, secrets)
    with httpx.Client(base_url=cloud.url, headers={"Authorization": f"a-jwt {token}"}) as http:
        own_stream = world["stream"].replace("0000-0000-0000-000a", "0000-0000-0000-0abc")
        patched = http.patch(f"/api/v1/data/{world['point']}/", json={"stream": own_stream})
        assert patched.status_code == 403, patched.text
        assert http.get(f"/api/v1/device/{sibling}/").status_code == 200


def walk_as(cloud: CloudHelper, world: dict[str, str], headers: dict[str, str], secrets: list[str]) -> None:
    """Every route with the owner's objects: nothing leaks, nothing changes."""
    before = snapshot(cloud)
    checked = 0
    with httpx.Client(base_url=cloud.url, headers=headers) as http:
        for method, template in routes(cloud):
            if (method, template) in OPEN | OWN:
                continue
            path = concrete(template, world)
            response = http.request(method, path, json=None if method in ("GET", "DELETE") else body_for(world))
            checked += 1
            where = f"{method} {path} -> {response.status_code} {response.text[:200]}"
            assert response.status_code < 500, where
            if response.status_code < 300:
                assert method == "GET" or template == "/api/v1/device/claimable/", where
                text = response.text
                leaked = [s for s in secrets if s in text and s not in path]
                if template == "/api/v1/device/claimable/":
                    continue  # answers only whether a device you name can be claimed (as the original)
                assert not leaked, f"{where}: leaks {leaked}"
                if not response.headers["content-type"].startswith("application/json"):
                    assert text.count("\n") <= 1, where  # a table (/df/): its header only
                    continue
                body = response.json()
                if isinstance(body, dict) and "results" in body:
                    assert body["results"] == [] or template in (
                        "/api/v1/vartype/",
                        "/api/v1/sg/",
                        "/api/v1/dt/",
                        "/api/v1/account/",
                        "/api/v1/pt/",
                        "/api/v1/ot/",
                        "/api/v1/config/name/",
                    ), where
            else:
                assert response.status_code in (400, 403, 404, 405, 406), where
    assert checked > 60
    assert snapshot(cloud) == before


def test_anonymous_gets_401_everywhere_but_open_routes(cloud: CloudHelper, world: dict[str, str]) -> None:
    before = snapshot(cloud)
    with httpx.Client(base_url=cloud.url) as http:
        for method, template in routes(cloud):
            if (method, template) in OPEN:
                continue
            response = http.request(
                method, concrete(template, world), json=None if method in ("GET", "DELETE") else body_for(world)
            )
            assert response.status_code == 401, f"{method} {template}: {response.status_code} {response.text[:200]}"
            assert response.headers["WWW-Authenticate"] == 'JWT realm="api"'
    assert snapshot(cloud) == before


def test_bad_tokens(cloud: CloudHelper) -> None:
    with httpx.Client(base_url=cloud.url) as http:
        for header in ("jwt not.a.jwt", "Token nope", "a-jwt xyz", "Basic abc", "jwt"):
            response = http.get("/api/v1/org/", headers={"Authorization": header})
            assert response.status_code == 401, header
            assert re.search("signature|token|credentials", response.json()["detail"], re.I)


def declares_device_scope(method: str, template: str) -> bool:
    for router in routers():
        for route in router.routes:
            if isinstance(route, APIRoute) and "/api/v1" + route.path == template and method in route.methods:
                return any(dep.call is device_or_user for dep in route.dependant.dependencies)
    raise AssertionError(template)


def test_device_tokens_are_refused_unless_a_route_declares_device_scope(
    cloud: CloudHelper, api: Api, world: dict[str, str]
) -> None:
    """Deny by default: a route must opt in (``device_or_user``) to see device tokens at all."""
    token = api.device(world["device"]).key.get(type="a-jwt")["key"]
    before = snapshot(cloud)
    opted_in = 0
    with httpx.Client(base_url=cloud.url, headers={"Authorization": f"a-jwt {token}"}) as http:
        for method, template in routes(cloud):
            if (method, template) in OPEN:
                continue
            if declares_device_scope(method, template):
                opted_in += 1
                continue
            path = concrete(template, world)
            response = http.request(method, path, json=None if method in ("GET", "DELETE") else body_for(world))
            assert response.status_code == 403, f"{method} {path} -> {response.status_code} {response.text[:200]}"
    assert 0 < opted_in < 40
    assert snapshot(cloud) == before
