"""Ingest benchmark: readings per second for 10,000-reading reports, three ways, in one run:

- upload: sequential HTTP uploads to a local server process (client and server on this machine);
- pipeline: the server's own work for each report, in this process without HTTP: decode, look up
  device and streamer, de-duplicate, convert, store the segments, record the report, commit;
- raw: the same segments (the readings' four and the report's one-point marker) written straight
  through the point store, one transaction a report.

Pipeline and raw run in three alternating rounds of --reports - 1 reports each (after one untimed
report of each); the best round of each is reported, with the ratio of every round.

    python benchmarks/ingest.py [--reports 30] [--database postgresql://...] [--write-results]

Also times decoding one 10,000-reading SignedListReport into Reading objects (the client's view).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
READINGS = 10_000
ROUNDS = 3  # pipeline and raw alternate this many times; the best round of each is kept
EMAIL, PASSWORD = "ingest@example.com", "ingest-pass-1"


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "iotile_cloud.cli", *args]


def decode_ms() -> float:
    from iotile_cloud.reports import Reading, SignedListReport

    data = SignedListReport(
        device=1,
        report_id=READINGS + 1,
        sent_timestamp=READINGS,
        readings=[Reading(0x5001, i, i, i) for i in range(1, READINGS + 1)],
    ).encode()
    runs = 50
    started = time.perf_counter()
    for _ in range(runs):
        report = SignedListReport.decode(data)
        assert len(list(report.readings)) == READINGS  # verified, and every reading materialised
    return (time.perf_counter() - started) / runs * 1000


def report_bytes(n: int) -> bytes:
    """The n-th report of the benchmark device: 10,000 readings on 4 streams, ids after the last."""
    from iotile_cloud.reports import Reading, SignedListReport

    first = n * READINGS + 1
    readings = [Reading(0x5001 + (i % 4), first + i, first + i, i % 5000) for i in range(READINGS)]
    return SignedListReport(
        device=1, report_id=first + READINGS, sent_timestamp=first + READINGS, readings=readings
    ).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=30, help="number of 10,000-reading reports to upload")
    parser.add_argument("--database", default=None, help="PostgreSQL URL (default: SQLite in a temporary dir)")
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()

    import numpy as np
    import sqlalchemy as sa

    from iotile_cloud.api.connection import Api
    from iotile_cloud.client import Client
    from iotile_cloud.reports import decode_report
    from iotile_cloud.server import db, points
    from iotile_cloud.server.ingest import DEVICE_BY_ID, PROJECT_BY_ID, ingest_report
    from iotile_cloud.server.run import ServerProcess

    received = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
    with tempfile.TemporaryDirectory(prefix="iotile-ingest-") as folder:
        where = ["--data-dir", folder] + (["--database", args.database] if args.database else [])
        if args.database:
            engine = db.make_engine(args.database)
            db.migrate(engine)  # a new database gets the schema; an old one is emptied below
            with engine.begin() as conn:
                for table in reversed(db.metadata.sorted_tables):
                    conn.execute(sa.delete(table))
            engine.dispose()
        subprocess.run(
            cli("admin", "create-user", EMAIL, "--password", PASSWORD, "--staff", *where),
            check=True,
            capture_output=True,
        )
        # A generous start timeout: on a busy machine the server's imports alone can take 30 s.
        with contextlib.ExitStack() as stack:
            server = ServerProcess(Path(folder), *where[2:]).start(timeout=300)
            stack.callback(server.stop)
            api = Api(server.url)
            assert api.login(email=EMAIL, password=PASSWORD)
            org = api.org.post({"name": "Ingest"})["slug"]
            project = api.project.post({"name": "Ingest", "org": org})
            api.device.post(
                {"label": "bench", "template": "internaltestingtemplate-v1-0-0", "slug": "d--0001"}, staff=1
            )
            api.device.claim.post({"device": "d--0001", "project": project["id"]})
            reports = [report_bytes(n) for n in range(args.reports)]
            # The native client (httpx): the facade's requests.Session scans the environment for
            # proxy settings on every request (~3 ms here), a cost of requests, not of the server.
            client = Client(server.url)
            client.login(EMAIL, PASSWORD)
            client.upload_report(reports[0], received=received, filename="warm.bin")  # streams get made here
            started = time.perf_counter()
            for data in reports[1:]:
                answer = client.upload_report(data, received=received, filename="r.bin")
                assert answer["count"] == answer["stored"] == READINGS, answer
            upload_seconds = time.perf_counter() - started
            uploaded = READINGS * (len(reports) - 1)
            client.close()

        # The pipeline (the same work as the upload route after the HTTP layer, in this process) and
        # the raw baseline (the same segments: 4 streams x 2,500 readings and the marker, written straight
        # through the point store, one transaction a report), in alternating rounds so that both see
        # the same machine; one untimed report of each first (statement caches, page cache).
        engine = db.make_engine(args.database or db.sqlite_url(Path(folder) / "iotile-cloud.sqlite3"))
        per_round = len(reports) - 1
        later = iter(report_bytes(n) for n in range(len(reports), len(reports) + (per_round + 1) * ROUNDS))
        with engine.connect() as conn:
            pks = conn.execute(
                sa.select(db.streams.c.pk).where(db.streams.c.slug.like("%--500_")).order_by(db.streams.c.slug)
            ).scalars()
            stream_pks = np.array(list(pks), dtype=np.int64)[np.arange(READINGS) % 4]
            marker_pk = conn.execute(sa.select(db.streams.c.pk).where(db.streams.c.slug.like("%--5a05"))).scalar_one()
        raw_offset = iter(range(10 * len(reports), 10**6))

        def pipeline(count: int) -> float:
            work = [next(later) for _ in range(count)]
            started = time.perf_counter()
            for data in work:
                report = decode_report(data, "r.bin")
                with engine.begin() as conn:
                    device = conn.execute(DEVICE_BY_ID, {"device_id": report.device}).one()
                    project = conn.execute(PROJECT_BY_ID, {"project_id": device.project_id}).one()
                    result = ingest_report(conn, device, project, report, received, None, Path(folder), len(data))
                    assert result.stored == READINGS
            return time.perf_counter() - started

        def raw(count: int) -> float:
            """The segments a report makes: its readings on 4 streams and the one-point marker
            (stream 5a05) the server adds for each report, made before the clock starts."""
            batches = []
            for _ in range(count):
                index = np.arange(READINGS + 1, dtype=np.int64) + next(raw_offset) * (READINGS + 1)
                batches.append(
                    points.Points(
                        ts=1_800_000_000_000_000 + index * 1_000_000,
                        id=np.zeros(READINGS + 1, dtype=np.int64),
                        streamer_local_id=index,
                        device_timestamp=index,
                        int_value=index % 5000,
                        value=(index % 5000).astype(np.float64),
                        flags=np.full(READINGS + 1, points.STATUS_CODE["cln"] << points.STATUS_SHIFT, dtype=np.uint8),
                        stream_pk=np.append(stream_pks, marker_pk),
                    )
                )
            started = time.perf_counter()
            for batch in batches:
                with engine.begin() as conn:
                    points.append_batch(conn, batch)
            return time.perf_counter() - started

        pipeline(1), raw(1)
        rounds = [(pipeline(per_round), raw(per_round)) for _ in range(ROUNDS)]
        engine.dispose()
    pipeline_seconds = min(p for p, _ in rounds)
    raw_seconds = min(r for _, r in rounds)
    round_ratios = sorted(r / p for p, r in rounds)

    backend = "PostgreSQL" if args.database else "SQLite"
    upload_rate = uploaded / upload_seconds
    pipeline_rate = uploaded / pipeline_seconds
    raw_rate = uploaded / raw_seconds
    decode = decode_ms()
    lines = [
        f"{backend}: report ingest, the server's pipeline without HTTP: {pipeline_rate:,.0f} readings/s "
        f"({pipeline_seconds / (len(reports) - 1) * 1000:.1f} ms a 10,000-reading report; target >= 1,000,000/s "
        f"on SQLite); pipeline/raw = {pipeline_rate / raw_rate:.2f} (target >= 0.5; by round "
        f"{', '.join(f'{ratio:.2f}' for ratio in round_ratios)})",
        f"{backend}: HTTP uploads, one client after the other: {upload_rate:,.0f} readings/s "
        f"({upload_seconds / (len(reports) - 1) * 1000:.1f} ms a report); upload/raw = {upload_rate / raw_rate:.2f}",
        f"{backend}: raw write of the same segments through the point store: {raw_rate:,.0f} readings/s",
        f"decoding one 10,000-reading SignedListReport into Reading objects: {decode:.2f} ms",
    ]
    print("\n".join(lines))
    if args.write_results:
        path = HERE / "RESULTS.md"
        text = path.read_text() if path.exists() else "# Benchmark results\n"
        marker = f"## ingest.py ({backend})"
        if marker in text:
            head, _, rest = text.partition(marker)
            tail = rest.split("\n## ", 1)
            text = head + ("## " + tail[1] if len(tail) > 1 else "")
        command = "python benchmarks/ingest.py" + (" --database postgresql://..." if args.database else "")
        body = [
            marker,
            "",
            f"`{command} --reports {args.reports} --write-results`, {dt.date.today()}, "
            f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}.",
            "",
        ]
        body += [f"- {line}" for line in lines] + [""]
        path.write_text(text.rstrip() + "\n\n" + "\n".join(body))


if __name__ == "__main__":
    main()
