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
