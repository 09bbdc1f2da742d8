"""Load benchmark: requests/s and p50/p99 latency of a mixed workload at 1 and 2 server workers.

    python benchmarks/load.py [--database postgresql://...] [--seconds 15] [--clients 4] [--write-results]

For each backend (PostgreSQL when --database is given, which EMPTIES that database, and SQLite as the
baseline) and each worker count (1, 2), a fresh ``iotile-cloud serve --workers N`` runs on a loopback
port; simulated devices (``iotile_cloud.simulate``, the load generator) are provisioned and given two
days of history, then --clients processes each run this mix (--warmup seconds unrecorded, then
--seconds recorded): report uploads from their own devices (35%), JSON data pages (25%), Arrow reads
of a whole stream (15%), and lists of devices, streams and orgs (25%). The ratios printed (2 workers
over 1, PostgreSQL over SQLite) come from this run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
EMAIL, PASSWORD = "load@example.com", "load-pass-1"
MIX = (("upload", 0.35), ("data page", 0.25), ("arrow read", 0.15), ("list", 0.25))
HISTORY = dt.timedelta(days=2)
REPORT_INTERVAL = 3600.0  # simulated seconds covered by each uploaded report


@dataclass(frozen=True)
class ClientPlan:
    url: str
    token: str
    devices: list[tuple[int, str]]  # (device id, sensor graph) this client uploads for
    streams: list[str]  # stream slugs to read
    start: dt.datetime  # the simulated clock after the history
    seconds: float
    warmup: float
    seed: int


def _run_client(plan: ClientPlan) -> list[tuple[str, float, float, bool]]:
    """One load-generating process: (operation, wall-clock start, seconds, ok) for every request it made."""
    from iotile_cloud.client import Client
    from iotile_cloud.simulate import KIND_OF_SENSOR_GRAPH, Chances, SimDevice

    rng = random.Random(plan.seed)
    client = Client(plan.url, token=plan.token, max_connections=1)
    devices: list[SimDevice] = []
    for device_id, sg in plan.devices:
        device = KIND_OF_SENSOR_GRAPH[sg](device_id, random.Random(rng.random()), plan.start)
        device.next_id = client.streamer_acks(device.slug).get(0, 0) + 1
        devices.append(device)
    clock = plan.start
    pending: list[Any] = []
    names = [name for name, _ in MIX]
    weights = [weight for _, weight in MIX]
    results: list[tuple[str, float, float, bool]] = []
    # Not recorded: each worker's first requests (imports, connection pools, caches) and the
    # staggered start of the client processes.
    recording = time.perf_counter() + plan.warmup
    deadline = recording + plan.seconds
    while time.perf_counter() < deadline:
        operation = rng.choices(names, weights)[0]
        wall = time.time()
        started = time.perf_counter()
        ok = True
        try:
            if operation == "upload":
                while not pending:
                    clock += dt.timedelta(seconds=REPORT_INTERVAL)
                    pending = [u for d in devices for u in d.advance(clock, Chances())]
                upload = pending.pop(0)
                client.upload_report(upload.data, received=upload.received, filename="report.bin")
            elif operation == "data page":
                client.get("data/", filter=rng.choice(plan.streams), page_size=100)
            elif operation == "arrow read":
                with client.stream("GET", "df/", params={"filter": rng.choice(plan.streams), "format": "arrow"}) as r:
                    for _ in r.iter_bytes():
                        pass
                    ok = r.status_code == 200
            else:
                client.get(rng.choice(("device/", "stream/", "org/")), page_size=50)
        except Exception:
            ok = False
        if started >= recording:
            results.append((operation, wall, time.perf_counter() - started, ok))
    client.close()
    return results


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


@dataclass
class Measured:
    backend: str
    workers: int
    requests: int
    failed: int
    seconds: float
    latencies: dict[str, list[float]]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def quantiles(self, operation: str | None = None) -> tuple[float, float]:
        values = self.latencies[operation] if operation else [v for vs in self.latencies.values() for v in vs]
        return _percentile(values, 0.5) * 1000, _percentile(values, 0.99) * 1000


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "iotile_cloud.cli", *args]


def _empty(database: str) -> None:
    import sqlalchemy as sa

    from iotile_cloud.server import db

    engine = db.make_engine(database)
    try:
        db.migrate(engine)
        with engine.begin() as conn:
            for table in reversed(db.metadata.sorted_tables):
                conn.execute(sa.delete(table))
    finally:
        engine.dispose()


def measure(backend: str, database: str | None, workers: int, args: argparse.Namespace) -> Measured:
    from iotile_cloud.client import Client
    from iotile_cloud.server.run import ServerProcess
    from iotile_cloud.simulate import Chances, Simulator

    with tempfile.TemporaryDirectory(prefix="iotile-load-") as folder:
        where = ["--data-dir", folder] + (["--database", database] if database else [])
        if database:
            _empty(database)
        subprocess.run(
            _cli("admin", "create-user", EMAIL, "--password", PASSWORD, "--staff", *where),
            check=True,
            capture_output=True,
        )
        server = ServerProcess(Path(folder), *where[2:], "--workers", str(workers)).start(120)
        try:
            client = Client(server.url, timeout=120)
            client.login(EMAIL, PASSWORD)
            start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - HISTORY
            simulator = Simulator.provision(
                client, args.devices, started=start, seed=1, chances=Chances(), org_name="Load"
            )
            rounds = int(HISTORY.total_seconds() // REPORT_INTERVAL) - 1
            simulator.run(REPORT_INTERVAL, reports=rounds, fast=True, start=start, concurrency=4)
            streams = [s["slug"] for s in client.paginate("stream/") if s["slug"].endswith(("--5001", "--5002"))]
            after = start + dt.timedelta(seconds=REPORT_INTERVAL * rounds)
            device_list = [(d.device_id, d.sensor_graph) for d in simulator.devices]
            plans = [
                ClientPlan(
                    server.url,
                    str(client.token),
                    device_list[index :: args.clients],
                    streams,
                    after,
                    args.seconds,
                    args.warmup,
                    seed=index,
                )
                for index in range(args.clients)
            ]
            with multiprocessing.get_context("spawn").Pool(args.clients) as pool:
                outcomes = pool.map(_run_client, plans)
            client.close()
        finally:
            server.stop()
    # Count only the window in which every client was running (they start at slightly different times).
    window_start = max(outcome[0][1] for outcome in outcomes if outcome)
    window_end = min(outcome[-1][1] + outcome[-1][2] for outcome in outcomes if outcome)
    latencies: dict[str, list[float]] = {name: [] for name, _ in MIX}
    failed = 0
    for outcome in outcomes:
        for operation, wall, seconds, ok in outcome:
            if wall >= window_start and wall + seconds <= window_end:
                latencies[operation].append(seconds)
                failed += not ok
    total = sum(len(v) for v in latencies.values())
    return Measured(backend, workers, total, failed, window_end - window_start, latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default=None, help="PostgreSQL URL (EMPTIED); SQLite always runs too")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured time per configuration")
    parser.add_argument("--warmup", type=float, default=5.0, help="unrecorded seconds before each measurement")
    parser.add_argument("--clients", type=int, default=4, help="load-generating processes")
    parser.add_argument("--devices", type=int, default=8, help="simulated devices (uploads and data)")
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    args.clients = max(1, min(args.clients, 16))
    args.seconds = max(1.0, min(args.seconds, 120.0))

    backends: list[tuple[str, str | None]] = [("SQLite", None)]
    if args.database:
        backends.insert(0, ("PostgreSQL", args.database))
    runs: list[Measured] = []
    for backend, database in backends:
        for workers in (1, 2):
            result = measure(backend, database, workers, args)
            runs.append(result)
            p50, p99 = result.quantiles()
            print(
                f"{backend}, {workers} worker(s): {result.rate:,.0f} requests/s, p50 {p50:.1f} ms, "
                f"p99 {p99:.1f} ms ({result.requests} requests, {result.failed} failed)",
                flush=True,
            )
    lines = report_lines(runs)
    print("\n".join(lines))
    if args.write_results:
        write_results(args, lines)


def report_lines(runs: list[Measured]) -> list[str]:
    lines = [
        "| backend | workers | requests/s | p50 (ms) | p99 (ms) | upload p50/p99 | data page p50/p99 "
        "| Arrow p50/p99 | list p50/p99 | requests (failed) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in runs:
        p50, p99 = run.quantiles()
        cells = [f"{a:.0f}/{b:.0f}" for a, b in (run.quantiles(name) for name, _ in MIX)]
        lines.append(
            f"| {run.backend} | {run.workers} | {run.rate:,.0f} | {p50:.1f} | {p99:.1f} | "
            + " | ".join(cells)
            + f" | {run.requests} ({run.failed}) |"
        )
    lines.append("")
    by = {(r.backend, r.workers): r for r in runs}
    for backend in dict.fromkeys(r.backend for r in runs):
        one, two = by.get((backend, 1)), by.get((backend, 2))
        if one and two:
            (p50_one, p99_one), (p50_two, p99_two) = one.quantiles(), two.quantiles()
            lines.append(
                f"- {backend}: 2 workers / 1 worker: requests/s x{two.rate / one.rate:.2f}, "
                f"p50 x{p50_two / p50_one:.2f}, p99 x{p99_two / p99_one:.2f}"
            )
    if ("PostgreSQL", 1) in by and ("SQLite", 1) in by:
        for workers in (1, 2):
            pg, lite = by[("PostgreSQL", workers)], by[("SQLite", workers)]
            lines.append(f"- {workers} worker(s): PostgreSQL / SQLite requests/s x{pg.rate / lite.rate:.2f}")
    return lines


def write_results(args: argparse.Namespace, lines: list[str]) -> None:
    path = HERE / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    marker = "## load.py"
    if marker in text:
        head, _, rest = text.partition(marker)
        tail = rest.split("\n## ", 1)
        text = head + ("## " + tail[1] if len(tail) > 1 else "")
    command = "python benchmarks/load.py" + (" --database postgresql://..." if args.database else "")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    body = [
        marker,
        "",
        f"`{command} --seconds {args.seconds:g} --warmup {args.warmup:g} --clients {args.clients} "
        f"--devices {args.devices} --write-results`, "
        f"{dt.date.today()}, {platform.machine()}, {os.cpu_count()} cores (load average {load:.1f} at the end: "
        f"the machine was shared), Python {platform.python_version()}. Load generator and server on the same cores.",
        "",
        *lines,
        "",
    ]
    path.write_text(text.rstrip() + "\n\n" + "\n".join(body))


if __name__ == "__main__":
    main()
