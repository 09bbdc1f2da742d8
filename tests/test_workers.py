"""Several server processes over one database: nothing shared lives in a process.

Two ``serve`` processes on their own ports stand for two workers behind a load balancer, so each
request goes to the worker the test chooses; ``serve --workers 2`` (one port, a supervisor) is
tested on its own. Runs on SQLite, and on PostgreSQL when IOTILE_CLOUD_TEST_DATABASE_URL is set.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from iotile_cloud.client import Client
from iotile_cloud.reports import SignedListReport
from iotile_cloud.server import db
from iotile_cloud.server.routes.auth import create_user
from iotile_cloud.server.run import ServerProcess
from iotile_cloud.simulate import Chances, SimDevice, Simulator, Upload
from iotile_cloud.testing.plugin import DATABASE_ENV

STAFF = ("staff@example.com", "staff-pass")
START = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return db.sqlite_url(tmp_path / "shared.sqlite3")
    url = os.environ.get(DATABASE_ENV)
    if not url:
        pytest.skip(f"set {DATABASE_ENV} to run the PostgreSQL variant")
    request.getfixturevalue("iotile_cloud")  # empties the shared test database first
    return url


def _add_staff(url: str) -> None:
    engine = db.make_engine(url)
    try:
        with engine.begin() as conn:
            create_user(conn, email=STAFF[0], username="staff", password=STAFF[1], is_staff=True)
    finally:
        engine.dispose()


@pytest.fixture
def workers(database_url: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two servers started at the same moment on one data dir: both migrate and make the JWT secret."""
    data_dir = tmp_path / "data"
    pair = (
        ServerProcess(data_dir, "--database", database_url),
        ServerProcess(data_dir, "--database", database_url),
    )
    for server in pair:
        server.launch()
    try:
        for server in pair:
            server.wait_ready(60)
        _add_staff(database_url)
        yield pair
    finally:
        for server in pair:
            server.stop()


def _clients(pair: tuple[ServerProcess, ServerProcess]) -> tuple[Client, Client]:
    first = Client(pair[0].url)
    first.login(*STAFF)
    # The same token on the other worker: every worker signs with the one secret in the data dir.
    second = Client(pair[1].url, token=first.token)
    return first, second


def _at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released together; return their results (or raise the first error)."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except Exception as error:
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        if isinstance(result, Exception):
            raise result
    return results


def _stored(client: Client, device: SimDevice) -> Counter[int]:
    """Points stored per stream lid, as the API counts them."""
    counts = client.get(f"device/{device.slug}/extra/")["stream_counts"]
    return Counter({int(slug[-4:], 16): row["data_cnt"] for slug, row in counts.items()})


def _expected(uploads: list[Upload]) -> Counter[int]:
    """Distinct readings per stream in what was uploaded (each reading id counts once)."""
    seen: dict[int, int] = {}
    for upload in uploads:
        for reading in SignedListReport.decode(upload.data).readings:
            seen[reading.reading_id] = reading.stream
    return Counter(seen.values())


def _user_streams(counts: Counter[int]) -> Counter[int]:
    return Counter({lid: n for lid, n in counts.items() if lid < 0x5800})


def _upload(client: Client, upload: Upload) -> dict[str, Any]:
    return client.upload_report(upload.data, received=upload.received, filename="report.bin")


def test_the_same_report_sent_to_both_workers_at_once_is_stored_once(
    workers: tuple[ServerProcess, ServerProcess],
) -> None:
    first, second = _clients(workers)
    # Two water meters share a project, so their first reports also race to create the same
    # variables and streams (the marker and reboot streams) on different workers.
    simulator = Simulator.provision(
        first, 4, started=START, seed=7, chances=Chances(reboot=0.2, offline=0, duplicate=0)
    )
    sent: dict[str, list[Upload]] = {device.slug: [] for device in simulator.devices}
    clock = START
    for _ in range(4):
        clock += dt.timedelta(hours=2)
        batch = [upload for device in simulator.devices for upload in device.advance(clock, simulator.chances)]
        calls: list[Callable[[], Any]] = []
        for upload in batch:
            sent[upload.device].append(upload)
            calls += [lambda u=upload: _upload(first, u), lambda u=upload: _upload(second, u)]
        answers = _at_once(*calls)
        assert all(answer["count"] == batch[i // 2].readings for i, answer in enumerate(answers))
    for device in simulator.devices:
        expected = _expected(sent[device.slug])
        assert sum(expected.values()) == device.generated
        for client in (first, second):
            assert _user_streams(_stored(client, device)) == _user_streams(expected)
            assert client.streamer_acks(device.slug) == {0: device.next_id - 1}
        # One report record per upload (both copies), one completion marker per stored report.
        records = first.get("streamer/report/", streamer__slug=f"t--{device.slug[3:]}--0000")["count"]
        assert records == 2 * len(sent[device.slug])
        assert _stored(first, device)[0x5A05] == len(sent[device.slug])


def test_interleaved_writes_and_reads_across_workers_lose_nothing(
    workers: tuple[ServerProcess, ServerProcess],
) -> None:
    first, second = _clients(workers)
    simulator = Simulator.provision(first, 2, started=START, seed=11, chances=Chances.none())
    meter = simulator.devices[0]
    sent: list[Upload] = []
    clock = START
    # Write on one worker, read on the other right after: a committed write is visible everywhere.
    for round_ in range(10):
        clock += dt.timedelta(minutes=30)
        writer, reader = (first, second) if round_ % 2 == 0 else (second, first)
        for upload in meter.advance(clock, simulator.chances):
            _upload(writer, upload)
            sent.append(upload)
        assert _user_streams(_stored(reader, meter)) == _user_streams(_expected(sent))

    # Then both at once: uploads of both devices on both workers while pages are read on both.
    stop = threading.Event()
    pages: list[int] = []

    def read_pages(client: Client) -> None:
        while not stop.is_set():
            pages.append(len(client.get("data/", filter=meter.slug, page_size=200)["results"]))

    readers = [threading.Thread(target=read_pages, args=(c,)) for c in (first, second)]
    for thread in readers:
        thread.start()
    try:
        for round_ in range(8):
            clock += dt.timedelta(minutes=30)
            calls: list[Callable[[], Any]] = []
            for index, device in enumerate(simulator.devices):
                client = (first, second)[(index + round_) % 2]
                for upload in device.advance(clock, simulator.chances):
                    if device is meter:
                        sent.append(upload)
                    calls.append(lambda c=client, u=upload: _upload(c, u))
            _at_once(*calls)
    finally:
        stop.set()
        for thread in readers:
            thread.join()
    assert pages and min(pages) > 0
    expected = _expected(sent)
    assert _user_streams(_stored(first, meter)) == _user_streams(expected)
    assert sum(_user_streams(_stored(second, simulator.devices[1])).values()) == simulator.devices[1].generated
    (slug,) = [s for s in first.get(f"device/{meter.slug}/extra/")["stream_counts"] if s.endswith("--5001")]
    data = list(second.paginate("data/", filter=slug))
    assert len(data) == expected[0x5001]
    assert len({row["id"] for row in data}) == len(data)


def _workers_of(pid: int) -> list[int]:
    """The supervisor's spawned worker processes (not multiprocessing's resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def _request_count(url: str) -> int:
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            counted = conn.execute(sa.select(db.counters.c.value).where(db.counters.c.name == "requests")).scalar()
    finally:
        engine.dispose()
    return int(counted or 0)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the worker processes through /proc")
def test_serve_with_two_workers_replaces_dead_ones_and_counts_every_request(tmp_path: Path) -> None:
    url = db.sqlite_url(tmp_path / "data" / "iotile-cloud.sqlite3")
    server = ServerProcess(tmp_path / "data", "--workers", "2").start(60)
    assert server.process is not None
    try:
        deadline = time.monotonic() + 60
        while len(_workers_of(server.process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = _workers_of(server.process.pid)
        assert len(workers) == 2
        _add_staff(url)
        client = Client(server.url)
        client.login(*STAFF)

        # A worker that dies is replaced; the other keeps serving meanwhile.
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert client.get("org/")["count"] == 0
            now = _workers_of(server.process.pid)
            if len(now) == 2 and workers[0] not in now:
                break
            time.sleep(0.2)
        assert len(now) == 2 and workers[0] not in now

        # Idle workers hand their counts to the database about once a second: wait until it is still.
        before, settle_by = _request_count(url), time.monotonic() + 60
        while time.monotonic() < settle_by:
            time.sleep(2.5)
            now_count = _request_count(url)
            if now_count == before:
                break
            before = now_count
        for _ in range(20):  # a fresh connection each time, so the kernel spreads them over both workers
            response = httpx.get(f"{server.url}/api/v1/org/", headers={"Authorization": f"jwt {client.token}"})
            assert response.status_code == 200
    finally:
        server.stop()
    assert server.process.returncode == 0
    assert _workers_of(server.process.pid) == []
    # Stopping gracefully, each worker wrote what it still held: every request is counted.
    assert _request_count(url) == before + 20


def test_counters_of_two_workers_add_up_in_the_database(database_url: str) -> None:
    from iotile_cloud.server.counters import SharedCounter

    engines = [db.make_engine(database_url) for _ in range(2)]
    try:
        db.migrate(engines[0])
        first, second = (SharedCounter(engine, "test-counter", flush_interval=0.05) for engine in engines)
        first.reset()
        threads = [threading.Thread(target=lambda c=c: [c.add() for _ in range(500)]) for c in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        second.close()  # a worker stopping writes what it holds
        assert first.value == 1000  # reading adds this worker's pending count first: exact
        first.reset(7)
        second.add(3)
        second.flush()
        assert first.value == 10
        first.close()
    finally:
        for engine in engines:
            engine.dispose()
