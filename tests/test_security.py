"""One regression test per security hole of issue 10: sizes, bombs, nesting, ranges, nulls, files, logins."""

from __future__ import annotations

import gzip
import io
import socket
from collections.abc import Iterator

import httpx
import orjson
import pytest

from iotile_cloud.api.connection import Api
from iotile_cloud.server.limits import DEFAULT_MAX_JSON_BYTES, MAX_INFLATED_BYTES
from iotile_cloud.testing.cloud import CloudHelper


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
