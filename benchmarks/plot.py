"""Plot benchmark: the console's server-side reduction (``/api/v1/stream/<slug>/plot/``) for
streams of growing size, against a real ``iotile-cloud serve`` process.

    python benchmarks/plot.py [--points 1000 100000 1000000 10000000] [--database URL]

For each size, one stream is filled (bulk insert, not timed) and three requests are timed (best of
3, wall time at the client, connection included): the whole stream at width 1000, a 1% window at
width 1000, and the latest 20 points (``/stream/<slug>/data/?lastn=20``, the table under the plot).
The answer size is printed too: it depends on the width, not on the number of points.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import sqlalchemy as sa

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from iotile_cloud.server import db  # noqa: E402
from iotile_cloud.server import points as store  # noqa: E402
from iotile_cloud.server.run import LiveServer, ServerProcess  # noqa: E402
from iotile_cloud.testing.cloud import CloudHelper  # noqa: E402

EMAIL, PASSWORD = "bench@example.com", "bench-pass-1"
START_US = 1_700_000_000_000_000
CHUNK = 500_000


def seed(folder: Path, database: str | None, points: int) -> tuple[str, str]:
    """A user, a device and ``points`` points on its stream 5001, one per second; (stream, token)."""
    with LiveServer(folder, database) as server:
        cloud = CloudHelper(server)
        cloud.reset()
        cloud.quick_add_user(EMAIL, PASSWORD)
        project_id, project_slug = cloud.quick_add_project("Bench")
        device = cloud.quick_add_device(project_id)
        stream = f"s--{project_slug[3:]}--{device[3:]}--5001"
        rng = np.random.default_rng(1)
        with cloud.engine.begin() as conn:
            pk = conn.execute(sa.select(db.streams.c.pk).where(db.streams.c.slug == stream)).scalar_one()
            token = conn.execute(sa.select(db.users.c.api_token).where(db.users.c.email == EMAIL)).scalar_one()
        for first in range(0, points, CHUNK):
            n = min(CHUNK, points - first)
            ids = np.arange(first, first + n)
            values = np.round(np.cumsum(rng.normal(0, 1, n)) + 100, 3)
            flags = store.flags_of(False, True, True, False, store.STATUS_CODE["cln"], True)
            batch = store.Points(
                ts=START_US + ids * 1_000_000,
                id=np.zeros(n, dtype=np.int64),
                streamer_local_id=ids + 1,
                device_timestamp=np.zeros(n, dtype=np.int64),
                int_value=np.zeros(n, dtype=np.int64),
                value=values,
                flags=np.full(n, flags, dtype=np.uint8),
                stream_pk=np.full(n, pk, dtype=np.int64),
            )
            with cloud.engine.begin() as conn:
                store.append_batch(conn, batch)
    return stream, token


def best_of(client: httpx.Client, path: str, params: dict[str, str], repeat: int = 3) -> tuple[float, int, int]:
    """(best seconds, answer bytes, points covered) of a GET."""
    best, size, count = float("inf"), 0, 0
    for _ in range(repeat):
        started = time.perf_counter()
        answer = client.get(path, params=params)
        elapsed = time.perf_counter() - started
        answer.raise_for_status()
        body = answer.json()
        best, size = min(best, elapsed), len(answer.content)
        count = body.get("count", 0)
    return best, size, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, nargs="+", default=[1000, 100_000, 1_000_000])
    parser.add_argument("--database", default=None, help="a PostgreSQL URL (default: SQLite in a temp folder)")
    args = parser.parse_args()
    print("| points | whole stream, width 1000 (ms) | 1% window (ms) | latest 20 (ms) | answer (KB) |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for points in args.points:
        with tempfile.TemporaryDirectory() as folder:
            stream, token = seed(Path(folder), args.database, points)
            extra = ("--database", args.database) if args.database else ()
            server = ServerProcess(Path(folder), *extra).start(timeout=120)
            try:
                client = httpx.Client(base_url=server.url, headers={"Authorization": f"Token {token}"}, timeout=600)
                plot = f"/api/v1/stream/{stream}/plot/"
                whole, size, count = best_of(client, plot, {"width": "1000"})
                assert count == points, (count, points)
                span = points // 100 or 1
                window = {
                    "width": "1000",
                    "start": db.iso(START_US + (points // 2) * 1_000_000) or "",
                    "end": db.iso(START_US + (points // 2 + span) * 1_000_000) or "",
                }
                part, _, _ = best_of(client, plot, window)
                latest, _, _ = best_of(client, f"/api/v1/stream/{stream}/data/", {"lastn": "20"})
            finally:
                server.stop()
        print(f"| {points:,} | {whole * 1000:.0f} | {part * 1000:.0f} | {latest * 1000:.0f} | {size / 1024:.0f} |")


if __name__ == "__main__":
    main()
