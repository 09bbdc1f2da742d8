"""Server-side Arrow benchmark: N points of one stream through ``/api/v1/df/?format=arrow``, in-process.

    python benchmarks/serve_arrow.py [--points 1000000] [--database postgresql://...] [--write-results]

The whole route runs in this process (no socket, no client decoding): auth, the selection planned
from segment metadata, the segments decoded, Arrow record batches written. The baseline, measured in
this run: reading the same points from the per-row layout the store replaced into numpy columns (what
the server did before, the read alone, without Arrow). Best of three runs of each.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.seed import app_client, drop_row_table, read_rows, row_table, seed_stream  # noqa: E402
from benchmarks.window import write_results  # noqa: E402
from iotile_cloud.server import db  # noqa: E402

EMAIL, PASSWORD = "arrow@example.com", "arrow-pass-1"
STEP_US = 60_000_000


def best_of(run: Callable[[], int], expected: int, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        assert run() == expected
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--database", default=None, help="PostgreSQL URL (emptied; default: SQLite in a temp dir)")
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    backend = "PostgreSQL" if args.database else "SQLite"
    with tempfile.TemporaryDirectory(prefix="iotile-arrow-") as folder:
        url = args.database or db.sqlite_url(Path(folder) / "iotile-cloud.sqlite3")
        engine = db.make_engine(url)
        slug = seed_stream(engine, EMAIL, PASSWORD, args.points, step_us=STEP_US)
        row_table(engine, args.points, STEP_US)
        client, headers = app_client(url, folder, EMAIL, PASSWORD)

        def through_route() -> int:
            response = client.get("/api/v1/df/", params={"filter": slug, "format": "arrow"}, headers=headers)
            assert response.status_code == 200, response.text
            import pyarrow as pa

            return pa.ipc.open_stream(response.content).read_all().num_rows

        route = best_of(through_route, args.points)
        baseline = best_of(lambda: read_rows(engine), args.points)
        client.__exit__(None, None, None)
        drop_row_table(engine)
        engine.dispose()
    lines = [
        f"{backend}: the server streams {args.points:,} points of one stream through /df/ Arrow in-process in "
        f"{route:.3f} s (target < 0.3 s)",
        f"{backend}: baseline, the same points read from the per-row table into numpy: {baseline:.3f} s; "
        f"route/baseline {route / baseline:.2f}",
    ]
    print("\n".join(lines))
    if args.write_results:
        command = "python benchmarks/serve_arrow.py" + (" --database postgresql://..." if args.database else "")
        write_results(f"serve_arrow.py ({backend})", command, [*lines])


if __name__ == "__main__":
    main()
