"""A server killed (SIGKILL) while ingesting a large report leaves nothing half-stored."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from iotile_cloud.api.connection import Api
from iotile_cloud.api.exceptions import RestBaseException
from iotile_cloud.reports import Reading, SignedListReport
from iotile_cloud.server.run import ServerProcess

READINGS = 1_000_000  # a 16 MB report: ingest takes seconds, so the kill lands in the middle
RECEIVED = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "iotile_cloud.cli", *args]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    data_dir = tmp_path / "cloud"
    subprocess.run(
        _cli(
            "admin",
            "create-user",
            "ops@example.com",
            "--password",
            "ops-pass-1",
            "--staff",
            "--data-dir",
            str(data_dir),
        ),
        check=True,
        capture_output=True,
    )
    with ServerProcess(data_dir) as srv:
        yield srv


def _count(api: Api, stream: str) -> int:
    return int(api.data.get(filter=stream, page_size=1)["count"])


def test_sigkill_mid_ingest_leaves_no_partial_data(server: ServerProcess) -> None:
    api = Api(server.url)
    assert api.login(email="ops@example.com", password="ops-pass-1")
    org = api.org.post({"name": "Crash Org"})["slug"]
    project = api.project.post({"name": "Crash", "org": org})
    api.device.post({"label": "big", "template": "internaltestingtemplate-v1-0-0", "slug": "d--0abc"}, staff=1)
    api.device.claim.post({"device": "d--0abc", "project": project["id"]})
    stream = f"s--{project['slug'][3:]}--0000-0000-0000-0abc--5001"
    report = SignedListReport(
        device=0xABC,
        report_id=READINGS + 1,
        sent_timestamp=READINGS + 10,
        readings=[Reading(0x5001, i, i, i) for i in range(1, READINGS + 1)],
    )
    data = report.encode()

    outcome: list[object] = []

    def upload() -> None:
        try:
            outcome.append(api.client.upload_report(data, received=RECEIVED, filename="big.bin"))
        except RestBaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=upload)
    thread.start()
    wal = server.data_dir / "iotile-cloud.sqlite3-wal"
    deadline = time.monotonic() + 60
    # Kill once the ingest transaction has written a good part of its pages (the WAL grows).
    while time.monotonic() < deadline and (not wal.exists() or wal.stat().st_size < 16 * 1024 * 1024):
        time.sleep(0.02)
    server.kill()
    thread.join(timeout=30)
    assert outcome and isinstance(outcome[0], RestBaseException), f"the upload finished before the kill: {outcome}"

    server.start()
    api = Api(server.url)
    assert api.login(email="ops@example.com", password="ops-pass-1")
    assert _count(api, stream) == 0
    assert api.streamer.get(device="d--0abc")["count"] == 0
    assert api.streamer.report.get()["count"] == 0

    assert api.client.upload_report(data, received=RECEIVED, filename="big.bin")["stored"] == READINGS
    assert _count(api, stream) == READINGS
    assert api.client.streamer_acks("d--0abc") == {0: READINGS}
