"""The device simulator and ``iotile-cloud simulate``, against a live local server."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter

import pytest
from click.testing import CliRunner

from iotile_cloud.api.exceptions import HttpBadRequestError, HttpForbiddenError
from iotile_cloud.cli import main
from iotile_cloud.client import Client
from iotile_cloud.reports import SignedListReport
from iotile_cloud.reports.binary import REBOOT_STREAM, SIGNATURE_USER_KEY
from iotile_cloud.simulate import Chances, EnvironmentalPod, Simulator, WaterMeter
from iotile_cloud.testing.cloud import CloudHelper

from .conftest import USER

STAFF = ("staff@example.com", "staff-pass")
START = dt.datetime(2026, 5, 4, tzinfo=dt.timezone.utc)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture
def staff(cloud: CloudHelper) -> Client:
    cloud.quick_add_user(*STAFF, username="staff", is_staff=True)
    client = Client(cloud.url)
    client.login(*STAFF)
    return client


def test_devices_sample_realistic_values_with_uptime_stamps() -> None:
    meter = WaterMeter(1, random.Random(1), START)
    pod = EnvironmentalPod(2, random.Random(2), START)
    for device in (meter, pod):
        (upload,) = device.advance(START + dt.timedelta(days=1), Chances.none())
        report = SignedListReport.decode(upload.data)
        assert report.device == device.device_id and report.verified
        stamps = [r.raw_timestamp for r in report.readings]
        assert stamps == sorted(stamps) and stamps[-1] <= report.sent_timestamp < 0x80000000  # uptime, not RTC
        assert [r.reading_id for r in report.readings] == list(range(1, device.generated + 1))
    pulses = [
        r.value
        for r in SignedListReport.decode(meter.advance(START + dt.timedelta(days=8), Chances.none())[0].data).readings
    ]
    assert len(pulses) == 7 * 24 * 60 and sum(pulses) > 0 and pulses.count(0) > len(pulses) // 2  # bursts of flow
    by_stream: dict[int, list[int]] = {}
    for r in report.readings:  # the pod's day
        by_stream.setdefault(r.stream, []).append(r.value)
    assert set(by_stream) == {0x5001, 0x5002, 0x5003} and len(by_stream[0x5001]) == 24 * 12
    assert 1000 < min(by_stream[0x5001]) < max(by_stream[0x5001]) < 3000  # centi-degrees: 14-26 C
    assert all(90_000 < p < 110_000 for p in by_stream[0x5003])


def test_reboots_offline_rounds_and_duplicates_happen() -> None:
    meter = WaterMeter(3, random.Random(5), START)
    always = Chances(reboot=1.0, offline=0.0, duplicate=1.0)
    first, again = meter.advance(START + dt.timedelta(hours=1), always)
    assert again.duplicate and again.data == first.data
    readings = SignedListReport.decode(first.data).readings
    reboot = [r for r in readings if r.stream == REBOOT_STREAM]
    assert len(reboot) == 1 and meter.reboots == 1
    after = readings[readings.index(reboot[0]) :]
    assert all(r.raw_timestamp < 3600 for r in after)  # uptime restarted at the reboot
    offline = Chances(reboot=0.0, offline=1.0, duplicate=0.0)
    assert meter.advance(START + dt.timedelta(hours=2), offline) == []
    (late,) = meter.advance(START + dt.timedelta(hours=3), Chances.none())
    assert late.readings == 120  # the missed hour comes with this one


def test_simulation_against_the_server_stores_every_distinct_reading_once(staff: Client) -> None:
    chances = Chances(reboot=0.1, offline=0.2, duplicate=0.3)
    simulator = Simulator.provision(staff, 3, started=START, seed=3, chances=chances, signed=True)
    stats = simulator.run(3600, reports=12, fast=True, start=START, concurrency=2)
    assert stats.errors == 0 and stats.duplicates > 0 and stats.uploads > 0
    stored: Counter[str] = Counter()
    for device in simulator.devices:
        counts = staff.get(f"device/{device.slug}/extra/")["stream_counts"]
        stored[device.slug] = sum(row["data_cnt"] for slug, row in counts.items() if int(slug[-4:], 16) < 0x5800)
        assert staff.streamer_acks(device.slug)[0] == device.next_id - 1
    # Reboot readings go to a system stream, the rest to the user streams.
    assert stored == Counter({d.slug: d.generated - d.reboots for d in simulator.devices})


def test_signed_reports_need_the_registered_key(staff: Client) -> None:
    simulator = Simulator.provision(staff, 1, started=START, seed=9, chances=Chances.none(), signed=True)
    device = simulator.devices[0]
    (upload,) = device.advance(START + dt.timedelta(hours=1), Chances.none())
    assert SignedListReport.decode(upload.data).signature_flags == SIGNATURE_USER_KEY
    staff.post(f"device/{device.slug}/report-key/", {"key": "11" * 32}, staff=1)  # not the device's key
    with pytest.raises(HttpBadRequestError):
        staff.upload_report(upload.data, received=upload.received, filename="report.bin")
    with pytest.raises(HttpBadRequestError, match="64 hex digits"):
        staff.post(f"device/{device.slug}/report-key/", {"key": "abc"}, staff=1)


def test_registering_report_keys_is_for_staff(cloud: CloudHelper, staff: Client) -> None:
    (device,) = Simulator.provision(staff, 1, started=START, seed=1).devices
    member = Client(cloud.url)
    member.login(*USER)
    with pytest.raises(HttpForbiddenError):
        member.post(f"device/{device.slug}/report-key/", {"key": "00" * 32}, staff=1)


def test_simulate_command(cloud: CloudHelper, staff: Client) -> None:
    code, out = run("login", "--domain", cloud.url, "--email", STAFF[0], "--password", STAFF[1])
    assert code == 0, out
    code, out = run("simulate", "--devices", "2", "--interval", "1800", "--reports", "4", "--fast", "--seed", "4")
    assert code == 0, out
    assert "2 devices (environmental pod, water meter) created and claimed" in out
    assert "Done: " in out and ", 0 errors" in out.splitlines()[-1]
    code, out = run("simulate", "--devices", "1", "--duration", "1", "--reports", "1")
    assert code == 2 and "give --duration or --reports, not both" in out

    code, out = run("login", "--domain", cloud.url, "--email", USER[0], "--password", USER[1])
    assert code == 0, out
    code, out = run("simulate", "--devices", "1", "--reports", "1", "--fast")
    assert code == 1 and out.count("\n") == 1 and out.startswith("Error: ")
