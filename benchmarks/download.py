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
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.original_client import original_python  # noqa: E402

from benchmarks.seed import seed_stream  # noqa: E402
from iotile_cloud.server.run import ServerProcess  # noqa: E402

EMAIL, PASSWORD = "bench@example.com", "bench-pass-1"

# Each process writes, when it exits, its own peak RSS (VmHWM of its own address space: the rusage
# the parent gets back would also count the memory of the fork before exec), its RSS once its
# imports are done, and the time of the call alone (between _begin() and _end()).
PEAK = """
import atexit, os, time
_marks = {}
def _rss(field):
    with open("/proc/self/status") as status:
        return int([line.split()[1] for line in status if line.startswith(field + ":")][0])
def _begin():
    _marks["base"], _marks["start"] = _rss("VmRSS"), time.perf_counter()
def _end():
    _marks["call"] = time.perf_counter() - _marks["start"]
def _write_peak():
    with open(os.environ["BENCH_PEAK_FILE"], "w") as out:
        out.write(f"{_rss('VmHWM')} {_marks.get('base', 0)} {_marks.get('call', 0.0)}")
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
_begin()
data = StreamData(stream, api)
data.initialize_from_server()
_end()
assert len(data.data) == n, len(data.data)
"""
)
OURS_STREAMDATA = ORIGINAL
OURS_DATAFRAME = (
    PEAK
    + """
import os, sys
import pandas, pyarrow  # a DataFrame user's session has these loaded; the call alone is timed
from iotile_cloud.api.connection import Api
from iotile_cloud.stream.frames import fetch_dataframe
url, stream, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
api = Api(url)
api.set_token(os.environ["BENCH_TOKEN"])
_begin()
frame = fetch_dataframe(api, stream)
_end()
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
    _begin()
    body = client.get(url + "/api/v1/df/", params={"filter": stream, "format": "arrow"}, headers=headers).content
    _end()
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


@dataclass
class Run:
    """One path at one size: the whole process, and the call alone (imports done)."""

    wall: float  # process wall time (s): interpreter start, imports, connection, call
    call: float  # the call alone (s)
    peak: float  # peak RSS of the process (MB)
    growth: float  # peak RSS minus the RSS once imports were done (MB): what the data cost


def measure(python: str, script: str, args: list[str], env: dict[str, str]) -> Run:
    with tempfile.NamedTemporaryFile(prefix="peak-") as peak_file:
        started = time.perf_counter()
        result = subprocess.run(
            [python, "-c", script, *args], env={**env, "BENCH_PEAK_FILE": peak_file.name}, cwd="/", check=False
        )
        wall = time.perf_counter() - started
        if result.returncode != 0:
            raise RuntimeError(f"{python} failed with exit code {result.returncode}")
        peak_kb, base_kb, call = Path(peak_file.name).read_text().split()
        return Run(wall, float(call), int(peak_kb) / 1024, (int(peak_kb) - int(base_kb)) / 1024)


LABELS = {
    "a": "original 0.9.14 StreamData",
    "b": "our StreamData",
    "c": "our fetch_dataframe (Arrow)",
    "d": "raw Arrow bytes (no decoding)",
}


def run_size(points: int, repeat: int, skip_original: bool) -> dict[str, Run]:
    from iotile_cloud.api.connection import Api

    with tempfile.TemporaryDirectory(prefix="iotile-bench-") as folder:
        data_dir = Path(folder)
        seeded = time.perf_counter()
        stream = seed(data_dir, points)
        print(f"seeded {points} points in {time.perf_counter() - seeded:.1f} s")
        with contextlib.ExitStack() as stack:
            server = ServerProcess(data_dir).start(timeout=300)  # a busy machine can take 30 s to start it
            stack.callback(server.stop)
            url = server.url
            api = Api(url)
            assert api.login(email=EMAIL, password=PASSWORD)
            env = {**os.environ, "BENCH_TOKEN": str(api.token)}
            paths = [
                ("b", sys.executable, OURS_STREAMDATA),
                ("c", sys.executable, OURS_DATAFRAME),
                ("d", sys.executable, RAW_BYTES),
            ]
            if not skip_original:
                paths.insert(0, ("a", str(original_python()), ORIGINAL))
            results: dict[str, Run] = {}
            for key, python, script in paths:
                runs = [measure(python, script, [url, stream, str(points)], env) for _ in range(repeat)]
                results[key] = Run(
                    min(r.wall for r in runs),
                    min(r.call for r in runs),
                    max(r.peak for r in runs),
                    max(r.growth for r in runs),
                )
                r = results[key]
                print(
                    f"{points:>9} ({key}) {LABELS[key]:<30} process {r.wall:7.2f} s  call {r.call:7.3f} s  "
                    f"peak {r.peak:6.0f} MB  growth {r.growth:6.0f} MB",
                    flush=True,
                )
    return results


def ratios(points: int, results: dict[str, Run]) -> list[str]:
    lines = []
    if "a" in results:
        a, b, c = results["a"], results["b"], results["c"]
        lines += [
            f"{points:,} points: DataFrame path (c) vs the original (a): {a.wall / c.wall:.1f}x faster as whole "
            f"processes, {a.call / c.call:.1f}x as calls (target >= 50x); peak memory {c.peak / a.peak:.2f} of the "
            f"original's, memory growth during the call {c.growth / a.growth:.2f} (target <= 0.20)",
            f"{points:,} points: our StreamData (b) vs the original (a): {a.wall / b.wall:.1f}x faster as whole "
            f"processes, {a.call / b.call:.1f}x as calls (target >= 3x)",
        ]
    c, d = results["c"], results["d"]
    lines.append(f"{points:,} points: DataFrame call (c) vs downloading the raw bytes (d): {c.call / d.call:.2f}x")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--repeat", type=int, default=1, help="runs of each path (best time kept)")
    parser.add_argument("--skip-original", action="store_true", help="leave out (a)")
    parser.add_argument("--write-results", action="store_true", help="record the figures in RESULTS.md")
    args = parser.parse_args()
    results = {points: run_size(points, args.repeat, args.skip_original) for points in args.points}
    lines = [line for points, found in results.items() for line in ratios(points, found)]
    print("\n".join(lines))
    if args.write_results:
        write_results(args, results, lines)


def write_results(args: argparse.Namespace, results: dict[int, dict[str, Run]], lines: list[str]) -> None:
    path = HERE / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    marker = "## download.py"
    if marker in text:
        head, _, rest = text.partition(marker)
        tail = rest.split("\n## ", 1)
        text = head + ("## " + tail[1] if len(tail) > 1 else "")
    sizes = " ".join(str(p) for p in args.points)
    body = [
        marker,
        "",
        f"`python benchmarks/download.py --points {sizes} --repeat {args.repeat} --write-results`, "
        f"{dt.date.today()}, {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"SQLite, load average {os.getloadavg()[0]:.1f} at the end. Process: the whole `python -c` process "
        "(start, imports, login token, call); call: the call alone; growth: peak RSS minus RSS after imports.",
        "",
        "| points | path | process (s) | call (s) | peak RSS (MB) | growth (MB) |",
        "| ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    body += [
        f"| {points:,} | ({k}) {LABELS[k]} | {r.wall:.2f} | {r.call:.3f} | {r.peak:.0f} | {r.growth:.0f} |"
        for points, found in results.items()
        for k, r in sorted(found.items())
    ]
    body += [""] + [f"- {line}" for line in lines] + [""]
    path.write_text(text.rstrip() + "\n\n" + "\n".join(body))


if __name__ == "__main__":
    main()
