"""`iotile-cloud get data/ --all` of N points: wall time and peak memory of the whole CLI process.

    python benchmarks/cli_get_all.py [--points 200000]

(new) the command as shipped: pages written to standard output as they arrive
(old) what the command did before: every item collected in one list, then dumped as one JSON text
Output goes to /dev/null in both; the server is `iotile-cloud serve` on SQLite, seeded as download.py does.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.download import EMAIL, PASSWORD, PEAK, seed  # noqa: E402
from iotile_cloud.server.run import ServerProcess  # noqa: E402

NEW = PEAK + "import sys\nfrom iotile_cloud.cli import main\nsys.argv[0] = 'iotile-cloud'\nmain()\n"
OLD = (
    PEAK
    + """
import sys, orjson
from iotile_cloud.client import Client
client = Client.from_config()
items = list(client.paginate("data/", filter=sys.argv[4].split("=", 1)[1]))
sys.stdout.write(orjson.dumps(items, option=orjson.OPT_INDENT_2).decode() + "\\n")
"""
)


def run(script: str, args: list[str], env: dict[str, str]) -> tuple[float, float]:
    with tempfile.NamedTemporaryFile(prefix="peak-") as peak_file:
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", script, *args],
            env={**env, "BENCH_PEAK_FILE": peak_file.name},
            stdout=subprocess.DEVNULL,
            check=True,
        )
        return time.perf_counter() - started, int(Path(peak_file.name).read_text()) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=200_000)
    args = parser.parse_args()

    from iotile_cloud.client import Client

    with tempfile.TemporaryDirectory(prefix="iotile-bench-") as folder:
        stream = seed(Path(folder), args.points)
        with ServerProcess(Path(folder)) as server, Client(server.url) as client:
            client.login(EMAIL, PASSWORD)
            env = {**os.environ, "IOTILE_CLOUD_TOKEN": str(client.token), "IOTILE_CLOUD_DOMAIN": server.url}
            command = ["get", "data/", "-p", f"filter={stream}", "--all"]
            for label, script in (("new: pages streamed", NEW), ("old: one list, one dump", OLD)):
                wall, peak = run(script, command, env)
                print(f"{label:<26} {args.points} points  {wall:6.2f} s  {peak:6.0f} MB", flush=True)


if __name__ == "__main__":
    main()
