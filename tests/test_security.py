"""One regression test per security hole of issue 10: sizes, bombs, nesting, ranges, nulls, files, logins."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import socket
import stat
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from click.testing import CliRunner

from iotile_cloud.api.connection import Api
from iotile_cloud.cli import main
from iotile_cloud.server import db, run, security, throttle
from iotile_cloud.server.limits import DEFAULT_MAX_JSON_BYTES, MAX_INFLATED_BYTES
from iotile_cloud.server.run import LiveServer, ServerProcess
from iotile_cloud.testing.cloud import CloudHelper
from tests.conftest import USER


@pytest.fixture
def http(cloud: CloudHelper, api: Api) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cloud.url + "/api/v1", headers={"Authorization": f"jwt {api.token}"}) as client:
        yield client


@pytest.fixture
def stream(cloud: CloudHelper, api: Api) -> str:
    org = api.org.post({"name": "Sec Org"})["slug"]
    project = api.project.post({"name": "Sec Project", "org": org})
    device = cloud.quick_add_device(project["id"], device_id=0x51)
    return f"s--{project['slug'][3:]}--{device[3:]}--5001"


# -- request size ---------------------------------------------------------------------------------


def test_a_json_body_over_the_cap_is_refused_before_it_is_read(cloud: CloudHelper, api: Api) -> None:
    """The server answers 413 on the Content-Length alone: the body is never sent."""
    head = (
        f"POST /api/v1/data/ HTTP/1.1\r\nHost: x\r\nAuthorization: jwt {api.token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {200 * 1024 * 1024}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", int(cloud.url.rsplit(":", 1)[1])), timeout=10) as sock:
        sock.sendall(head.encode())
        answer = b""
        while chunk := sock.recv(65536):  # the server closes the connection after answering
            answer += chunk
        answer_text = answer.decode()
    assert answer_text.startswith("HTTP/1.1 413"), answer_text
    assert "too large" in answer_text


def test_a_chunked_body_is_cut_off_at_the_cap(http: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"["
        for _ in range(DEFAULT_MAX_JSON_BYTES // 65536 + 2):
            yield b" " * 65536
        yield b"]"

    response = http.post("/data/", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "at most" in response.json()["detail"]


def test_upload_routes_take_larger_bodies_than_json_routes(http: httpx.Client, stream: str) -> None:
    big = orjson.dumps({"blob": "x" * (DEFAULT_MAX_JSON_BYTES + 1024)})
    assert http.post("/data/", content=big, headers={"Content-Type": "application/json"}).status_code == 413
    files = {"file": ("big.json", big, "application/json")}
    form = {"stream": stream, "timestamp": "2026-01-01T00:00:00Z"}
    assert http.post("/event/upload/", files=files, data=form).status_code == 201


# -- bombs and nesting ------------------------------------------------------------------------------


def test_a_gzip_bomb_event_file_is_refused(http: httpx.Client, stream: str) -> None:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as gz:
        block = b" " * (1024 * 1024)
        for _ in range(MAX_INFLATED_BYTES // len(block) + 1):
            gz.write(block)
    files = {"file": ("bomb.json.gz", out.getvalue(), "application/gzip")}
    response = http.post("/event/upload/", files=files, data={"stream": stream, "timestamp": "2026-01-01T00:00:00Z"})
    assert response.status_code == 400
    assert "inflates past" in response.json()["file"][0]


def test_a_stored_gzip_event_file_is_served_inflated(http: httpx.Client, stream: str) -> None:
    document = {"samples": list(range(50_000))}
    packed = gzip.compress(orjson.dumps(document)) + gzip.compress(b"")  # two members, as concatenated files are
    files = {"file": ("e.json.gz", packed, "application/gzip")}
    created = http.post("/event/upload/", files=files, data={"stream": stream, "timestamp": "2026-01-01T00:00:00Z"})
    assert created.status_code == 201, created.text
    served = http.get(f"/event/{created.json()['id']}/data/")
    assert served.status_code == 200
    assert orjson.loads(served.content) == document


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize("depth", [200, 1000, 100_000])
def test_deeply_nested_json_is_a_400_even_before_login(cloud: CloudHelper, depth: int) -> None:
    response = httpx.post(
        cloud.url + "/api/v1/auth/login/", content=_nested(depth), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith("JSON parse error")


def test_a_5000_digit_integer_is_a_400(http: httpx.Client, stream: str) -> None:
    body = b'{"stream": "%s", "timestamp": "2026-01-01T00:00:00Z", "int_value": %s}' % (stream.encode(), b"9" * 5000)
    response = http.post("/data/", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("JSON parse error")


@pytest.mark.parametrize("field", ["data", "extra_data"])
@pytest.mark.parametrize("depth", [256, 1000])
def test_deep_event_payloads_are_a_400(http: httpx.Client, stream: str, field: str, depth: int) -> None:
    body = b'{"stream": "%s", "timestamp": "2026-01-01T00:00:00Z", "%s": %s}' % (
        stream.encode(),
        field.encode(),
        b'{"x": ' * depth + b"{}" + b"}" * depth,
    )
    response = http.post("/event/", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text


def test_deep_encoded_extra_data_on_upload_is_a_400(http: httpx.Client, stream: str) -> None:
    encoded = '{"x": ' * 600 + "{}" + "}" * 600
    files = {"file": ("e.json", b"{}", "application/json")}
    form = {"stream": stream, "timestamp": "2026-01-01T00:00:00Z", "encoded_extra_data": encoded}
    assert http.post("/event/upload/", files=files, data=form).status_code == 400


# -- files on disk and stored tokens -----------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_entry_point_keeps_the_data_dir_private(tmp_path: Path, testdata: Path) -> None:
    """``admin`` (the first to touch a fresh dir), then the server: 0700 dirs, 0600 files, under umask 022."""
    folder = tmp_path / "data"
    old = os.umask(0o022)
    try:
        made = CliRunner().invoke(
            main, ["admin", "create-user", "a@example.com", "--password", "pw-123456", "--data-dir", str(folder)]
        )
        assert made.exit_code == 0, made.output
        assert _mode(folder) == 0o700
        assert _mode(folder / "iotile-cloud.sqlite3") == 0o600
        with LiveServer(folder) as server:
            owner = Api(server.url)
            assert owner.login(email="a@example.com", password="pw-123456")
            org = owner.org.post({"name": "Files"})["slug"]
            project = owner.project.post({"name": "Files", "org": org})
            with server.engine.begin() as conn:
                conn.execute(
                    sa.insert(db.devices).values(
                        id=0x77,
                        label="d",
                        sg="water-meter-v1-1-0",
                        template="internaltestingtemplate-v1-0-0",
                        created_on=db.now_us(),
                    )
                )
            owner.device.claim.post({"device": "d--0000-0000-0000-0077", "project": project["id"]})
            stream = f"s--{project['slug'][3:]}--0000-0000-0000-0077--5001"
            owner.event.post({"stream": stream, "timestamp": "2026-01-01T00:00:00Z", "data": {"x": 1}})
            files = [p for p in folder.rglob("*") if p.is_file()]
            assert {p.name for p in files} >= {"iotile-cloud.sqlite3", "jwt-secret", "iotile-cloud.sqlite3-wal"}
            assert any(p.parent.name == "events" for p in files)
            assert {str(p.relative_to(folder)): oct(_mode(p)) for p in files if _mode(p) != 0o600} == {}
            assert {str(p): oct(_mode(p)) for p in folder.rglob("*") if p.is_dir() and _mode(p) != 0o700} == {}
    finally:
        os.umask(old)


def test_api_tokens_are_stored_as_digests_and_still_work(cloud: CloudHelper, api: Api) -> None:
    shown = httpx.get(cloud.url + "/api/v1/auth/token/", headers={"Authorization": f"jwt {api.token}"}).json()
    token = shown["token"]
    with cloud.engine.connect() as conn:
        stored = set(conn.execute(sa.select(db.users.c.api_token)).scalars())
    assert token not in stored
    assert hashlib.sha256(token.encode()).hexdigest() in stored
    answer = httpx.get(cloud.url + "/api/v1/org/", headers={"Authorization": f"Token {token}"})
    assert answer.status_code == 200
    again = httpx.get(cloud.url + "/api/v1/auth/token/", headers={"Authorization": f"Token {token}"}).json()
    assert again["token"] == token  # the same token every time, as the original server


def test_the_migration_hashes_existing_tokens_in_place(tmp_path: Path) -> None:
    engine = db.make_engine(db.sqlite_url(tmp_path / "old.sqlite3"))
    config = Config()
    config.set_main_option("script_location", str(Path(db.__file__).parent / "migrations"))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        conn.execute(
            sa.text(
                "INSERT INTO users (username, slug, email, name, tagline, password_hash, api_token, is_staff, "
                "is_active, created_at, updated_at) VALUES ('old', 'old', 'old@x.com', '', '', 'h', 'plain-token-1', "
                "0, 1, 0, 0)"
            )
        )
    db.migrate(engine)
    with engine.connect() as conn:
        stored = conn.execute(sa.select(db.users.c.api_token)).scalar_one()
    engine.dispose()
    assert stored == hashlib.sha256(b"plain-token-1").hexdigest()


# -- login floods -------------------------------------------------------------------------------------


def test_failed_logins_are_limited_per_account_with_retry_after(cloud: CloudHelper) -> None:
    url = cloud.url + "/api/v1/auth/login/"
    bad = {"email": USER[0], "password": "wrong"}
    answers = [httpx.post(url, json=bad).status_code for _ in range(throttle.ACCOUNT_LIMIT)]
    assert answers == [401] * throttle.ACCOUNT_LIMIT
    blocked = httpx.post(url, json={"email": USER[0], "password": USER[1]})  # even the right password waits
    assert blocked.status_code == 429
    assert 0 < int(blocked.headers["Retry-After"]) <= throttle.WINDOW_US // 1_000_000
    other = httpx.post(url, json={"email": "someone-else@example.com", "password": "x"})
    assert other.status_code == 401  # another account is not blocked by this one


def test_failed_logins_are_limited_per_client_across_processes(cloud: CloudHelper, tmp_path: Path) -> None:
    """The counters live in the database: a second app on the same database sees the first one's."""
    url = cloud.url + "/api/v1/auth/login/"
    for i in range(throttle.CLIENT_LIMIT):
        assert httpx.post(url, json={"email": f"nobody{i}@example.com", "password": "x"}).status_code == 401
    database = cloud.engine.url.render_as_string(hide_password=False)
    with LiveServer(tmp_path / "second", database_url=database) as second:
        answer = httpx.post(second.url + "/api/v1/auth/login/", json={"email": "fresh@example.com", "password": "x"})
    assert answer.status_code == 429
    assert int(answer.headers["Retry-After"]) > 0


def test_a_forwarded_for_header_does_not_change_the_client_address(cloud: CloudHelper) -> None:
    """Without ``serve --trust-proxy`` nobody's X-Forwarded-For is believed: a client on this machine
    cannot pose as many addresses to get past the per-address limit."""
    url = cloud.url + "/api/v1/auth/login/"
    for i in range(throttle.CLIENT_LIMIT):
        headers = {"X-Forwarded-For": f"10.1.{i // 250}.{i % 250}"}
        answer = httpx.post(url, json={"email": f"spoof{i}@example.com", "password": "x"}, headers=headers)
        assert answer.status_code == 401
    blocked = httpx.post(
        url, json={"email": "fresh@example.com", "password": "x"}, headers={"X-Forwarded-For": "10.9.9.9"}
    )
    assert blocked.status_code == 429


def test_password_hashing_runs_a_bounded_number_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    running = 0
    peak = 0
    lock = threading.Lock()
    real = security._hasher

    class Counting:
        def verify(self, stored: str, password: str) -> bool:
            nonlocal running, peak
            with lock:
                running += 1
                peak = max(peak, running)
            try:
                return bool(real.verify(stored, password))
            finally:
                with lock:
                    running -= 1

    monkeypatch.setattr(security, "_hasher", Counting())
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda _: security.check_password(None, "x"), range(6)))
    assert peak == security.KDF_CONCURRENCY


def test_serve_takes_its_body_caps_from_flags(tmp_path: Path) -> None:
    """``iotile-cloud serve --max-json-mb`` (a real process): the cap answers 413 with the configured size."""
    with ServerProcess(tmp_path, "--max-json-mb", "0.01", "--max-upload-mb", "0.02") as server:
        response = httpx.post(
            server.url + "/api/v1/auth/login/", content=b" " * 20_000, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 413
    assert str(int(0.01 * 1024 * 1024)) in response.json()["detail"]


def test_a_trickled_request_head_is_dropped(cloud: CloudHelper, monkeypatch: pytest.MonkeyPatch) -> None:
    """Slowloris: a head that never completes does not hold the connection for ever."""
    monkeypatch.setattr(run, "HEAD_TIMEOUT", 0.5)
    with socket.create_connection(("127.0.0.1", int(cloud.url.rsplit(":", 1)[1])), timeout=10) as sock:
        sock.sendall(b"GET /api/v1/server/ HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        assert sock.recv(1024) == b""  # closed by the server, no answer
    assert time.monotonic() - started < 5
