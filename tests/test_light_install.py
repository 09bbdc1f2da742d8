"""The [server] extra alone (no pyarrow, pandas, polars or ADBC) runs the server and the CLI's daily path."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

# Runs in a fresh interpreter where the optional columnar packages cannot be imported.
SCRIPT = textwrap.dedent(
    """
    import sys
    from importlib.abc import MetaPathFinder

    BLOCKED = ("pyarrow", "pandas", "polars", "adbc_driver_postgresql", "adbc_driver_manager")

    class Blocker(MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Blocker())

    from pathlib import Path

    from iotile_cloud.client import Client
    from iotile_cloud.server.routes.auth import create_user
    from iotile_cloud.server.run import LiveServer

    with LiveServer(Path(sys.argv[1])) as server:
        with server.engine.begin() as conn:
            create_user(conn, email="me@example.com", username="me", password="pw-12345678", is_owner=True)
        with Client(server.url) as client:
            client.login("me@example.com", "pw-12345678")
            client.post("org/", {"name": "Light"})
            project = client.post("project/", {"name": "P", "org": "light"})
            device = client.post("device/", {"template": "1d1p2bt101es-v2-0-0", "sg": "water-meter-v1-1-0"})
            client.post("device/claim/", {"device": device["slug"], "project": project["id"]})
            stream = f"s--{project['slug'][3:]}--{device['slug'][3:]}--5001"
            client.post("data/", [{"stream": stream, "timestamp": "2026-01-01T00:00:00Z", "int_value": 3}])
            assert client.get("data/", filter=stream)["count"] == 1
            csv = client.send("GET", "df/", params={"filter": stream, "format": "csv"})
            assert csv.status_code == 200 and csv.text.splitlines()[1].startswith("2026-01-01T00:00:00Z,"), csv.text
            arrow = client.send("GET", "df/", params={"filter": stream, "format": "arrow"}, check=False)
            assert arrow.status_code == 406 and "iotile-cloud[arrow]" in arrow.json()["detail"], arrow.text
            parquet = client.send("GET", f"stream/{stream}/parquet/", check=False)
            assert parquet.status_code == 406, parquet.text
    assert not any(name.split(".")[0] in BLOCKED for name in sys.modules)
    print("ok")
    """
)


def test_server_runs_without_the_columnar_packages(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr
