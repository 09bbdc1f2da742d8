"""Uploading reports and events to a live server: de-duplication, conversion, bad input."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from iotile_cloud.api.connection import Api
from iotile_cloud.api.exceptions import HttpClientError, HttpNotFoundError
from iotile_cloud.reports import Reading, SignedListReport
from iotile_cloud.server import db
from iotile_cloud.testing.cloud import CloudHelper

from .conftest import TESTDATA

REPORTS = TESTDATA / "reports"
RECEIVED = dt.datetime(2026, 2, 1, 2, 0, tzinfo=dt.timezone.utc)


def _count(cloud: CloudHelper, table: sa.Table | None = None) -> int:
    """Rows of ``table``, or stored data points (of every stream) by default."""
    with cloud.engine.connect() as conn:
        if table is None:
            return int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(db.segments.c.count), 0))).scalar_one())
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


@pytest.fixture
def device10(cloud: CloudHelper) -> tuple[str, str]:
    """Device 0x0a (the sample reports' uuid), claimed into a fresh project."""
    project_id, project_slug = cloud.quick_add_project()
    return cloud.quick_add_device(project_id, device_id=10), project_slug


def test_upload_binary_report_then_duplicates(api: Api, cloud: CloudHelper, device10: tuple[str, str]) -> None:
    device, project = device10
    ts = RECEIVED.isoformat()
    resp = api.streamer(action="report").upload_file(filename=str(REPORTS / "valid_100_readings.bin"), timestamp=ts)
    assert resp == {"count": 100, "stored": 100, "duplicates": 0, "events": 0}
    assert _count(cloud) == 101  # 100 readings and the 5a05 "complete report" marker
    acks = api.client.streamer_acks(device)
    report = SignedListReport.decode((REPORTS / "valid_100_readings.bin").read_bytes())
    assert acks == {report.streamer_index: report.highest_id}
    # The same report again stores nothing new, and the answer says so.
    again = api.client.upload_report(REPORTS / "valid_100_readings.bin", received=RECEIVED)
    assert again == {"count": 100, "stored": 0, "duplicates": 100, "events": 0}
    assert _count(cloud) == 101
    records = api.streamer.report.get()
    assert records["count"] == 2
    assert {r["actual_last_id"] for r in records["results"]} == {report.highest_id, None}
    marker = api.data.get(filter=f"s--{project[3:]}--{device[3:]}--5a05")
    assert marker["count"] == 1 and marker["results"][0]["streamer_local_id"] == report.report_id


def test_reading_times_and_values(api: Api, cloud: CloudHelper, device10: tuple[str, str]) -> None:
    device, project = device10
    readings = [Reading(0x5001, 1, 10, 100), Reading(0x5001, 2, 20, 200), Reading(0x5C00, 3, 0x80000000 | 600, 7)]
    report = SignedListReport(device=10, report_id=4, sent_timestamp=30, readings=readings)
    assert api.client.upload_report(report, received=RECEIVED)["count"] == 3
    points = api.data.get(filter=f"s--{project[3:]}--{device[3:]}--5001")["results"]
    # Uptime readings before a reboot: their boot ended before the one the report was sent in began
    # (received - 30 s): placed to end there, and marked dirty.
    assert [p["timestamp"] for p in points] == ["2026-02-01T01:59:20Z", "2026-02-01T01:59:30Z"]
    assert [p["int_value"] for p in points] == [100, 200]
    assert points[0]["value"] == pytest.approx(378.541)  # gallons in, litres stored
    assert [p["dirty_ts"] for p in points] == [True, True]
    reboot = api.data.get(filter=f"s--{project[3:]}--{device[3:]}--5c00")["results"]
    assert reboot[0]["timestamp"] == "2000-01-01T00:10:00Z" and reboot[0]["status"] == "utc"


def test_readings_across_reboots_are_placed_before_each_boot(
    api: Api, cloud: CloudHelper, device10: tuple[str, str]
) -> None:
    """Uptime restarts at each reboot: earlier boots' readings end where the next boot starts (never
    in the future), dirty; the first block uses the previous report's boot when it fits (clean)."""
    device, project = device10
    first = SignedListReport(device=10, report_id=1, sent_timestamp=5000, readings=[Reading(0x5001, 1, 4000, 1)])
    api.client.upload_report(first, received=RECEIVED)  # that boot started at RECEIVED - 5000 s
    readings = [
        Reading(0x5001, 2, 5500, 2),  # the first report's boot, 500 s after it was sent
        Reading(0x5C00, 3, 1, 1),  # reboot: a boot with two readings, then
        Reading(0x5001, 4, 300, 3),
        Reading(0x5C00, 5, 2, 2),  # another reboot: the boot this report is sent in
        Reading(0x5001, 6, 100, 4),
    ]
    later = RECEIVED + dt.timedelta(hours=2)
    second = SignedListReport(device=10, report_id=7, sent_timestamp=200, readings=readings)
    api.client.upload_report(second, received=later)

    def times(lid: str) -> list[tuple[str, bool]]:
        found = api.data.get(filter=f"s--{project[3:]}--{device[3:]}--{lid}")["results"]
        return [(p["timestamp"], p["dirty_ts"]) for p in found]

    iso = "%Y-%m-%dT%H:%M:%SZ"
    boot = later - dt.timedelta(seconds=200)  # the boot this report was sent in
    middle = boot - dt.timedelta(seconds=300)  # the middle boot, placed to end where the last began
    previous = RECEIVED - dt.timedelta(seconds=5000)
    assert times("5001") == [
        ((previous + dt.timedelta(seconds=4000)).strftime(iso), False),
        ((previous + dt.timedelta(seconds=5500)).strftime(iso), False),  # the previous boot: known
        (boot.strftime(iso), True),  # 300 s into the middle boot
        ((boot + dt.timedelta(seconds=100)).strftime(iso), False),
    ]
    assert times("5c00") == [
        ((middle + dt.timedelta(seconds=1)).strftime(iso), True),
        ((boot + dt.timedelta(seconds=2)).strftime(iso), False),
    ]
    now = dt.datetime.now(dt.timezone.utc).strftime(iso)
    assert all(stamp <= max(now, later.strftime(iso)) for stamp, _ in times("5001") + times("5c00"))


def test_overlapping_report_stores_only_new_readings(api: Api, cloud: CloudHelper, device10: tuple[str, str]) -> None:
    def report(ids: range, report_id: int) -> SignedListReport:
        return SignedListReport(
            device=10, report_id=report_id, sent_timestamp=1000, readings=[Reading(0x5001, i, i, i) for i in ids]
        )

    api.client.upload_report(report(range(1, 11), 11), received=RECEIVED)
    api.client.upload_report(report(range(6, 16), 16), received=RECEIVED)
    ids = [p["streamer_local_id"] for p in RawDataIds(api, device10)]
    assert ids == list(range(1, 16))
    api.client.upload_report(report(range(1, 5), 17), received=RECEIVED)  # older: last_id must not move back
    assert api.client.streamer_acks(device10[0]) == {0: 15}


def RawDataIds(api: Api, device10: tuple[str, str]) -> list[dict[str, int]]:  # noqa: N802
    device, project = device10
    return api.data.get(filter=f"s--{project[3:]}--{device[3:]}--5001", page_size=1000)["results"]


def test_ten_concurrent_uploads_store_each_reading_once(
    api: Api, cloud: CloudHelper, device10: tuple[str, str]
) -> None:
    data = (REPORTS / "valid_100_readings.bin").read_bytes()
    errors: list[BaseException] = []

    def upload() -> None:
        try:
            assert api.client.upload_report(data, received=RECEIVED, filename="r.bin")["count"] == 100
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=upload) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _count(cloud) == 101


def test_dictionary_report_with_events(api: Api, cloud: CloudHelper, device10: tuple[str, str]) -> None:
    device, project = device10
    answer = api.client.upload_report(REPORTS / "v2_event_with_data.json", received=RECEIVED)
    assert (answer["count"], answer["stored"], answer["events"]) == (2, 2, 2)
    events = api.event.get(filter=device)["results"]
    assert [e["extra_data"] for e in events] == [{"foo": "a", "bar": "b"}, {"foo": "c", "bar": "d"}]
    data = api.data.get(filter=f"s--{project[3:]}--{device[3:]}--5051")["results"]
    assert [(p["timestamp"], p["int_value"]) for p in data] == [
        ("2017-01-10T10:02:00Z", 5),
        ("2017-01-10T10:07:00Z", 6),
    ]
    assert api.client.upload_report(REPORTS / "v2_report1.mp", received=RECEIVED)["count"] == 0


def test_dictionary_report_mixing_streams_and_fractional_values(
    api: Api, cloud: CloudHelper, device10: tuple[str, str]
) -> None:
    """Readings of several streams, interleaved, some with fractional values (kept as sent, no
    int_value) among whole ones (converted by each stream's units), stay in report order."""
    from iotile_cloud.reports import DictionaryReport
    from iotile_cloud.reports.dictionary import DictReading

    device, project = device10
    stamp = RECEIVED - dt.timedelta(minutes=10)
    values: list[tuple[int, int | float]] = [(0x5001, 10), (0x5002, 2.5), (0x5001, 11), (0x5002, 3), (0x5001, 1.25)]
    readings = [
        DictReading(stream, i + 1, None, stamp + dt.timedelta(seconds=i), value)
        for i, (stream, value) in enumerate(values)
    ]
    report = DictionaryReport(device=10, report_id=9, sent_timestamp=100, readings=readings)
    assert api.client.upload_report(report.encode_json(), received=RECEIVED, filename="r.json")["stored"] == 5

    def stored(lid: str) -> list[tuple[object, object]]:
        found = api.data.get(filter=f"s--{project[3:]}--{device[3:]}--{lid}")["results"]
        return [(p["int_value"], p["value"]) for p in found]

    first, second = stored("5001"), stored("5002")
    assert [iv for iv, _ in first] == [10, 11, None] and first[2][1] == 1.25
    assert first[0][1] == pytest.approx(37.8541)  # gallons in, litres stored
    assert second[0] == (None, 2.5) and second[1][0] == 3


@pytest.mark.parametrize(
    "name, upload_as, status, reason",
    [
        ("invalid_footer_16_readings.bin", "r.bin", 400, "Invalid Hash"),
        ("length_too_long_16_readings.bin", "r.bin", 400, "Invalid report length"),
        ("length_too_short_16_readings.bin", "r.bin", 400, "Invalid report length"),
        ("not_a_report.jpg", "not_a_report.jpg", 400, "extension not supported"),
        ("not_a_report.jpg", "r.bin", 400, "Unsupported Report Format: 255"),
        ("valid_16_readings.bin", "r.mp", 400, "Not a msgpack report"),
        ("valid_16_readings.bin", "r.json", 400, "Not a JSON report"),
        ("device-0ade-report.bin", "r.bin", 404, "not found"),
    ],
)
def test_malformed_uploads_store_nothing(
    api: Api, cloud: CloudHelper, device10: tuple[str, str], name: str, upload_as: str, status: int, reason: str
) -> None:
    with pytest.raises(HttpClientError) as info:
        api.client.upload_report((REPORTS / name).read_bytes(), received=RECEIVED, filename=upload_as)
    assert info.value.status_code == status
    assert reason in str(info.value)
    assert _count(cloud) == 0 and _count(cloud, db.streamer_reports) == 0


def test_truncated_random_and_unclaimed(api: Api, cloud: CloudHelper, device10: tuple[str, str]) -> None:
    import os

    data = (REPORTS / "valid_100_readings.bin").read_bytes()
    for blob in (data[:-7], os.urandom(500), b""):
        with pytest.raises(HttpClientError):
            api.client.upload_report(blob, received=RECEIVED, filename="r.bin")
    with pytest.raises(HttpClientError) as info:
        api.client.send("POST", "streamer/report/", files={"file": ("r.bin", data)})
    assert info.value.detail == {"error": "missing timestamp argument"}
    # Device 0x0b exists but is not claimed.
    with cloud.engine.begin() as conn:
        conn.execute(
            sa.insert(db.devices).values(id=11, template="internaltestingtemplate-v1-0-0", created_on=db.now_us())
        )
    unclaimed = SignedListReport(device=11, report_id=2, sent_timestamp=1, readings=[Reading(0x5001, 1, 1, 1)])
    with pytest.raises(HttpClientError, match="not claimed"):
        api.client.upload_report(unclaimed, received=RECEIVED)
    assert _count(cloud) == 0


def test_signed_reports_need_a_registered_key(api: Api, cloud: CloudHelper, device10: tuple[str, str]) -> None:
    key = bytes(range(32))
    report = SignedListReport(
        device=10, report_id=9, sent_timestamp=5, readings=[Reading(0x5001, 1, 1, 1)], signature_flags=1
    )
    data = report.encode(key)
    with pytest.raises(HttpClientError, match="no key is registered"):
        api.client.upload_report(data, received=RECEIVED, filename="s.bin")
    with cloud.engine.begin() as conn:
        conn.execute(sa.update(db.devices).where(db.devices.c.id == 10).values(report_key=bytes(32).hex()))
    with pytest.raises(HttpClientError, match="Invalid signature"):
        api.client.upload_report(data, received=RECEIVED, filename="s.bin")
    with cloud.engine.begin() as conn:
        conn.execute(sa.update(db.devices).where(db.devices.c.id == 10).values(report_key=key.hex()))
    assert api.client.upload_report(data, received=RECEIVED, filename="s.bin")["count"] == 1
    assert _count(cloud) == 2


def test_device_token_acts_only_for_its_device(api: Api, cloud: CloudHelper, device10: tuple[str, str]) -> None:
    project_id = api.device(device10[0]).get()["project"]
    other = cloud.quick_add_device(project_id, device_id=0x0ADE)
    token = api.device(device10[0]).key.get(type="a-jwt")["key"]
    gateway = Api(cloud.url)
    gateway.set_token(token, token_type="a-jwt")
    assert gateway.client.upload_report(REPORTS / "valid_16_readings.bin", received=RECEIVED)["count"] == 16
    with pytest.raises(HttpClientError) as info:
        gateway.client.upload_report(REPORTS / "device-0ade-report.bin", received=RECEIVED)
    assert info.value.status_code == 403
    with pytest.raises(HttpClientError):
        gateway.org.get()
    assert other


def test_event_upload_with_files(api: Api, cloud: CloudHelper, device10: tuple[str, str], tmp_path: Path) -> None:
    device, project = device10
    stream = f"s--{project[3:]}--{device[3:]}--5001"
    plain = tmp_path / "wave.json"
    plain.write_text(json.dumps({"x": [1, 2, 3]}))
    packed = tmp_path / "wave.json.gz"
    packed.write_bytes(gzip.compress(b'{"y": [4]}'))
    first = api.event.upload.upload_file(
        str(plain),
        data={"stream": stream, "timestamp": "2026-02-01T00:00:00Z", "encoded_extra_data": json.dumps({"peak": 3})},
    )
    assert first["stream"] == stream and first["encoded_extra_data"] == '{"peak": 3}'
    second = api.client.upload_event(stream, "2026-02-01T00:01:00Z", packed, extra_data={"peak": 4})
    assert api.event(first["id"]).data.get() == {"x": [1, 2, 3]}
    assert api.event(second["id"]).data.get() == {"y": [4]}
    assert api.event(first["id"]).get()["extra_data"] == {"peak": 3}
    bad = tmp_path / "wave.txt"
    bad.write_text("{}")
    with pytest.raises(HttpClientError, match="Unsupported extension for Stream Event"):
        api.event.upload.upload_file(str(bad), data={"stream": stream, "timestamp": "2026-02-01T00:00:00Z"})
    with pytest.raises(HttpClientError, match="encoded_extra_data"):
        api.event.upload.upload_file(
            str(plain), data={"stream": stream, "timestamp": "2026-02-01T00:00:00Z", "encoded_extra_data": "[1]"}
        )
    with pytest.raises(HttpNotFoundError):
        api.event.upload.upload_file(
            str(plain), data={"stream": stream.replace("5001", "7777"), "timestamp": "2026-02-01T00:00:00Z"}
        )
    assert _count(cloud, db.events) == 2


def test_files_of_deleted_events_and_reports_are_swept(
    api: Api, cloud: CloudHelper, device10: tuple[str, str], tmp_path: Path
) -> None:
    """An event's file and a report's raw copy outlive their rows when a cascade deletes those (a
    stream or device deleted): the housekeeping sweep removes them, and only them, once old enough."""
    from iotile_cloud.server import housekeeping

    device, project = device10
    doomed, kept = (f"s--{project[3:]}--{device[3:]}--{lid}" for lid in ("5001", "5002"))
    wave = tmp_path / "wave.json"
    wave.write_text('{"x": [1]}')
    gone_event = api.client.upload_event(doomed, "2026-02-01T00:00:00Z", wave)
    kept_event = api.client.upload_event(kept, "2026-02-01T00:00:00Z", wave)
    api.client.upload_report(REPORTS / "valid_100_readings.bin", received=RECEIVED)
    data_dir = cloud.server.data_dir
    gone_file = data_dir / "events" / f"{gone_event['id']}.json"
    kept_file = data_dir / "events" / f"{kept_event['id']}.json"
    (raw_copy,) = (data_dir / "reports").iterdir()
    assert gone_file.exists() and kept_file.exists()

    api.stream(doomed).delete()  # its events go by cascade
    with cloud.engine.begin() as conn:  # the device's streamers, and their report records, by cascade
        conn.execute(sa.delete(db.streamers))
    assert housekeeping.sweep(cloud.engine, data_dir) == 0  # too young: maybe an open transaction's
    assert housekeeping.sweep(cloud.engine, data_dir, min_age=0) == 2
    assert not gone_file.exists() and not raw_copy.exists()
    assert kept_file.exists() and api.event(kept_event["id"]).data.get() == {"x": [1]}
