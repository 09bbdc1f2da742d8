"""Server memory of the CSV and JSON forms of ``/df/`` (streamed, not built whole).

    python benchmarks/dataframe_csv.py [--points 1000000]

Seeds one stream with N points (as benchmarks/download.py), starts ``iotile-cloud serve`` in its own
process, downloads ``/df/?filter=<stream>&format=csv`` and ``format=json`` (the client reads the body
in chunks and keeps only its size), and prints the server's resident memory before the downloads and
its peak (VmHWM) after each, so the growth a download causes is measured, not assumed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.download import EMAIL, PASSWORD, seed  # noqa: E402
from iotile_cloud.server.run import ServerProcess  # noqa: E402


def memory_mb(pid: int, field: str) -> float:
    with open(f"/proc/{pid}/status") as status:
        kb = [line.split()[1] for line in status if line.startswith(field + ":")][0]
    return int(kb) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=1_000_000)
    args = parser.parse_args()

    import httpx

    from iotile_cloud.api.connection import Api

    with tempfile.TemporaryDirectory(prefix="iotile-bench-") as folder:
        data_dir = Path(folder)
        stream = seed(data_dir, args.points)
        with ServerProcess(data_dir) as server:
            assert server.process is not None
            pid = server.process.pid
            api = Api(server.url)
            assert api.login(email=EMAIL, password=PASSWORD)
            headers = {"Authorization": f"jwt {api.token}"}
            base = memory_mb(pid, "VmRSS")
            print(f"{args.points} points; server resident before: {base:.0f} MB")
            with httpx.Client(timeout=3600, headers=headers) as http:
                for fmt in ("csv", "json"):
                    started, size = time.perf_counter(), 0
                    params = {"filter": stream, "format": fmt}
                    with http.stream("GET", server.url + "/api/v1/df/", params=params) as answer:
                        assert answer.status_code == 200, answer.status_code
                        for chunk in answer.iter_bytes():
                            size += len(chunk)
                    wall = time.perf_counter() - started
                    peak = memory_mb(pid, "VmHWM")
                    print(
                        f"/df/ {fmt:<4} {size / 1e6:8.1f} MB body in {wall:6.1f} s; "
                        f"server peak {peak:.0f} MB (+{peak - base:.0f} MB over the start)"
                    )


if __name__ == "__main__":
    main()
