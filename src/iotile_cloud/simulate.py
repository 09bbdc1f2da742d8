"""Simulated IOTile devices behind a gateway: realistic streamer reports against any server.

Water meters count flow pulses (irrigation in the morning and evening, household use by day);
environmental pods measure temperature, humidity and pressure with a daily cycle. Devices stamp
readings with their uptime, as real ones do, and the gateway says when it received each report
(``?timestamp=``), which anchors those stamps. Now and then a device reboots (its uptime restarts
and a reboot reading goes into the report), goes offline and uploads its backlog late, or has its
report uploaded twice (a gateway retrying after a lost answer); the server must store each reading
once. Reports are encoded with the one codec (``iotile_cloud.reports``) and sent with ``Client``.

``Simulator.provision`` makes an org, two projects and the devices (creating devices needs a staff
account or the local server's owner); ``Simulator.run`` drives them in real time or as fast as the
server answers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from iotile_cloud.client import Client
from iotile_cloud.reports import Reading, SignedListReport
from iotile_cloud.reports.binary import REBOOT_STREAM, SIGNATURE_HASH, SIGNATURE_USER_KEY
from iotile_cloud.utils.gid import IOTileDeviceSlug

__all__ = [
    "backfill",
    "simulate",
    "Chances",
    "EnvironmentalPod",
    "SimDevice",
    "Simulator",
    "SimulationStats",
    "Upload",
    "WaterMeter",
]


@dataclass(frozen=True)
class Chances:
    """How often, per upload round, a device misbehaves."""

    reboot: float = 0.02
    offline: float = 0.05  # skips this upload: the next one carries the backlog (a late upload)
    duplicate: float = 0.05  # the same report bytes uploaded a second time

    @classmethod
    def none(cls) -> Chances:
        return cls(0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Upload:
    """One report as the gateway sends it: the bytes and when the gateway received them."""

    device: str
    data: bytes
    received: dt.datetime
    readings: int
    duplicate: bool = False


class SimDevice:
    """A device with one user streamer: samples every ``sample_period`` s, reports its backlog."""

    sensor_graph = ""
    template = ""
    sample_period = 60
    kind = "device"

    def __init__(self, device_id: int, rng: random.Random, started: dt.datetime, key: bytes | None = None) -> None:
        self.device_id = device_id
        self.slug = str(IOTileDeviceSlug(device_id))
        self.rng = rng
        self.key = key
        # Running for a while already: uptime is not close to zero at the start.
        self.booted = started - dt.timedelta(seconds=rng.randint(3600, 10 * 86400))
        self.sampled_until = started
        self.next_id = 1
        self.report_id = 0
        self.pending: list[Reading] = []
        self.generated = 0  # distinct readings made (what the server should end up storing)
        self.reboots = 0

    # -- what the sensors see ---------------------------------------------------------------

    def sample(self, when: dt.datetime) -> Iterable[tuple[int, int]]:
        """``(stream, raw u32 value)`` pairs measured at ``when``."""
        raise NotImplementedError

    def _uptime(self, when: dt.datetime) -> int:
        return max(0, int((when - self.booted).total_seconds()))

    def _add(self, stream: int, when: dt.datetime, value: int) -> None:
        self.pending.append(Reading(stream, self.next_id, self._uptime(when), value & 0xFFFFFFFF))
        self.next_id += 1
        self.generated += 1

    def advance(self, until: dt.datetime, chances: Chances) -> list[Upload]:
        """Sample up to ``until`` and return what the gateway uploads now (nothing when offline)."""
        reboot_at = None
        if self.rng.random() < chances.reboot:
            span = (until - self.sampled_until).total_seconds()
            reboot_at = self.sampled_until + dt.timedelta(seconds=self.rng.uniform(0, max(span, 0)))
        step = dt.timedelta(seconds=self.sample_period)
        when = self.sampled_until + step
        while when <= until:
            if reboot_at is not None and when >= reboot_at:
                self._reboot(reboot_at)
                reboot_at = None
            for stream, value in self.sample(when):
                self._add(stream, when, value)
            when += step
        if reboot_at is not None:
            self._reboot(reboot_at)
        self.sampled_until = when - step
        if not self.pending or self.rng.random() < chances.offline:
            return []
        upload = self._report(until)
        self.pending = []
        if self.rng.random() < chances.duplicate:
            return [upload, Upload(upload.device, upload.data, upload.received, upload.readings, duplicate=True)]
        return [upload]

    def _reboot(self, when: dt.datetime) -> None:
        self.booted = when
        self.reboots += 1
        self._add(REBOOT_STREAM, when, self.reboots)

    def _report(self, received: dt.datetime) -> Upload:
        self.report_id += 1
        report = SignedListReport(
            device=self.device_id,
            report_id=self.report_id,
            sent_timestamp=self._uptime(received),
            readings=self.pending,
            signature_flags=SIGNATURE_USER_KEY if self.key else SIGNATURE_HASH,
        )
        return Upload(self.slug, report.encode(self.key), received, len(self.pending))


def _day_fraction(when: dt.datetime) -> float:
    return (when.hour * 3600 + when.minute * 60 + when.second) / 86400


class WaterMeter(SimDevice):
    """Gallons per minute on IO 1 (0x5001): irrigation runs at dawn and dusk, short household draws by day."""

    sensor_graph = "water-meter-v1-1-0"
    template = "1d1p2bt101es-v2-0-0"
    sample_period = 60
    kind = "water meter"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.flow_left = 0  # minutes left in the current draw
        self.flow_rate = 0.0

    def sample(self, when: dt.datetime) -> Iterable[tuple[int, int]]:
        hour = when.hour
        if self.flow_left <= 0:
            irrigation = hour in (5, 6, 19, 20)
            start = 0.08 if irrigation else (0.02 if 7 <= hour <= 22 else 0.002)
            if self.rng.random() < start:
                self.flow_left = self.rng.randint(20, 60) if irrigation else self.rng.randint(1, 8)
                self.flow_rate = self.rng.uniform(8, 15) if irrigation else self.rng.uniform(1, 4)
        pulses = 0
        if self.flow_left > 0:
            self.flow_left -= 1
            pulses = max(0, round(self.flow_rate + self.rng.gauss(0, 0.5)))
        yield 0x5001, pulses


class EnvironmentalPod(SimDevice):
    """Temperature (0x5001, centi-degrees C), humidity (0x5002, centi-percent), pressure (0x5003, Pa)."""

    sensor_graph = "environmental-v1-0-0"
    template = "environmental-pod-v1-0-0"
    sample_period = 300
    kind = "environmental pod"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pressure = 101_325.0 + self.rng.gauss(0, 400)

    def sample(self, when: dt.datetime) -> Iterable[tuple[int, int]]:
        daily = math.sin(2 * math.pi * (_day_fraction(when) - 9 / 24))  # warmest mid-afternoon
        temperature = 20 + 6 * daily + self.rng.gauss(0, 0.2)
        humidity = min(100.0, max(5.0, 55 - 15 * daily + self.rng.gauss(0, 1)))
        self.pressure += self.rng.gauss(0, 8) + (101_325 - self.pressure) * 0.002
        yield 0x5001, round(temperature * 100)
        yield 0x5002, round(humidity * 100)
        yield 0x5003, round(self.pressure)


KINDS: tuple[type[SimDevice], ...] = (WaterMeter, EnvironmentalPod)
KIND_OF_SENSOR_GRAPH = {kind.sensor_graph: kind for kind in KINDS}


@dataclass
class SimulationStats:
    uploads: int = 0
    duplicates: int = 0
    readings_sent: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    last_error: str = ""

    def add(self, upload: Upload, seconds: float, error: str | None) -> None:
        self.uploads += 1
        self.duplicates += upload.duplicate
        self.readings_sent += upload.readings
        self.latencies.append(seconds)
        if error:
            self.errors += 1
            self.last_error = error


def device_key(seed: str, device_id: int) -> bytes:
    """The 32-byte user key of a simulated device (reproducible from the seed)."""
    return hashlib.sha256(f"{seed}:{device_id}".encode()).digest()


class Simulator:
    def __init__(self, client: Client, devices: list[SimDevice], chances: Chances | None = None) -> None:
        self.client = client
        self.devices = devices
        self.chances = chances or Chances()
        self.stats = SimulationStats()
        self._lock = threading.Lock()

    @classmethod
    def provision(
        cls,
        client: Client,
        count: int,
        *,
        started: dt.datetime,
        signed: bool = False,
        seed: int | None = None,
        chances: Chances | None = None,
        org_name: str | None = None,
    ) -> Simulator:
        """Create an org, a project per device kind and ``count`` devices (alternating kinds), and claim them.

        Creating devices needs a staff account (asked with ``?staff=1``) or the local server's owner.
        """
        rng = random.Random(seed)
        key_seed = str(seed) if seed is not None else secrets.token_hex(8)
        org = client.post("org/", {"name": org_name or f"Simulated fleet {secrets.token_hex(3)}"})
        projects = {
            kind: client.post("project/", {"name": kind.kind.title() + "s", "org": org["slug"]}) for kind in KINDS
        }
        devices: list[SimDevice] = []
        for index in range(count):
            kind = KINDS[index % len(KINDS)]
            made = client.post(
                "device/",
                {"template": kind.template, "sg": kind.sensor_graph, "label": f"Sim {kind.kind} {index + 1}"},
                staff=1,
            )
            slug = made["slug"]
            client.post("device/claim/", {"device": slug, "project": projects[kind]["id"]})
            device_id = IOTileDeviceSlug(slug).get_id()
            key = device_key(key_seed, device_id) if signed else None
            if key is not None:
                client.post(f"device/{slug}/report-key/", {"key": key.hex()}, staff=1)
            devices.append(kind(device_id, random.Random(rng.random()), started, key))
        return cls(client, devices, chances)

    def resume_ids(self) -> None:
        """Number new readings after what the server already acknowledged (re-using devices)."""
        for device in self.devices:
            acked = self.client.streamer_acks(device.slug).get(0, 0)
            device.next_id = max(device.next_id, acked + 1)

    def send(self, upload: Upload) -> None:
        started = time.perf_counter()
        error = None
        try:
            self.client.upload_report(upload.data, received=upload.received, filename="report.bin")
        except Exception as problem:  # counted and reported, the simulation goes on
            error = f"{type(problem).__name__}: {problem}"
        with self._lock:
            self.stats.add(upload, time.perf_counter() - started, error)

    def round(self, when: dt.datetime, pool: ThreadPoolExecutor | None = None) -> None:
        """Every device samples up to ``when`` and uploads (each device's uploads in order)."""

        def one(device: SimDevice) -> None:
            for upload in device.advance(when, self.chances):
                self.send(upload)

        if pool is None:
            for device in self.devices:
                one(device)
        else:
            list(pool.map(one, self.devices))

    def run(
        self,
        interval: float,
        *,
        reports: int | None = None,
        duration: float | None = None,
        fast: bool = False,
        start: dt.datetime | None = None,
        concurrency: int = 4,
        on_round: Callable[[int, dt.datetime], None] | None = None,
    ) -> SimulationStats:
        """Upload rounds every ``interval`` simulated seconds.

        Real time by default (simulated time is the wall clock). ``fast``: no waiting; the rounds run
        back to back from ``start`` and stop before the simulated clock passes now.
        """
        began = time.monotonic()
        clock = start or dt.datetime.now(dt.timezone.utc)
        step = dt.timedelta(seconds=interval)
        done = 0
        with ThreadPoolExecutor(max(1, concurrency)) as pool:
            while reports is None or done < reports:
                if duration is not None and time.monotonic() - began >= duration:
                    break
                clock += step
                if fast:
                    if clock > dt.datetime.now(dt.timezone.utc):
                        break
                else:
                    wait = (clock - dt.datetime.now(dt.timezone.utc)).total_seconds()
                    if duration is not None:
                        wait = min(wait, duration - (time.monotonic() - began))
                    if wait > 0:
                        time.sleep(wait)
                    if duration is not None and time.monotonic() - began >= duration:
                        break
                self.round(clock, pool)
                done += 1
                if on_round is not None:
                    on_round(done, clock)
        return self.stats

    @property
    def generated(self) -> int:
        return sum(d.generated for d in self.devices)


def backfill(
    client: Client,
    devices: Iterable[tuple[str, str]],
    start: dt.datetime,
    end: dt.datetime,
    *,
    interval: float = 6 * 3600,
    seed: int | None = None,
    chances: Chances | None = None,
) -> Simulator:
    """Reports from ``start`` to ``end`` for devices already claimed: ``(device slug, sensor graph)`` pairs.

    The demo fills its water meters and pod this way: the data goes the way a real gateway's does.
    """
    rng = random.Random(seed)
    made = [
        KIND_OF_SENSOR_GRAPH[sg](IOTileDeviceSlug(slug).get_id(), random.Random(rng.random()), start)
        for slug, sg in devices
    ]
    simulator = Simulator(client, made, chances)
    simulator.resume_ids()
    rounds = int((end - start).total_seconds() // interval)
    simulator.run(interval, reports=rounds, fast=True, start=start)
    if simulator.stats.errors:
        raise ValueError(f"{simulator.stats.errors} uploads failed; the last: {simulator.stats.last_error}")
    return simulator


def simulate(
    client: Client,
    devices: int,
    interval: float,
    *,
    signed: bool = False,
    reports: int | None = None,
    duration: float | None = None,
    fast: bool = False,
    seed: int | None = None,
    concurrency: int = 4,
    chances: Chances | None = None,
    echo: Callable[[str], None] = print,
) -> Simulator:
    """What ``iotile-cloud simulate`` does: provision ``devices`` devices, then run upload rounds.

    In ``fast`` mode the simulated clock starts far enough back for the rounds to end about now
    (``reports`` rounds, or a week when only ``duration`` bounds the run).
    """
    now = dt.datetime.now(dt.timezone.utc)
    start = now
    if fast:
        start = now - (dt.timedelta(seconds=interval * reports) if reports else dt.timedelta(days=7))
    simulator = Simulator.provision(client, devices, started=start, signed=signed, seed=seed, chances=chances)
    kinds = sorted({d.kind for d in simulator.devices})
    keys = " with signing keys" if signed else ""
    echo(f"{len(simulator.devices)} devices ({', '.join(kinds)}) created and claimed{keys}")

    def progress(done: int, clock: dt.datetime) -> None:
        stats = simulator.stats
        echo(
            f"round {done} ({clock:%Y-%m-%d %H:%M:%S}Z): {stats.uploads} uploads, "
            f"{stats.readings_sent} readings, {stats.errors} errors"
        )

    simulator.run(
        interval, reports=reports, duration=duration, fast=fast, start=start, concurrency=concurrency, on_round=progress
    )
    stats = simulator.stats
    reboots = sum(d.reboots for d in simulator.devices)
    echo(
        f"Done: {stats.uploads} uploads ({stats.duplicates} duplicated), {stats.readings_sent} readings sent, "
        f"{simulator.generated} distinct, {reboots} reboots, {stats.errors} errors"
    )
    if stats.errors:
        raise ValueError(f"{stats.errors} uploads failed; the last: {stats.last_error}")
    return simulator
