"""Window benchmark: a one-day window of one stream at 1M and 10M stored points, in-process.

    python benchmarks/window.py [--sizes 1000000 10000000] [--database postgresql://...] [--write-results]

One reading every 10 s (8,640 a day). For each size the stream is built through the point store's
bulk append (10,000-point segments, as reports make them), then random one-day windows are asked:
(a) from the store (segments selected by metadata, decoded into numpy columns), (b) through the
whole ``/api/v1/df/?format=arrow`` route in this process (auth, filter, count, Arrow IPC), and (c)
the baseline, measured in this run: the same window from the per-row layout the store replaced
(a ``data`` table with its (stream, time) index, read into numpy columns as the old server did).
The median of the windows is printed, with the ratios.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.seed import START_US, app_client, drop_row_table, read_rows, row_table, seed_stream  # noqa: E402
from iotile_cloud.server import db, points  # noqa: E402

EMAIL, PASSWORD = "window@example.com", "window-pass-1"
STEP_US = 10_000_000
DAY_US = 86_400_000_000
WINDOWS = 25


def median_ms(run: Callable[[int, int], int], days: list[int]) -> float:
    times = []
    for day in days:
        start = START_US + day * DAY_US
        started = time.perf_counter()
        assert run(start, start + DAY_US) == DAY_US // STEP_US
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def iso(micros: int) -> str:
    return db.iso(micros) or ""


def measure(engine: Any, url: str, folder: str, size: int) -> tuple[float, float]:
    """(store ms, route ms): median one-day windows over ``size`` stored points."""
    started = time.perf_counter()
    slug = seed_stream(engine, EMAIL, PASSWORD, size, step_us=STEP_US)
    print(f"{size:,} points stored through the point store in {time.perf_counter() - started:.1f} s")
    with engine.connect() as conn:
        pk = conn.execute(db.streams.select().where(db.streams.c.slug == slug)).one().pk

    def from_store(start: int, end: int) -> int:
        with engine.connect() as conn:
            return len(points.select(conn, points.Query([pk], start, end)).all())

    client, headers = app_client(url, folder, EMAIL, PASSWORD)

    def through_route(start: int, end: int) -> int:
        params = {"filter": slug, "format": "arrow", "start": iso(start), "end": iso(end)}
        response = client.get("/api/v1/df/", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return int(response.headers["x-total-count"])

    days = [(i * 7919) % (size * STEP_US // DAY_US - 1) for i in range(WINDOWS)]
    through_route(START_US, START_US + DAY_US)  # warm-up: the first request imports the Arrow path
    try:
        return median_ms(from_store, days), median_ms(through_route, days)
    finally:
        client.__exit__(None, None, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--database", default=None, help="PostgreSQL URL (emptied; default: SQLite in a temp dir)")
    parser.add_argument("--baseline-points", type=int, default=1_000_000, help="size of the per-row baseline table")
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    backend = "PostgreSQL" if args.database else "SQLite"
    lines = []
    results: dict[int, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="iotile-window-") as folder:
        url = args.database or db.sqlite_url(Path(folder) / "iotile-cloud.sqlite3")
        engine = db.make_engine(url)
        started = time.perf_counter()
        row_table(engine, args.baseline_points, STEP_US)
        print(f"per-row baseline table: {args.baseline_points:,} rows in {time.perf_counter() - started:.1f} s")
        baseline_days = [(i * 7919) % (args.baseline_points * STEP_US // DAY_US - 1) for i in range(WINDOWS)]
        baseline = median_ms(lambda s, e: read_rows(engine, s, e), baseline_days)
        for size in args.sizes:
            store_ms, route_ms = measure(engine, url, folder, size)
            results[size] = (store_ms, route_ms)
            lines.append(
                f"{backend}, {size:,} points: one-day window (8,640 points) from the store {store_ms:.1f} ms, "
                f"through /df/ Arrow in-process {route_ms:.1f} ms (target < 50 ms); "
                f"per-row baseline ({args.baseline_points:,} rows) {baseline:.1f} ms: store/baseline "
                f"{store_ms / baseline:.2f}"
            )
        drop_row_table(engine)
        engine.dispose()
    sizes = sorted(results)
    if len(sizes) > 1:
        small, large = results[sizes[0]], results[sizes[-1]]
        lines.append(
            f"{backend}: growth from {sizes[0]:,} to {sizes[-1]:,} points: store x{large[0] / small[0]:.2f}, "
            f"route x{large[1] / small[1]:.2f}"
        )
    print("\n".join(lines))
    if args.write_results:
        command = "python benchmarks/window.py" + (" --database postgresql://..." if args.database else "")
        write_results(f"window.py ({backend})", command, lines)


def write_results(title: str, command: str, lines: list[str]) -> None:
    """Replace this benchmark's section of RESULTS.md."""
    path = HERE / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    marker = f"## {title}"
    if marker in text:
        head, _, rest = text.partition(marker)
        tail = rest.split("\n## ", 1)
        text = head + ("## " + tail[1] if len(tail) > 1 else "")
    body = [
        marker,
        "",
        f"`{command}`, {dt.date.today()}, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}.",
        "",
        *(f"- {line}" for line in lines),
        "",
    ]
    path.write_text(text.rstrip() + "\n\n" + "\n".join(body))


if __name__ == "__main__":
    main()
