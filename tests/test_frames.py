"""Stream data into columns: the three paths agree with what the server holds."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import httpx
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from iotile_cloud.api.connection import Api
from iotile_cloud.server import db, points
from iotile_cloud.stream.data import RawData, StreamData
from iotile_cloud.stream.frames import fetch_arrays, fetch_dataframe, fetch_table
from iotile_cloud.testing.cloud import CloudHelper

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


@pytest.fixture
def seeded(cloud: CloudHelper, api: Api) -> dict[str, str]:
    """Two devices in one project, 2500 points on each device's 5001 and 100 on 5002."""
    project_id, project = cloud.quick_add_project()
    devices = [cloud.quick_add_device(project_id) for _ in range(2)]
    gid = project[3:]
    for n, device in enumerate(devices):
        for lid, count in (("5001", 2500), ("5002", 100)):
            stream = f"s--{gid}--{device[3:]}--{lid}"
            points = [
                {
                    "stream": stream,
                    "timestamp": (T0 + dt.timedelta(seconds=10 * i + n)).isoformat(),
                    "int_value": i + 1000 * n,
                }
                for i in range(count)
            ]
            for i in range(0, count, 1000):
                api.data.post(points[i : i + 1000])
    return {
        "project": project,
        "device": devices[0],
        "stream": f"s--{gid}--{devices[0][3:]}--5001",
        "variable": f"v--{gid}--5001",
    }


def server_rows(cloud: CloudHelper, where: Callable[[sa.Select], sa.Select]) -> list[tuple[int, int]]:
    """(microseconds, int_value) straight from the database (through the point store), in time order."""
    with cloud.engine.connect() as conn:
        pks = conn.execute(where(sa.select(db.streams.c.pk))).scalars().all()
        stored = points.select(conn, points.Query(pks)).all()
    return list(zip(stored.ts.tolist(), stored.int_value.tolist(), strict=True))


def micros(frame_index: pd.DatetimeIndex) -> list[int]:
    return list((frame_index - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(microseconds=1))


class OriginalDf(httpx.BaseTransport):
    """Forwards to the real server but strips the columnar request, as a server that only speaks the
    original JSON pages would ignore it (the original's /df/ answers CSV)."""

    def __init__(self) -> None:
        self.real = httpx.HTTPTransport()
        self.paths: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        if request.url.path.endswith("/df/"):
            params = [(k, v) for k, v in request.url.params.multi_items() if k != "format"]
            request = httpx.Request(
                request.method,
                request.url.copy_with(params=params),
                headers={k: v for k, v in request.headers.items() if k.lower() != "accept"},
            )
        return self.real.handle_request(request)


@pytest.mark.parametrize("kind", ["stream", "device", "variable"])
def test_three_paths_match_the_database(cloud: CloudHelper, api: Api, seeded: dict[str, str], kind: str) -> None:
    text = seeded[kind]
    where: dict[str, Callable[[sa.Select], sa.Select]] = {
        "stream": lambda q: q.where(db.streams.c.slug == text),
        "device": lambda q: q.where(db.streams.c.device_id == int(text[3:].replace("-", ""), 16)),
        "variable": lambda q: q.where(db.streams.c.slug.like(f"s--{seeded['project'][3:]}--%--5001")),
    }
    expected = server_rows(cloud, where[kind])
    assert len(expected) in (2500, 2600, 5000)

    frame = fetch_dataframe(api, text)
    assert list(zip(micros(frame.index), frame["int_value"].tolist(), strict=True)) == expected
    assert str(frame.index.tz) == "UTC" and frame.index.name == "timestamp"
    assert ("stream" in frame.columns) == (kind != "stream")

    transport = OriginalDf()
    old_server = Api(cloud.url, transport=transport)
    old_server.set_token(api.token)
    fallback = fetch_dataframe(old_server, text)
    assert any(p.endswith("/data/") for p in transport.paths)  # really used the JSON pages
    pd.testing.assert_frame_equal(fallback, frame, check_like=True)

    if kind == "stream":
        compat = StreamData(text, api)
    else:
        compat = RawData(api)
    compat.initialize_from_server(**({"filter": text} if kind != "stream" else {}))
    assert [item["int_value"] for item in compat.data] == [v for _, v in expected]


def test_range_and_lastn_boundaries(api: Api, seeded: dict[str, str]) -> None:
    text = seeded["stream"]
    start, end = T0 + dt.timedelta(seconds=100), T0 + dt.timedelta(seconds=200)
    iso = "%Y-%m-%dT%H:%M:%SZ"
    for columnar in (True, False):
        arrays = fetch_arrays(api, text, start=start.strftime(iso), end=end.strftime(iso), columnar=columnar)
        assert arrays["int_value"].tolist() == list(range(10, 20))  # start inclusive, end exclusive
        assert arrays["timestamp"][0] == np.datetime64("2026-01-01T00:01:40")
        last = fetch_arrays(api, text, lastn=7, columnar=columnar)
        assert last["int_value"].tolist() == list(range(2493, 2500))
    data = StreamData(text, api)
    data.initialize_from_server(start=start.strftime(iso), end=end.strftime(iso))
    assert [p["int_value"] for p in data.data] == list(range(10, 20))


def test_output_values_and_units(api: Api, seeded: dict[str, str]) -> None:
    frame = fetch_dataframe(api, seeded["stream"], lastn=3)
    assert frame["output_value"].tolist() == pytest.approx([2497, 2498, 2499])  # gallons out
    litres = fetch_dataframe(api, seeded["stream"], lastn=3, unit="L")
    assert litres["output_value"].tolist() == pytest.approx([v * 3.78541 for v in (2497, 2498, 2499)])
    assert litres.attrs["unit"] == "L"
    cubic = fetch_dataframe(api, seeded["device"], lastn=2, unit="out--water-meter-volume--cubic-meters")
    assert cubic["output_value"].tolist() == pytest.approx((cubic["value"] / 1000).tolist())
    with pytest.raises(ValueError, match="not available"):
        fetch_dataframe(api, seeded["stream"], lastn=1, unit="furlongs")


def test_progress_and_empty(api: Api, seeded: dict[str, str]) -> None:
    seen: list[tuple[int, int]] = []
    table = fetch_table(api, seeded["stream"], progress=lambda done, total: seen.append((done, total)))
    assert table.num_rows == 2500 and seen[-1] == (2500, 2500)
    empty = fetch_dataframe(api, seeded["stream"], start="2030-01-01T00:00:00Z")
    assert len(empty) == 0 and "output_value" in empty.columns


def test_pages_changing_while_read(cloud: CloudHelper, api: Api, seeded: dict[str, str]) -> None:
    """New points arriving between pages: nothing old is lost or repeated, order is kept."""
    text = seeded["stream"]
    before = [v for _, v in server_rows(cloud, lambda q: q.where(db.streams.c.slug == text))]
    writer = Api(cloud.url)
    writer.set_token(api.token)
    added = []

    class Arrivals(httpx.BaseTransport):
        real = httpx.HTTPTransport()

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.params.get("page") == "2" and not added:
                new = [
                    {
                        "stream": text,
                        "timestamp": (T0 + dt.timedelta(days=1, seconds=i)).isoformat(),
                        "int_value": 90000 + i,
                    }
                    for i in range(700)
                ]
                writer.data.post(new)
                added.extend(p["int_value"] for p in new)
            return self.real.handle_request(request)

    reader = Api(cloud.url, transport=Arrivals())
    reader.set_token(api.token)
    data = StreamData(text, reader)
    data.columnar = False  # the JSON pages are what can change under the reader
    data.initialize_from_server(page_size=500)
    values = [p["int_value"] for p in data.data]
    assert added
    assert values[: len(before)] == before
    assert values == before + added  # the extra page made by the arrivals was followed


def test_stream_data_columnar_items_equal_the_json_items(cloud: CloudHelper, api: Api, seeded: dict[str, str]) -> None:
    """StreamData rebuilt from the Arrow stream is item-for-item the JSON pages' list of dicts."""
    text = seeded["stream"]
    api.data.post(
        [
            {"stream": text, "timestamp": "2026-02-01T00:00:00.250000Z", "value": 12.5, "type": "ITR"},
            {"stream": text, "timestamp": "2026-02-01T00:00:01Z", "int_value": 4294967295, "streamer_local_id": 7},
        ]
    )
    for params in ({}, {"lastn": 3}, {"start": "2026-01-01T00:01:00Z", "end": "2026-01-01T00:02:00Z"}):
        fast = StreamData(text, api)
        fast.initialize_from_server(**params)
        slow = StreamData(text, api)
        slow.columnar = False
        slow.initialize_from_server(**params)
        assert fast.data == slow.data, params
        assert fast.data
        if not params:
            assert fast.data[-1]["timestamp"] == "2026-02-01T00:00:01Z"
    last3 = StreamData(text, api)
    last3.initialize_from_server(lastn=3)
    assert last3.data[-2]["timestamp"] == "2026-02-01T00:00:00.250000Z" and last3.data[-2]["int_value"] is None


def test_columns_pages_fetched_ahead_keep_order_and_progress(api: Api, seeded: dict[str, str]) -> None:
    """Many columns pages (the next one fetched while this one's items are built) give the items
    of the item pages in order, and progress counts up to the total."""
    text = seeded["stream"]
    accepts: list[str] = []
    api.session.hooks["response"].append(lambda response, *a, **k: accepts.append(response.request.headers["Accept"]))
    fast = StreamData(text, api)
    fast.columns_page_size = 300  # 2,500 points: nine pages
    fast.columnar_min_points = 10**9  # stay on the pages
    seen: list[tuple[int, int]] = []
    fast.initialize_from_server(progress=lambda done, total: seen.append((done, total)))
    slow = StreamData(text, api)
    slow.columnar = False
    slow.initialize_from_server()
    assert fast.data == slow.data and len(fast.data) == 2500
    assert sum("columns+json" in accept for accept in accepts) == 9
    assert [done for done, _ in seen] == [min(300 * k, 2500) for k in range(1, 10)]
    assert all(total == 2500 for _, total in seen)


def test_stream_data_empty_selection(api: Api, seeded: dict[str, str]) -> None:
    data = StreamData(seeded["stream"], api)
    data.initialize_from_server(start="2030-01-01T00:00:00Z")
    assert data.data == []


def test_raw_data_columns_pages_equal_the_item_pages(api: Api, seeded: dict[str, str]) -> None:
    """RawData reads /data/ as columns pages (several streams, ids, nulls) item for item as the
    original item pages; a subclass with its own _fetch_data keeps getting item pages through it."""
    urls: list[str] = []
    api.session.hooks["response"].append(
        lambda response, *args, **kwargs: urls.append(response.request.headers["Accept"])
    )
    for params in (
        {"filter": seeded["device"]},
        {"filter": seeded["variable"], "start": "2026-01-01T00:01:00Z", "end": "2026-01-01T00:05:00Z"},
        {"filter": seeded["stream"], "lastn": 7},
    ):
        urls.clear()
        fast = RawData(api)
        fast.initialize_from_server(**params)
        assert urls and all("columns+json" in accept for accept in urls)
        slow = RawData(api)
        slow.columnar = False
        slow.initialize_from_server(**params)
        assert fast.data == slow.data and fast.data, params

    class Counted(RawData):
        def _fetch_data(self, *args: object, **kwargs: object) -> dict[str, object]:
            self.calls = getattr(self, "calls", 0) + 1
            return super()._fetch_data(*args, **kwargs)

    counted = Counted(api)
    counted.initialize_from_server(filter=seeded["device"], page_size=1000)
    assert counted.calls == 3 and len(counted.data) == 2600  # 2,600 points in pages of 1,000


@pytest.mark.parametrize("piece", [1, 7, 4096, 65536, 1 << 20])
def test_body_reader_gives_arrow_the_stream_however_it_is_cut(piece: int) -> None:
    """The IPC reader gets the same table whatever the sizes of the received pieces (empty ones
    included), reads inside a piece being views and reads across pieces joined."""
    import pyarrow as pa

    from iotile_cloud.stream.frames import _BodyReader

    table = pa.table({"a": np.arange(5_000), "b": np.linspace(0, 1, 5_000)})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        for batch in table.to_batches(max_chunksize=700):
            writer.write_batch(batch)
    body = sink.getvalue().to_pybytes()
    pieces = [body[i : i + piece] for i in range(0, len(body), piece)]
    pieces.insert(2, b"")
    read = pa.ipc.open_stream(pa.PythonFile(_BodyReader(iter(pieces)), mode="r")).read_all()
    assert read.equals(table)


def test_arrow_answer_is_the_stream_writers_bytes() -> None:
    """The server opens the stream with the writer and sends later batches as their own messages:
    byte for byte the stream the writer would make (dictionaries once), for none, one or many batches."""
    import pyarrow as pa

    from iotile_cloud import wire
    from iotile_cloud.server.columnar import _stream_messages

    schema = wire.stream_schema()

    def batch(first: int, n: int) -> pa.RecordBatch:
        codes = np.arange(first, first + n) % 2
        return pa.RecordBatch.from_arrays(
            [
                pa.array(np.arange(first, first + n), pa.timestamp("us", tz="UTC")),
                pa.array(np.linspace(0, 1, n)),
                pa.array(np.arange(n), mask=codes == 1),
                pa.array(np.linspace(0, 2, n)),
                pa.array(np.arange(n)),
                pa.nulls(n, pa.int64()),
                pa.array(codes == 0),
                pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int8)), pa.array(wire.STATUSES)),
                pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(["s--a", "s--b"])),
                pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int8)), pa.array(wire.TYPES)),
            ],
            schema=schema,
        )

    for batches in ([], [batch(0, 10)], [batch(0, 10), batch(10, 7), batch(17, 1)]):
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, schema) as writer:
            for one in batches:
                writer.write_batch(one)
        sent = b"".join(bytes(piece) for piece in _stream_messages(iter(batches)))
        assert sent == sink.getvalue().to_pybytes()
        assert pa.ipc.open_stream(sent).read_all().num_rows == sum(b.num_rows for b in batches)
