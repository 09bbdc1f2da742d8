"""Download benchmark: N points of one stream from a local server, four ways, each a whole process.

    python benchmarks/download.py [--points 1000000] [--repeat 1] [--write-results]

(a) the original iotile-cloud 0.9.14 (own virtualenv) running StreamData(...).initialize_from_server()
(b) our compatible StreamData (same list of dicts)
(c) our DataFrame path (fetch_dataframe, Arrow IPC)
(d) the raw baseline: the same Arrow bytes downloaded, not decoded (the limit for (c))

Wall time and peak memory (max RSS) of each process are measured in this run, and the ratios
printed; --write-results records them in benchmarks/RESULTS.md.
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
sys.path.insert(0, str(HERE.parent))

from tests.original_client import original_python  # noqa: E402

from benchmarks.seed import seed_stream  # noqa: E402
from iotile_cloud.server.run import ServerProcess  # noqa: E402

EMAIL, PASSWORD = "bench@example.com", "bench-pass-1"

# Each process writes its own peak RSS (VmHWM of its own address space) when it exits: the rusage
# the parent gets back would also count the memory of the fork before exec.
PEAK = """
import atexit, os
def _write_peak():
    with open("/proc/self/status") as status:
        peak = [line.split()[1] for line in status if line.startswith("VmHWM:")][0]
    with open(os.environ["BENCH_PEAK_FILE"], "w") as out:
        out.write(peak)
atexit.register(_write_peak)
"""
ORIGINAL = (
    PEAK
    + """
import os, sys
from iotile_cloud.api.connection import Api
from iotile_cloud.stream.data import StreamData
url, stream, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
api = Api(url)
api.set_token(os.environ["BENCH_TOKEN"])
data = StreamData(stream, api)
data.initialize_from_server()
assert len(data.data) == n, len(data.data)
"""
)
OURS_STREAMDATA = ORIGINAL
OURS_DATAFRAME = (
    PEAK
    + """
import os, sys
from iotile_cloud.api.connection import Api
from iotile_cloud.stream.frames import fetch_dataframe
url, stream, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
api = Api(url)
api.set_token(os.environ["BENCH_TOKEN"])
frame = fetch_dataframe(api, stream)
assert len(frame) == n, len(frame)
"""
)
RAW_BYTES = (
    PEAK
    + """
import os, sys
import httpx
url, stream, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
headers = {"Authorization": "jwt " + os.environ["BENCH_TOKEN"], "Accept": "application/vnd.apache.arrow.stream"}
with httpx.Client(timeout=600) as client:
    body = client.get(url + "/api/v1/df/", params={"filter": stream, "format": "arrow"}, headers=headers).content
assert len(body) > n * 8
"""
)


def seed(data_dir: Path, points: int) -> str:
    """A fresh SQLite database with one user, one device and ``points`` readings on one stream."""
    from iotile_cloud.server import db

    engine = db.make_engine(db.sqlite_url(data_dir / "iotile-cloud.sqlite3"))
    slug = seed_stream(engine, EMAIL, PASSWORD, points, step_us=60_000_000)
    engine.dispose()
    return slug


def measure(python: str, script: str, args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one whole process."""
    with tempfile.NamedTemporaryFile(prefix="peak-") as peak_file:
        started = time.perf_counter()
        result = subprocess.run(
            [python, "-c", script, *args], env={**env, "BENCH_PEAK_FILE": peak_file.name}, cwd="/", check=False
        )
        wall = time.perf_counter() - started
        if result.returncode != 0:
            raise RuntimeError(f"{python} failed with exit code {result.returncode}")
        return wall, int(Path(peak_file.name).read_text()) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each path (best wall time kept)")
    parser.add_argument("--skip-original", action="store_true", help="leave out (a)")
    parser.add_argument("--write-results", action="store_true", help="record the figures in RESULTS.md")
    args = parser.parse_args()

    from iotile_cloud.api.connection import Api

    with tempfile.TemporaryDirectory(prefix="iotile-bench-") as folder:
        data_dir = Path(folder)
        seeded = time.perf_counter()
        stream = seed(data_dir, args.points)
        print(f"seeded {args.points} points in {time.perf_counter() - seeded:.1f} s")
        with contextlib.ExitStack() as stack:
            server = ServerProcess(data_dir).start(timeout=300)  # a busy machine can take 30 s to start it
            stack.callback(server.stop)
            url = server.url
            api = Api(url)
            assert api.login(email=EMAIL, password=PASSWORD)
            env = {**os.environ, "BENCH_TOKEN": str(api.token)}
            paths = [
                ("b", "ours: StreamData (list of dicts)", sys.executable, OURS_STREAMDATA),
                ("c", "ours: fetch_dataframe (Arrow)", sys.executable, OURS_DATAFRAME),
                ("d", "raw Arrow bytes, no decoding", sys.executable, RAW_BYTES),
            ]
            if not args.skip_original:
                paths.insert(0, ("a", "original 0.9.14: StreamData", str(original_python()), ORIGINAL))
            results: dict[str, tuple[float, float]] = {}
            for key, label, python, script in paths:
                runs = [measure(python, script, [url, stream, str(args.points)], env) for _ in range(args.repeat)]
                results[key] = (min(r[0] for r in runs), max(r[1] for r in runs))
                print(f"({key}) {label:<36} {results[key][0]:8.2f} s  {results[key][1]:8.0f} MB", flush=True)

    lines = []
    if "a" in results:
        a, b, c = results["a"], results["b"], results["c"]
        lines += [
            f"(a)/(c) speed-up of the DataFrame path over the original: {a[0] / c[0]:.1f}x (target >= 50x)",
            f"(c)/(a) peak memory of the DataFrame path vs the original: {c[1] / a[1]:.2f} (target <= 0.20)",
            f"(a)/(b) speed-up of our StreamData over the original: {a[0] / b[0]:.1f}x (target >= 3x)",
        ]
    c, d = results["c"], results["d"]
    lines += [
        f"(c)/(d) DataFrame path vs raw bytes: {c[0] / d[0]:.2f}x (target <= 1.5x)",
        f"(d) the server streams {args.points} points through the columnar path in {d[0]:.2f} s "
        f"(process wall time, connection included; target < 3 s)",
    ]
    print("\n".join(lines))
    if args.write_results:
        write_results(args, results, lines)


def write_results(args: argparse.Namespace, results: dict[str, tuple[float, float]], lines: list[str]) -> None:
    path = HERE / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    marker = "## download.py"
    if marker in text:
        head, _, rest = text.partition(marker)
        tail = rest.split("\n## ", 1)
        text = head + ("## " + tail[1] if len(tail) > 1 else "")
    labels = {
        "a": "original 0.9.14 StreamData",
        "b": "our StreamData",
        "c": "our fetch_dataframe (Arrow)",
        "d": "raw Arrow bytes (no decoding)",
    }
    body = [
        marker,
        "",
        f"`python benchmarks/download.py --points {args.points} --repeat {args.repeat} --write-results`, "
        f"{dt.date.today()}, {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, SQLite.",
        "",
        "| path | wall time (s) | peak memory (MB) |",
        "| --- | ---: | ---: |",
    ]
    body += [f"| ({k}) {labels[k]} | {w:.2f} | {m:.0f} |" for k, (w, m) in sorted(results.items())]
    body += [""] + [f"- {line}" for line in lines] + [""]
    path.write_text(text.rstrip() + "\n\n" + "\n".join(body))


if __name__ == "__main__":
    main()
