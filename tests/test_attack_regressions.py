"""Regression tests for the weaknesses the attack harness found (one test, or a few, per finding)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from iotile_cloud.api.connection import Api
from iotile_cloud.reports import Reading, SignedListReport
from iotile_cloud.testing.cloud import CloudHelper

ALICE = ("alice@example.com", "alice-pass-1")
BOB = ("bob@example.com", "bob-pass-1")


@dataclass
class Tenant:
    """A user, their org and project, and one device claimed into it."""

    http: httpx.Client
    org: str
    project: str
    project_slug: str
    device: str
    device_id: int

    @property
    def stream(self) -> str:
        return f"s--{self.project_slug[3:]}--{self.device[3:]}--5001"


def _tenant(cloud: CloudHelper, who: tuple[str, str], org_name: str, device_id: int) -> Iterator[Tenant]:
    cloud.quick_add_user(*who, username=who[0].split("@")[0])
    api = Api(cloud.url)
    assert api.login(email=who[0], password=who[1])
    org = api.org.post({"name": org_name})["slug"]
    project = api.project.post({"name": f"{org_name} project", "org": org})
    device = cloud.quick_add_device(project["id"], device_id=device_id)
    with httpx.Client(base_url=cloud.url + "/api/v1", headers={"Authorization": f"jwt {api.token}"}) as http:
        yield Tenant(http, org, project["id"], project["slug"], device, device_id)


@pytest.fixture
def alice(iotile_cloud: CloudHelper) -> Iterator[Tenant]:
    yield from _tenant(iotile_cloud, ALICE, "Alpha", 0xA1)


@pytest.fixture
def bob(iotile_cloud: CloudHelper, alice: Tenant) -> Iterator[Tenant]:
    yield from _tenant(iotile_cloud, BOB, "Beta", 0xB1)


def _report(device: int, first_id: int = 1, count: int = 3) -> bytes:
    readings = [Reading(stream=0x5001, reading_id=first_id + n, raw_timestamp=10 + n, value=n) for n in range(count)]
    return SignedListReport(device=device, report_id=first_id, sent_timestamp=100, readings=readings).encode()


def _upload(http: httpx.Client, name: str, data: bytes) -> httpx.Response:
    return http.post("/streamer/report/", params={"timestamp": "2026-01-01T00:00:00Z"}, files={"file": (name, data)})


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- files ----------------------------------------------------------------------------------------


def test_uploaded_reports_are_kept_owner_only(iotile_cloud: CloudHelper, alice: Tenant) -> None:
    """The raw copy of each uploaded report was written with the umask's mode (0644 in a 0755 folder)."""
    folder = iotile_cloud.server.data_dir / "reports"
    if folder.exists():
        os.chmod(folder, 0o755)  # as an older server left it
    old = os.umask(0o022)
    try:
        assert _upload(alice.http, "r.bin", _report(alice.device_id)).status_code == 201
    finally:
        os.umask(old)
    files = list(folder.iterdir())
    assert files
    assert _mode(folder) == 0o700
    assert {f.name: oct(_mode(f)) for f in files if _mode(f) != 0o600} == {}


# -- console sign-in --------------------------------------------------------------------------------


def _console_sign_in(url: str, **fields: str) -> httpx.Response:
    import re

    client = httpx.Client(base_url=url, timeout=30)
    form = client.get("/signin")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    return client.post("/signin", data={"csrf_token": token.group(1), **fields})


def test_console_sign_in_counts_failed_passwords_like_the_api(iotile_cloud: CloudHelper, alice: Tenant) -> None:
    """/signin checked passwords with no limit: a brute force through the console was never slowed."""
    from iotile_cloud.server import throttle

    answers = [
        _console_sign_in(iotile_cloud.url, email=ALICE[0], password="wrong").status_code
        for _ in range(throttle.ACCOUNT_LIMIT)
    ]
    assert answers == [401] * throttle.ACCOUNT_LIMIT
    blocked = _console_sign_in(iotile_cloud.url, email=ALICE[0], password=ALICE[1])
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    assert "Too many failed logins" in blocked.text
    api = httpx.post(iotile_cloud.url + "/api/v1/auth/login/", json={"email": ALICE[0], "password": ALICE[1]})
    assert api.status_code == 429  # one count for the account, whichever door is knocked on


def test_console_sign_in_takes_the_api_token_not_its_stored_digest(iotile_cloud: CloudHelper, alice: Tenant) -> None:
    """The console compared the form's token with the stored column, which holds the SHA-256 digest:
    a copy of the database signed in as anyone (and the real token did not work)."""
    import sqlalchemy as sa

    from iotile_cloud.server import db

    token = alice.http.get("/auth/token/").json()["token"]
    with iotile_cloud.engine.connect() as conn:
        digest = conn.execute(sa.select(db.users.c.api_token).where(db.users.c.email == ALICE[0])).scalar_one()
    assert _console_sign_in(iotile_cloud.url, token=digest).status_code == 401
    assert _console_sign_in(iotile_cloud.url, token=token).status_code == 303


def test_console_sign_in_checks_passwords_off_the_event_loop(
    iotile_cloud: CloudHelper, alice: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The argon2 check ran inside the async handler: every sign-in stalled the whole server."""
    import threading
    import time

    from iotile_cloud.server import security

    real = security._hasher

    class Slow:
        def verify(self, stored: str, password: str) -> bool:
            time.sleep(1.5)
            return bool(real.verify(stored, password))

    monkeypatch.setattr(security, "_hasher", Slow())
    signing_in = threading.Thread(
        target=_console_sign_in, args=(iotile_cloud.url,), kwargs=dict(email=ALICE[0], password="x")
    )
    signing_in.start()
    time.sleep(0.3)
    started = time.monotonic()
    assert httpx.get(iotile_cloud.url + "/api/v1/server/", timeout=10).status_code == 200
    waited = time.monotonic() - started
    signing_in.join()
    assert waited < 0.5


def test_generated_report_files_are_downloads_not_pages(alice: Tenant) -> None:
    """An org member uploads x.html as a generated report; opening its link in a browser signed in to
    the console ran the page's script in the server's origin (stored XSS)."""
    report = alice.http.post("/report/generated/", json={"label": "r", "org": alice.org}).json()["id"]
    page = b"<script>fetch('/api/v1/auth/token/')</script>"
    upload = alice.http.post(
        f"/report/generated/{report}/upload/", files={"file": ("x.html", page)}, data={"key": f"{report}/x.html"}
    )
    assert upload.status_code == 204
    answer = alice.http.get(f"/report/generated/{report}/file/x.html")
    assert answer.status_code == 200 and answer.content == page
    assert answer.headers["content-disposition"].startswith("attachment")
    assert answer.headers["x-content-type-options"] == "nosniff"


# -- dictionary reports -------------------------------------------------------------------------------


def _mp_dict_report(device: int, data_items: bytes = b"\x90", events: bytes = b"\x90", highest: int = 0) -> bytes:
    """A msgpack v100 report from raw msgpack pieces (to write what msgpack.packb will not)."""
    import msgpack

    pack = msgpack.packb
    return (
        b"\x85"
        + pack("format")
        + pack("v100")
        + pack("device")
        + pack(device)
        + pack("highest_id")
        + pack(highest)
        + pack("data")
        + data_items
        + pack("events")
        + events
    )


def test_a_report_of_empty_containers_is_refused_before_it_is_built() -> None:
    """16 MiB of 1-byte empty arrays became ~16M Python lists (+2.3 GiB in the server for one upload);
    the JSON twin +750 MiB. Both stop at MAX_CONTAINERS now."""
    import struct
    import time

    from iotile_cloud.reports import ReportError
    from iotile_cloud.reports.dictionary import MAX_CONTAINERS, DictionaryReport

    n = 16 * 1024 * 1024 - 200
    bomb = _mp_dict_report(1, b"\xdd" + struct.pack(">I", n) + b"\x90" * n)
    started = time.monotonic()
    with pytest.raises(ReportError, match=str(MAX_CONTAINERS)):
        DictionaryReport.decode_msgpack(bomb)
    with pytest.raises(ReportError, match=str(MAX_CONTAINERS)):
        DictionaryReport.decode_json(b'{"format":"v100","device":1,"data":[' + b"[]," * (n // 3) + b"[]]}")
    assert time.monotonic() - started < 10
    fine = DictionaryReport.decode_msgpack(_mp_dict_report(1, b"\x91\x82\xa6stream\xcd\x50\x01\xa5value\x05"))
    assert [r.value for r in fine.readings] == [5]


def _event(extra: bytes, reading_id: int) -> bytes:
    import msgpack

    pack = msgpack.packb
    return (
        b"\x91\x83"
        + pack("stream")
        + pack("5001")
        + pack("streamer_local_id")
        + pack(reading_id)
        + pack("extra_data")
        + extra
    )


def test_hostile_dictionary_reports_are_400s_not_500s(alice: Tenant) -> None:
    """Each of these crashed the upload with a 500 and a dropped connection."""
    import json

    import msgpack

    def nested(depth: int) -> dict[str, object]:
        value: dict[str, object] = {"x": 1}
        for _ in range(depth):
            value = {"a": value}
        return value

    deep = {"format": "v100", "device": alice.device_id, "highest_id": 9, "data": []}
    json_deep = {**deep, "events": [{"stream": "5001", "streamer_local_id": 9, "extra_data": nested(300)}]}
    json_deep_data = {**deep, "events": [{"stream": "5001", "streamer_local_id": 9, "data": nested(300)}]}
    refused = {
        "deep extra_data (json)": ("r.json", json.dumps(json_deep).encode()),
        "deep data (json)": ("r.json", json.dumps(json_deep_data).encode()),
        "deep extra_data (msgpack)": ("r.mp", msgpack.packb(json_deep)),
        "nesting past Python's stack (msgpack)": ("r.mp", msgpack.packb({**json_deep, "x": nested(900)})),
        "NaN value": (
            "r.mp",
            _mp_dict_report(alice.device_id, b"\x91\x82\xa6stream\xa45001\xa5value\xcb\x7f\xf8" + 6 * b"\0"),
        ),
        "infinite value": ("r.mp", msgpack.packb({**deep, "data": [{"stream": "5001", "value": float("inf")}]})),
        "array as a map key": ("r.mp", _mp_dict_report(alice.device_id, events=_event(b"\x81\x91\x01\x01", 10))),
        "extension type": (
            "r.mp",
            _mp_dict_report(alice.device_id, events=_event(msgpack.packb(msgpack.ExtType(5, b"x")), 11)),
        ),
    }
    answers = {name: _upload(alice.http, file, data) for name, (file, data) in refused.items()}
    assert {name: a.status_code for name, a in answers.items()} == {name: 400 for name in refused}
    assert "nest at most" in answers["deep extra_data (json)"].text
    # Numeric map keys were a 500 too (events are stored as JSON): now they are kept as text.
    stored = _upload(
        alice.http, "r.mp", _mp_dict_report(alice.device_id, events=_event(msgpack.packb({1: {2: 3}}), 12), highest=12)
    )
    assert stored.status_code == 201, stored.text
    events = alice.http.get("/event/", params={"filter": alice.stream}).json()["results"]
    assert [e["extra_data"] for e in events] == [{"1": {"2": 3}}]


# -- JSON bodies ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["/data/", "/event/", "/note/", "/location/"])
def test_a_body_of_a_million_empty_objects_is_refused_before_parsing(alice: Tenant, route: str) -> None:
    """4 MiB of ``{},`` parsed into 1.4M dicts, each answered with a field error: ~1 GiB in the
    server and a 105 MiB answer for one request (84 MiB for ``[],`` on /event/, /note/, /location/)."""
    from iotile_cloud.server.limits import DEFAULT_MAX_JSON_BYTES, MAX_JSON_CONTAINERS

    items = (DEFAULT_MAX_JSON_BYTES - 16) // 3
    for body in (b"[" + b"{}," * items + b"{}]", b"[" + b"[]," * items + b"[]]"):
        answer = alice.http.post(route, content=body, headers={"Content-Type": "application/json"})
        assert answer.status_code == 400
        assert answer.json() == {"detail": f"JSON parse error - more than {MAX_JSON_CONTAINERS} objects and arrays"}
    # a real bulk upload is far below the limit
    points = [
        {"stream": alice.stream, "timestamp": f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}Z", "int_value": n}
        for n in range(2000)
    ]
    if route == "/data/":
        assert alice.http.post(route, json=points).json() == {"count": 2000}


# -- nothing half-done ----------------------------------------------------------------------------------


def test_a_refused_list_of_events_leaves_no_files(iotile_cloud: CloudHelper, alice: Tenant, bob: Tenant) -> None:
    """The rows of a refused list rolled back, but the data files of its first items stayed on disk."""
    folder = iotile_cloud.server.data_dir / "events"
    before = set(folder.iterdir()) if folder.exists() else set()
    items = [{"stream": alice.stream, "timestamp": "2026-01-01T00:00:00Z", "data": {"n": n}} for n in range(5)]
    items.append({"stream": bob.stream, "timestamp": "2026-01-01T00:00:00Z", "data": {"n": 5}})
    assert alice.http.post("/event/", json=items).status_code == 403
    assert (set(folder.iterdir()) if folder.exists() else set()) == before
    assert alice.http.get("/event/", params={"filter": alice.stream}).json()["count"] == 0
    assert alice.http.post("/event/", json=items[:5]).json() == {"count": 5}  # what is stored keeps its files
    assert len(set(folder.iterdir()) - before) == 5


# -- tokens ---------------------------------------------------------------------------------------------


def test_tokens_must_expire_and_name_their_user_by_an_integer(iotile_cloud: CloudHelper, alice: Tenant) -> None:
    """Signed claims were trusted as they came: a token without ``exp`` lived for ever, and a
    ``user_id`` of the wrong type reached the database (a list or an object: a 500 and a dropped
    connection; "1" or true: user 1)."""
    import time

    import jwt

    secret = (iotile_cloud.server.data_dir / "jwt-secret").read_text().strip()
    good = jwt.decode(alice.http.headers["Authorization"].split()[1], options={"verify_signature": False})
    now = int(time.time())
    forged = [{k: v for k, v in good.items() if k != "exp"}]
    forged += [{**good, "user_id": bad} for bad in ([good["user_id"]], {"id": 1}, str(good["user_id"]), True, 2**70)]
    device = {"device": alice.device_id, "user_id": good["user_id"], "type": "a-jwt", "iat": now, "exp": now + 60}
    forged += [{**device, "device": bad} for bad in (True, str(alice.device_id), [alice.device_id])]
    url = iotile_cloud.url + "/api/v1"
    for claims in forged:
        token = jwt.encode(claims, secret, algorithm="HS256")
        scheme = "a-jwt" if claims.get("type") else "jwt"
        answer = httpx.get(url + "/org/", headers={"Authorization": f"{scheme} {token}"})
        assert answer.status_code == 401, (claims, answer.status_code)
        assert httpx.post(url + "/auth/api-jwt-refresh/", json={"token": token}).status_code == 400
    assert httpx.get(url + "/org/", headers={"Authorization": f"jwt {jwt.encode(good, secret)}"}).status_code == 200


# -- feeds ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("resume", ["1" * 25, str(1 << 63), "-" + "9" * 25, "abc"])
def test_a_live_feed_resume_id_past_64_bits_is_a_400(alice: Tenant, resume: str) -> None:
    """?after= (or Last-Event-ID) beyond 64 bits passed the check, then the first poll overflowed the
    database integer after the 200 had started: the connection was dropped mid-answer."""
    answer = alice.http.get(f"/stream/{alice.stream}/live/", params={"after": resume, "timeout": 1})
    assert answer.status_code == 400
    assert "point id" in answer.json()["detail"]


# -- over-the-air updates ---------------------------------------------------------------------------------


def test_a_deployment_request_targets_only_its_own_org(alice: Tenant, bob: Tenant) -> None:
    """An org admin could aim a deployment request at another org's fleet (or use its script): the
    other org's devices then listed it in /ota/device/<slug>/, the feed their gateways update from."""
    fleet = bob.http.post("/fleet/", json={"name": "Bob's fleet", "org": bob.org}).json()["slug"]
    assert bob.http.post(f"/fleet/{fleet}/register/", json={"device": bob.device}).status_code == 201
    alice_script = alice.http.post("/ota/script/", json={"name": "pwn", "org": alice.org, "released": True}).json()
    bob_script = bob.http.post("/ota/script/", json={"name": "fw", "org": bob.org, "released": True}).json()
    foreign_fleet = alice.http.post(
        "/ota/request/", json={"script": alice_script["slug"], "org": alice.org, "fleet": fleet}
    )
    assert foreign_fleet.status_code == 400 and "fleet" in foreign_fleet.json()
    foreign_script = alice.http.post("/ota/request/", json={"script": bob_script["slug"], "org": alice.org})
    assert foreign_script.status_code == 400 and "script" in foreign_script.json()
    assert bob.http.get(f"/ota/device/{bob.device}/").json()["deployments"] == []
    own_fleet = alice.http.post("/fleet/", json={"name": "Alice's fleet", "org": alice.org}).json()["slug"]
    mine = alice.http.post("/ota/request/", json={"script": alice_script["slug"], "org": alice.org, "fleet": own_fleet})
    assert mine.status_code == 201


# -- password hashing and the thread pool ---------------------------------------------------------------


def test_a_signup_flood_does_not_starve_other_requests(
    iotile_cloud: CloudHelper, alice: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signups hashed their password on a thread-pool thread, waiting there for one of the two KDF
    slots: 64 concurrent (unauthenticated) signups held all 40 threads, and every other request
    waited seconds (5.6 s for GET /org/ in the attack). They now queue as coroutines, as logins do."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from iotile_cloud.server import security

    real = security._hasher

    class Slow:
        def hash(self, password: str) -> str:
            time.sleep(0.25)
            return str(real.hash(password))

        def verify(self, stored: str, password: str) -> bool:
            return bool(real.verify(stored, password))

    monkeypatch.setattr(security, "_hasher", Slow())
    url = iotile_cloud.url + "/api/v1/account/"

    def signup(n: int) -> int:
        body = {"username": f"flood{n}", "email": f"flood{n}@example.com", "password": "pw-123456"}
        return httpx.post(url, json={**body, "confirm_password": "pw-123456"}, timeout=120).status_code

    with ThreadPoolExecutor(48) as pool:
        answers = [pool.submit(signup, n) for n in range(48)]
        time.sleep(1.0)
        started = time.monotonic()
        assert alice.http.get("/org/").status_code == 200
        waited = time.monotonic() - started
        assert sorted({a.result() for a in answers}) == [201]
    assert waited < 1.0


# -- downloads ------------------------------------------------------------------------------------------


def _rss_mib(pid: int) -> tuple[float, float]:
    import re

    text = Path(f"/proc/{pid}/status").read_text()
    current, peak = (re.search(rf"{key}:\s+(\d+)", text) for key in ("VmRSS", "VmHWM"))
    assert current is not None and peak is not None
    return int(current.group(1)) / 1024, int(peak.group(1)) / 1024


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="measures a server's peak RSS on Linux")
def test_df_statistics_keep_8_bytes_a_point(tmp_path: Path) -> None:
    """/df/?pivot=1&apply_mdo=1&stats=1 kept each value as a Python float in a list: +80 MiB of peak
    RSS for 1M points (memory grew with the caller's stored data, ~800 MiB a request at 10M)."""
    from click.testing import CliRunner

    from iotile_cloud.cli import main
    from iotile_cloud.server.run import ServerProcess

    made = CliRunner().invoke(
        main, ["admin", "create-user", ALICE[0], "--owner", "--password", ALICE[1], "--data-dir", str(tmp_path)]
    )
    assert made.exit_code == 0, made.output
    with ServerProcess(tmp_path) as server:
        api = Api(server.url)
        assert api.login(email=ALICE[0], password=ALICE[1])
        org = api.org.post({"name": "Big"})["slug"]
        project = api.project.post({"name": "Big", "org": org})
        device = api.device.post({"template": "internaltestingtemplate-v1-0-0", "sg": "water-meter-v1-1-0"})
        api.device.claim.post({"device": device["slug"], "project": project["id"]})
        n = (16 * 1024 * 1024 - 44) // 16
        readings = [Reading(stream=0x5001, reading_id=1 + k, raw_timestamp=10 + k, value=k % 1000) for k in range(n)]
        report = SignedListReport(device=device["id"], report_id=1, sent_timestamp=n + 100, readings=readings)
        with httpx.Client(base_url=server.url + "/api/v1", headers={"Authorization": f"jwt {api.token}"}) as http:
            assert _upload(http, "r.bin", report.encode()).json()["stored"] == n
            stream = f"s--{project['slug'][3:]}--{device['slug'][3:]}--5001"
            assert server.process is not None
            pid = server.process.pid
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak starts again from now
            before, _ = _rss_mib(pid)
            params = {"filter": stream, "pivot": 1, "apply_mdo": 1, "stats": 1}
            answer = http.get("/df/", params=params, timeout=300)
            _, peak = _rss_mib(pid)
    rows = dict(line.split(",", 1) for line in answer.text.splitlines()[1:])
    assert int(rows["count"]) == n and float(rows["max"]) == 999.0
    assert peak - before < 40, f"+{peak - before:.0f} MiB for {n} points"


def test_clients_that_stop_reading_downloads_cannot_exhaust_the_database_pool(
    alice: Tenant, iotile_cloud: CloudHelper, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A streamed download holds a pooled connection (its read transaction) until its last byte.
    24 downloads whose clients stopped reading took all 15 connections: every other request waited
    30 s for one and failed with a 500. Downloads are now capped per process (503 past the cap)
    and ended when their client takes nothing for SEND_STALL_TIMEOUT seconds."""
    import socket
    import time

    from iotile_cloud.server import limits, run

    monkeypatch.setattr(limits, "MAX_STREAMED_DOWNLOADS", 2)
    monkeypatch.setattr(run, "SEND_STALL_TIMEOUT", 1.0)
    n = 150_000
    readings = [Reading(stream=0x5001, reading_id=1 + k, raw_timestamp=10 + k, value=k) for k in range(n)]
    report = SignedListReport(device=alice.device_id, report_id=1, sent_timestamp=n + 100, readings=readings)
    assert _upload(alice.http, "r.bin", report.encode()).status_code == 201
    port = int(iotile_cloud.url.rsplit(":", 1)[1])
    auth = alice.http.headers["Authorization"]
    paths = [f"/api/v1/df/?filter={alice.stream}", f"/api/v1/stream/{alice.stream}/csv/"]
    stalled = []
    for path in paths:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n".encode())
        assert sock.recv(64).startswith(b"HTTP/1.1 200")  # started, then never read again
        stalled.append(sock)
    busy = alice.http.get("/df/", params={"filter": alice.stream})
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "5"
    assert alice.http.get("/org/").status_code == 200  # the rest of the API is not held up
    time.sleep(3)  # past the stall timeout: both downloads ended, their transactions released
    for sock in stalled:
        sock.close()
    whole = alice.http.get("/df/", params={"filter": alice.stream}, timeout=60)
    assert whole.status_code == 200 and whole.text.count("\n") == n + 1


def test_one_user_cannot_take_every_connection_with_live_feeds(
    alice: Tenant, bob: Tenant, iotile_cloud: CloudHelper, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Live feeds last minutes: one user opened 511 and every other client got uvicorn's 503 (its
    limit is 512 connections). Now a user has at most MAX_LIVE_FEEDS_PER_USER open, and a process
    MAX_LIVE_FEEDS; the slots come back when the feeds end, however they end."""
    import socket
    import time

    from iotile_cloud.server import limits

    monkeypatch.setattr(limits, "MAX_LIVE_FEEDS_PER_USER", 3)
    monkeypatch.setattr(limits, "MAX_LIVE_FEEDS", 4)
    port = int(iotile_cloud.url.rsplit(":", 1)[1])

    def open_feed(tenant: Tenant) -> tuple[socket.socket, bytes]:
        """A raw connection asking for the feed, and the answer's head (with the whole body of a refusal)."""
        import re

        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        auth = tenant.http.headers["Authorization"]
        request = f"GET /api/v1/stream/{tenant.stream}/live/ HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n"
        sock.sendall(request.encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(4096)
        length = re.search(rb"content-length: (\d+)", answer, re.IGNORECASE)
        if length is not None:  # a refusal: read its body too
            while len(answer.split(b"\r\n\r\n", 1)[1]) < int(length.group(1)):
                answer += sock.recv(4096)
        return sock, answer

    alices = [open_feed(alice) for _ in range(4)]
    assert [head[:12] for _, head in alices] == [b"HTTP/1.1 200"] * 3 + [b"HTTP/1.1 503"]
    assert b"You have 3 live feeds open" in alices[3][1]
    bobs = [open_feed(bob) for _ in range(2)]
    assert [head[:12] for _, head in bobs] == [b"HTTP/1.1 200", b"HTTP/1.1 503"]  # the process is full
    assert bob.http.get("/org/").status_code == 200  # everything else still answers
    for sock, _ in alices + bobs:
        sock.close()
    deadline = time.monotonic() + 15
    while sum(iotile_cloud._state.live_feeds.values()) and time.monotonic() < deadline:
        time.sleep(0.2)  # each feed notices its closed connection at its next poll (every second)
    assert sum(iotile_cloud._state.live_feeds.values()) == 0
    sock, head = open_feed(alice)
    sock.close()
    assert head.startswith(b"HTTP/1.1 200")


# -- slow clients -------------------------------------------------------------------------------------


def test_a_trickled_body_is_dropped_even_if_it_never_stalls(
    iotile_cloud: CloudHelper, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slow POST: a byte every 10 s reset the 30 s idle timer for ever, so (without logging in) 511
    such bodies held every connection the server admits and everyone else got 503. After BODY_GRACE
    a body must average MIN_BODY_RATE bytes a second."""
    import socket
    import time

    from iotile_cloud.server import limits

    monkeypatch.setattr(limits, "BODY_GRACE", 1.0)
    monkeypatch.setattr(limits, "MIN_BODY_RATE", 1000)
    port = int(iotile_cloud.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /api/v1/auth/login/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{"
        )
        started = time.monotonic()
        answer = b""
        sock.settimeout(0.2)
        while time.monotonic() - started < 10 and not answer:
            try:
                sock.send(b" ")  # never idle: a byte every 0.2 s
                answer = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"too slow" in answer
    assert time.monotonic() - started < 5
    # a body sent at any ordinary speed is unaffected
    fine = httpx.post(iotile_cloud.url + "/api/v1/auth/login/", json={"email": "x@example.com", "password": "y"})
    assert fine.status_code == 401


def test_an_answer_left_unread_is_ended(
    alice: Tenant, iotile_cloud: CloudHelper, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any answer the client stops reading held its connection, task and body for ever: 511 unread
    columns pages held every connection uvicorn admits (everyone else got 503) and +1 GiB of RSS."""
    import re
    import socket
    import time

    from iotile_cloud.server import run

    monkeypatch.setattr(run, "SEND_STALL_TIMEOUT", 1.0)
    n = 100_000
    readings = [Reading(stream=0x5001, reading_id=1 + k, raw_timestamp=10 + k, value=k) for k in range(n)]
    report = SignedListReport(device=alice.device_id, report_id=1, sent_timestamp=n + 100, readings=readings)
    assert _upload(alice.http, "r.bin", report.encode()).status_code == 201
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", int(iotile_cloud.url.rsplit(":", 1)[1])))
    auth = alice.http.headers["Authorization"]
    sock.sendall(
        f"GET /api/v1/stream/{alice.stream}/data/?page_size={n} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n"
        "Accept: application/vnd.iotile.columns+json\r\n\r\n".encode()
    )
    head = sock.recv(4096)
    length = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
    assert head.startswith(b"HTTP/1.1 200") and length is not None
    time.sleep(3)  # not reading: past the stall timeout the server ends the answer
    body = head.split(b"\r\n\r\n", 1)[1]
    while chunk := sock.recv(1 << 20):
        body += chunk
    sock.close()
    assert len(body) < int(length.group(1))  # cut off, connection closed
    whole = alice.http.get(f"/stream/{alice.stream}/data/", params={"page_size": 10})  # the server is fine
    assert whole.status_code == 200 and whole.json()["count"] == n


# -- uploads being decoded --------------------------------------------------------------------------------


def test_an_event_file_of_empty_arrays_is_refused_before_parsing(alice: Tenant) -> None:
    """16 MiB of ``[],`` in an event file was parsed whole (on the event loop) to check it is JSON:
    +500 MiB for one upload, and stored."""
    import gzip

    from iotile_cloud.reports.dictionary import MAX_CONTAINERS

    n = (16 * 1024 * 1024 - 16) // 3
    body = b"[" + b"[]," * (n - 1) + b"[]]"
    fields = {"stream": alice.stream, "timestamp": "2026-01-01T00:00:00Z"}
    for name, data in (("e.json", body), ("e.json.gz", gzip.compress(body))):
        answer = alice.http.post("/event/upload/", files={"file": (name, data)}, data=fields)
        assert answer.status_code == 400
        assert answer.json() == {"file": [f"The file holds more than {MAX_CONTAINERS} objects and arrays."]}
    ok = alice.http.post("/event/upload/", files={"file": ("e.json", b'{"x": [1, 2, 3]}')}, data=fields)
    assert ok.status_code == 201


def test_uploads_are_decoded_within_a_byte_budget(
    alice: Tenant, iotile_cloud: CloudHelper, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decoding takes 20-25 times a file's size: six 16 MiB dictionary reports at once took +3.1 GiB.
    Files now hold their size in a per-process budget while they are decoded; the others wait."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from iotile_cloud.server.limits import ByteBudget
    from iotile_cloud.server.routes import reports

    monkeypatch.setattr(iotile_cloud._state, "upload_budget", ByteBudget(4 * 1024 * 1024))
    running = peak = 0
    lock = threading.Lock()
    real = reports._store

    def counted(*args: object) -> object:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            time.sleep(0.3)
            return real(*args)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(reports, "_store", counted)
    padding = b"x" * (3 * 1024 * 1024)  # 3 MiB: two do not fit in the 4 MiB budget
    report = b'{"format":"v100","device":%d,"data":[],"pad":"%s"}' % (alice.device_id, padding)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: _upload(alice.http, "r.json", report).status_code, range(4)))
    assert answers == [201] * 4
    assert peak == 1
    small = b'{"format":"v100","device":%d,"data":[]}' % alice.device_id
    with ThreadPoolExecutor(4) as pool:  # small files pass each other
        assert list(pool.map(lambda _: _upload(alice.http, "r.json", small).status_code, range(4))) == [201] * 4
    assert peak > 1
