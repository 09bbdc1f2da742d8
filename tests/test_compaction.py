"""Background compaction on a running server: single POSTs are merged a moment later, unchanged."""

from __future__ import annotations

import time

import sqlalchemy as sa

from iotile_cloud.api.connection import Api
from iotile_cloud.server import db
from iotile_cloud.testing.cloud import CloudHelper


def test_a_running_server_compacts_single_posts_in_the_background(cloud: CloudHelper, api: Api) -> None:
    """Points posted one at a time through the API are merged by the server itself a moment later;
    every point keeps its id, time and value."""
    project_id, project_slug = cloud.quick_add_project()
    device = cloud.quick_add_device(project_id)
    stream = f"s--{project_slug[3:]}--{device[3:]}--5001"

    def stored() -> list[tuple[int, str, int]]:
        page = api.data.get(filter=stream, page_size=1000)["results"]
        return [(p["id"], p["timestamp"], p["int_value"]) for p in page]

    def segments() -> int:
        with cloud.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(db.segments)).scalar_one())

    with cloud.compaction_paused():
        for i in range(30):
            api.data.post({"stream": stream, "timestamp": f"2026-01-01T00:{i:02d}:00Z", "int_value": i})
        before = stored()
        assert len(before) == 30 and segments() == 30  # one small segment per POST, nothing rewritten
    deadline = time.monotonic() + 20
    while segments() > 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert segments() == 1
    assert stored() == before


def test_compaction_racing_posts_and_edits_loses_nothing(cloud: CloudHelper, api: Api) -> None:
    """Single POSTs and PATCHes of stored points while compaction passes run back to back (on
    PostgreSQL they really overlap): every point is there once, with its last written value."""
    import threading

    from iotile_cloud.server import points

    project_id, project_slug = cloud.quick_add_project()
    device = cloud.quick_add_device(project_id)
    stream = f"s--{project_slug[3:]}--{device[3:]}--5001"
    latest: dict[int, int] = {}
    for i in range(20):
        point = api.data.post({"stream": stream, "timestamp": f"2026-01-01T00:{i:02d}:00Z", "int_value": i})
        latest[point["id"]] = i
    stop = threading.Event()
    failures: list[BaseException] = []

    def compact_forever() -> None:
        while not stop.is_set():
            try:
                points.compact_all(cloud.engine)
            except BaseException as error:  # reported below
                failures.append(error)
                return

    runner = threading.Thread(target=compact_forever)
    runner.start()
    try:
        for i in range(20, 60):
            point = api.data.post({"stream": stream, "timestamp": f"2026-01-01T01:{i:02d}:00Z", "int_value": i})
            latest[point["id"]] = i
            edited = sorted(latest)[(i * 7) % len(latest)]
            api.data(edited).patch({"int_value": 1000 + i})
            latest[edited] = 1000 + i
    finally:
        stop.set()
        runner.join()
    assert not failures
    points.compact_all(cloud.engine)
    stored = {p["id"]: p["int_value"] for p in api.data.get(filter=stream, page_size=1000)["results"]}
    assert stored == latest
