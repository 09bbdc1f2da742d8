"""The console without a browser: sessions, CSRF, the same permissions as the API, the plot and
live feeds (httpx against a live server; a TestClient only to see the cookie flags under https)."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import sqlalchemy as sa

from iotile_cloud.api.connection import Api
from iotile_cloud.server import db, points
from iotile_cloud.server.console.session import COOKIE
from iotile_cloud.server.routes.auth import create_user
from iotile_cloud.server.run import LiveServer
from iotile_cloud.testing.cloud import CloudHelper
from iotile_cloud.testing.plugin import DATABASE_ENV

from .conftest import USER

OUTSIDER = ("outsider@example.com", "outsider-pass")
READER = ("reader@example.com", "reader-pass")
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def signed_in(base: str, who: tuple[str, str]) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30)
    form = client.get("/signin")
    answer = client.post(
        "/signin", data={"csrf_token": csrf_of(form.text), "email": who[0], "password": who[1], "next": "/orgs/"}
    )
    assert answer.status_code == 303, answer.text
    return client


@pytest.fixture
def fleet(cloud: CloudHelper) -> dict[str, Any]:
    """An org with a project and a claimed device; an outsider in no org; a read-only member."""
    org = cloud.quick_add_org("Acme Water", "acme-water")
    project_id, project_slug = cloud.quick_add_project("North field", org)
    device = cloud.quick_add_device(project_id)
    with cloud.engine.begin() as conn:
        create_user(conn, email=OUTSIDER[0], username="outsider", password=OUTSIDER[1])
        reader = create_user(conn, email=READER[0], username="reader", password=READER[1])
        org_id = conn.execute(sa.select(db.orgs.c.id).where(db.orgs.c.slug == org)).scalar_one()
        conn.execute(
            sa.insert(db.memberships).values(org_id=org_id, user_id=reader.id, role="r1", created_on=db.now_us())
        )
    stream = f"s--{project_slug[3:]}--{device[3:]}--5001"
    return {"org": org, "project": project_id, "device": device, "stream": stream}


def add_points(cloud: CloudHelper, stream: str, ts: np.ndarray, values: np.ndarray) -> None:
    with cloud.engine.begin() as conn:
        pk = conn.execute(sa.select(db.streams.c.pk).where(db.streams.c.slug == stream)).scalar_one()
        rows = [
            {"stream_pk": pk, "ts": int(t), "int_value": int(v), "value": float(v), "type": "Num"}
            | {"streamer_local_id": i + 1, "status": "cln"}
            for i, (t, v) in enumerate(zip(ts, values, strict=True))
        ]
        points.append_rows(conn, rows)


# -- signing in and out ----------------------------------------------------------------------------


def test_sign_in_sets_a_protected_cookie_and_sign_out_revokes_it(cloud: CloudHelper, fleet: dict[str, Any]) -> None:
    client = httpx.Client(base_url=cloud.url, timeout=30)
    assert client.get("/orgs/").headers["location"] == "/signin?next=/orgs/"
    form = client.get("/signin")
    bad = client.post("/signin", data={"csrf_token": csrf_of(form.text), "email": USER[0], "password": "wrong"})
    assert bad.status_code == 401 and COOKIE not in bad.cookies
    form = client.get("/signin")
    answer = client.post(
        "/signin", data={"csrf_token": csrf_of(form.text), "email": USER[0], "password": USER[1], "next": "/orgs/"}
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/orgs/"
    cookie = next(h for h in answer.headers.get_list("set-cookie") if h.startswith(COOKIE + "="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    page = client.get("/orgs/")
    assert page.status_code == 200 and "Acme Water" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    stolen = client.cookies[COOKIE]

    assert client.post("/signout", data={}).status_code == 403  # no CSRF token: still signed in
    assert client.get("/orgs/").status_code == 200
    out = client.post("/signout", data={"csrf_token": csrf_of(page.text)})
    assert out.status_code == 303 and out.headers["location"] == "/signin"
    # The cookie's session is gone on the server, not only from this browser.
    replay = httpx.Client(base_url=cloud.url, cookies={COOKIE: stolen}, timeout=30)
    assert replay.get("/orgs/").status_code == 303
    assert replay.get("/api/v1/org/").status_code == 401


def test_sign_in_needs_its_form_token_and_refuses_foreign_redirects(cloud: CloudHelper) -> None:
    client = httpx.Client(base_url=cloud.url, timeout=30)
    forged = client.post("/signin", data={"email": USER[0], "password": USER[1]})
    assert forged.status_code == 403 and COOKIE not in forged.cookies
    form = client.get("/signin")
    answer = client.post(
        "/signin",
        data={"csrf_token": csrf_of(form.text), "email": USER[0], "password": USER[1], "next": "//evil.example/x"},
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/orgs/"


def test_sign_in_with_an_api_token(cloud: CloudHelper) -> None:
    api = Api(cloud.url)
    assert api.login(email=USER[0], password=USER[1])
    token = httpx.get(cloud.url + "/api/v1/auth/token/", headers={"Authorization": f"jwt {api.token}"}).json()["token"]
    client = httpx.Client(base_url=cloud.url, timeout=30)
    form = client.get("/signin")
    answer = client.post("/signin", data={"csrf_token": csrf_of(form.text), "token": token})
    assert answer.status_code == 303 and client.get("/orgs/").status_code == 200


def _database(cloud: CloudHelper) -> str:
    """The URL of the database the test server uses (for a second server over the same data)."""
    return os.environ.get(DATABASE_ENV) or db.sqlite_url(cloud.server.data_dir / "iotile-cloud.sqlite3")


def test_cookie_is_secure_over_https(cloud: CloudHelper, tmp_path: Path) -> None:
    with LiveServer(tmp_path, _database(cloud), ssl=True) as tls:
        client = httpx.Client(base_url=tls.url, verify=False, timeout=30)
        form = client.get("/signin")
        answer = client.post("/signin", data={"csrf_token": csrf_of(form.text), "email": USER[0], "password": USER[1]})
        cookie = next(h for h in answer.headers.get_list("set-cookie") if h.startswith(COOKIE + "="))
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie


# -- writing forms and the API through the cookie ----------------------------------------------------


def _projects(cloud: CloudHelper, name: str) -> int:
    with cloud.engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(db.projects).where(db.projects.c.name == name)
        return int(conn.execute(query).scalar_one())


def test_create_project_form_needs_the_session_token(cloud: CloudHelper, fleet: dict[str, Any]) -> None:
    client = signed_in(cloud.url, USER)
    page = client.get(f"/orgs/{fleet['org']}/")
    for token in (None, "forged", csrf_of(signed_in(cloud.url, USER).get("/orgs/").text)):
        data = {"name": "Forged"} | ({"csrf_token": token} if token else {})
        assert client.post(f"/orgs/{fleet['org']}/projects", data=data).status_code == 403
    assert _projects(cloud, "Forged") == 0
    made = client.post(f"/orgs/{fleet['org']}/projects", data={"name": "South", "csrf_token": csrf_of(page.text)})
    assert made.status_code == 303 and _projects(cloud, "South") == 1
    assert client.get(made.headers["location"]).status_code == 200
    blank = client.post(f"/orgs/{fleet['org']}/projects", data={"name": "", "csrf_token": csrf_of(page.text)})
    assert blank.status_code == 400 and "may not be blank" in blank.text


def test_the_api_accepts_the_cookie_but_writes_need_the_csrf_header(cloud: CloudHelper, fleet: dict[str, Any]) -> None:
    client = signed_in(cloud.url, USER)
    assert [o["slug"] for o in client.get("/api/v1/org/").json()["results"]] == [fleet["org"]]
    body = {"name": "Via cookie", "org": fleet["org"]}
    refused = client.post("/api/v1/project/", json=body)
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert client.post("/api/v1/project/", json=body, headers={"X-CSRFToken": "nope"}).status_code == 403
    token = csrf_of(client.get("/orgs/").text)
    assert client.post("/api/v1/project/", json=body, headers={"X-CSRFToken": token}).status_code == 201
    assert _projects(cloud, "Via cookie") == 1


@pytest.mark.parametrize("power", ["is_staff", "is_owner"])
def test_register_device_is_for_staff_or_the_owner(cloud: CloudHelper, fleet: dict[str, Any], power: str) -> None:
    client = signed_in(cloud.url, USER)
    page = client.get(f"/projects/{fleet['project']}/")
    assert "Register a device" not in page.text
    data = {"csrf_token": csrf_of(page.text), "sg": "water-meter-v1-1-0", "template": "1d1p2bt101es-v2-0-0"}
    assert client.post(f"/projects/{fleet['project']}/devices", data=data).status_code == 403
    with cloud.engine.begin() as conn:
        conn.execute(sa.update(db.users).where(db.users.c.email == USER[0]).values({power: True}))
        before = conn.execute(sa.select(sa.func.count()).select_from(db.devices)).scalar_one()
    assert "Register a device" in client.get(f"/projects/{fleet['project']}/").text
    bad = client.post(f"/projects/{fleet['project']}/devices", data=data | {"sg": "no-such-graph"})
    assert bad.status_code == 400 and "no-such-graph" in bad.text
    made = client.post(f"/projects/{fleet['project']}/devices", data=data | {"label": "Pump 9"})
    assert made.status_code == 303
    device = client.get(made.headers["location"])
    assert "Pump 9" in device.text and "--5001" in device.text
    with cloud.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(db.devices)).scalar_one() == before + 1


# -- who sees what -----------------------------------------------------------------------------------


def test_outsider_gets_the_apis_answers(cloud: CloudHelper, fleet: dict[str, Any]) -> None:
    outsider = signed_in(cloud.url, OUTSIDER)
    assert "Acme Water" not in outsider.get("/orgs/").text
    expected = {
        f"/orgs/{fleet['org']}/": 404,
        f"/projects/{fleet['project']}/": 404,
        f"/devices/{fleet['device']}/": 403,
        f"/streams/{fleet['stream']}/": 403,
        f"/api/v1/stream/{fleet['stream']}/plot/": 403,
        f"/api/v1/stream/{fleet['stream']}/live/?timeout=1": 403,
        f"/api/v1/stream/{fleet['stream']}/parquet/": 403,
        "/devices/d--0000-0000-0000-ffff/": 404,
    }
    for path, status in expected.items():
        answer = outsider.get(path)
        assert answer.status_code == status, path
        assert "North field" not in answer.text
    token = csrf_of(outsider.get("/orgs/").text)
    post = outsider.post(f"/orgs/{fleet['org']}/projects", data={"name": "Intruder", "csrf_token": token})
    assert post.status_code == 403 and _projects(cloud, "Intruder") == 0  # as POST /api/v1/project/ answers
    upload = outsider.post(
        f"/devices/{fleet['device']}/upload", data={"csrf_token": token}, files={"file": ("r.bin", b"x")}
    )
    assert upload.status_code == 403


def test_read_only_member_sees_but_cannot_write(cloud: CloudHelper, fleet: dict[str, Any]) -> None:
    reader = signed_in(cloud.url, READER)
    org_page = reader.get(f"/orgs/{fleet['org']}/")
    assert org_page.status_code == 200 and "Read Only" in org_page.text and "Create a project" not in org_page.text
    device_page = reader.get(f"/devices/{fleet['device']}/")
    assert device_page.status_code == 200 and "Upload" not in device_page.text
    token = csrf_of(device_page.text)
    assert reader.post(f"/orgs/{fleet['org']}/projects", data={"name": "Nope", "csrf_token": token}).status_code == 403
    answer = reader.post(
        f"/devices/{fleet['device']}/upload",
        params={},
        data={"csrf_token": token, "kind": "report"},
        files={"file": ("r.bin", b"\x01" * 40)},
        headers={"X-Console-Fragment": "1"},
    )
    assert answer.status_code in (400, 403)
    assert reader.get(f"/streams/{fleet['stream']}/").status_code == 200


def test_search_and_pages(cloud: CloudHelper, fleet: dict[str, Any]) -> None:
    for n in range(30):
        cloud.quick_add_project(f"Site {n:02d}", fleet["org"])
    client = signed_in(cloud.url, USER)
    first = client.get(f"/orgs/{fleet['org']}/")
    assert "Page 1 of 2" in first.text and "Site 00" in first.text and "Site 29" not in first.text
    second = client.get(f"/orgs/{fleet['org']}/", params={"page": 2})
    assert "Site 29" in second.text and 'rel="next"' not in second.text
    found = client.get(f"/orgs/{fleet['org']}/", params={"q": "site 1"})
    names = re.findall(r">(Site \d\d)</a>", found.text)
    assert names == [f"Site 1{n}" for n in range(10)]
    assert client.get(f"/devices/{fleet['device']}/", params={"q": "5001"}).text.count("/streams/") == 1


def test_pages_escape_what_users_typed(cloud: CloudHelper, fleet: dict[str, Any]) -> None:
    cloud.quick_add_project("<script>alert(1)</script>", fleet["org"])
    page = signed_in(cloud.url, USER).get(f"/orgs/{fleet['org']}/", params={"q": "<script>"})
    assert "<script>alert(1)" not in page.text and "&lt;script&gt;alert(1)" in page.text


# -- the plot feed -----------------------------------------------------------------------------------


def test_plot_returns_every_point_of_a_small_range(cloud: CloudHelper, fleet: dict[str, Any]) -> None:
    ts = 1_700_000_000_000_000 + np.arange(50, dtype=np.int64) * 1_000_000
    add_points(cloud, fleet["stream"], ts, np.arange(50) * 3.785411784)
    client = signed_in(cloud.url, USER)
    plot = client.get(f"/api/v1/stream/{fleet['stream']}/plot/", params={"width": 200}).json()
    assert plot["mode"] == "raw" and plot["count"] == 50 and plot["t"][:2] == [1_700_000_000_000, 1_700_000_001_000]
    assert plot["min"][10] == pytest.approx(10.0)  # litres stored, gallons shown (the output unit)
    part = client.get(
        f"/api/v1/stream/{fleet['stream']}/plot/",
        params={"start": "2023-11-14T22:13:30Z", "end": "2023-11-14T22:13:40Z"},
    ).json()
    assert part["count"] == 10 and part["first"] == "2023-11-14T22:13:30Z"
    assert client.get(f"/api/v1/stream/{fleet['stream']}/plot/", params={"width": 5}).status_code == 400


def test_plot_reduces_a_large_range_to_min_max_buckets(cloud: CloudHelper, fleet: dict[str, Any]) -> None:
    rng = np.random.default_rng(7)
    n = 20_000
    ts = 1_700_000_000_000_000 + np.sort(rng.choice(10**12, n, replace=False)).astype(np.int64)
    values = rng.normal(0, 100, n).round(3)
    add_points(cloud, fleet["stream"], ts, values)
    client = signed_in(cloud.url, USER)
    plot = client.get(f"/api/v1/stream/{fleet['stream']}/plot/", params={"width": 100}).json()
    # A lastn selection takes the other path (one GROUP BY): the same buckets.
    newest = client.get(f"/api/v1/stream/{fleet['stream']}/plot/", params={"width": 100, "lastn": n}).json()
    assert newest == plot
    assert plot["mode"] == "buckets" and len(plot["t"]) <= 100 and plot["count"] == n == sum(plot["n"])
    _same_buckets(plot, ts, values)
    # A window in the middle: the points on either side stay out of its buckets.
    start, end = ts[5000] + 1, ts[15000] - 1
    window = client.get(
        f"/api/v1/stream/{fleet['stream']}/plot/",
        params={"width": 100, "start": db.iso(int(start)), "end": db.iso(int(end))},
    ).json()
    inside = (ts >= start) & (ts < end)
    assert window["count"] == inside.sum() == 9999
    _same_buckets(window, ts[inside], values[inside])


def _same_buckets(plot: dict[str, Any], ts: np.ndarray, values: np.ndarray) -> None:
    """The plot's buckets are numpy's: ``width`` equal spans from the first to the last point."""
    size = -(-(int(ts[-1]) - int(ts[0]) + 1) // plot["width"])
    bucket = (ts - ts[0]) // size
    gallons = values / 3.785411784
    assert plot["mode"] == "buckets" and len(plot["t"]) == len(np.unique(bucket))
    for i, b in enumerate(np.unique(bucket)):
        chosen = bucket == b
        assert plot["n"][i] == chosen.sum()
        assert plot["t"][i] == int(ts[chosen][0]) // 1000
        assert plot["min"][i] == pytest.approx(gallons[chosen].min())
        assert plot["max"][i] == pytest.approx(gallons[chosen].max())


# -- the live feed -------------------------------------------------------------------------------------


def _events(response: httpx.Response) -> Iterator[tuple[str, str]]:
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if not line:
            if "data" in fields:
                yield fields.get("id", ""), fields["data"]
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.strip()


def test_live_feed_sees_points_written_through_another_server_process(
    cloud: CloudHelper, fleet: dict[str, Any], tmp_path: Path
) -> None:
    """Two servers over one database: a point stored through the second appears on the first's feed."""
    add_points(cloud, fleet["stream"], np.array([1_700_000_000_000_000]), np.array([1.0]))
    with LiveServer(tmp_path, _database(cloud)) as other:
        token = httpx.post(other.url + "/api/v1/auth/login/", json={"email": USER[0], "password": USER[1]}).json()[
            "token"
        ]
        headers = {"Authorization": f"Token {token}"}
        posted: list[int] = []
        writer = threading.Timer(
            1.5,
            lambda: posted.append(
                httpx.post(
                    other.url + "/api/v1/data/",
                    json={"stream": fleet["stream"], "timestamp": "2026-01-01T00:00:00Z", "int_value": 7},
                    headers=headers,
                ).status_code
            ),
        )
        with httpx.stream(
            "GET", cloud.url + f"/api/v1/stream/{fleet['stream']}/live/?timeout=20", headers=headers, timeout=30
        ) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            writer.start()
            event_id, data = next(_events(response))
        writer.join()
    assert posted == [201]
    points = orjson.loads(data)
    assert [p["timestamp"] for p in points] == ["2026-01-01T00:00:00Z"] and event_id == str(points[-1]["id"])
    # Resuming after an id replays what came after it.
    with httpx.stream(
        "GET",
        cloud.url + f"/api/v1/stream/{fleet['stream']}/live/?timeout=3",
        headers=headers | {"Last-Event-ID": "0"},
        timeout=30,
    ) as response:
        _, data = next(_events(response))
    assert len(orjson.loads(data)) == 2


def test_device_page_shows_notes_written_through_the_api(cloud: CloudHelper, fleet: dict[str, Any]) -> None:
    client = signed_in(cloud.url, USER)
    token = csrf_of(client.get("/orgs/").text)
    note = {"target": fleet["device"], "timestamp": "2026-01-01T00:00:00Z", "note": "Valve <b>replaced</b>"}
    answer = client.post("/api/v1/note/", json=note, headers={"X-CSRFToken": token})
    assert answer.status_code == 201, answer.text
    page = client.get(f"/devices/{fleet['device']}/").text
    assert "Valve &lt;b&gt;replaced&lt;/b&gt;" in page and "2026-01-01T00:00:00Z" in page
