"""Fuzz every route of the OpenAPI description with schemathesis; any 5xx is a failure.

    pip install schemathesis && python scripts/fuzz_api.py [--max-examples 30]

Starts a live local server with a user who owns an org, a project, a claimed device and data,
then runs `schemathesis run` against /api/schema/ with that user's token.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from iotile_cloud.api.connection import Api
from iotile_cloud.server.run import LiveServer
from iotile_cloud.testing.cloud import CloudHelper


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-examples", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, LiveServer(Path(folder)) as server:
        cloud = CloudHelper(server)
        cloud.quick_add_user("fuzz@example.com", "fuzz-pass-1")
        project_id, project = cloud.quick_add_project()
        device = cloud.quick_add_device(project_id)
        api = Api(server.url)
        assert api.login(email="fuzz@example.com", password="fuzz-pass-1")
        stream = f"s--{project[3:]}--{device[3:]}--5001"
        api.data.post(
            [{"stream": stream, "timestamp": f"2026-01-01T00:00:{i:02d}Z", "int_value": i} for i in range(20)]
        )
        command = [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{server.url}/api/schema/",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            str(args.max_examples),
            "--header",
            f"Authorization: jwt {api.token}",
            "--workers",
            "2",
            "--exclude-path",
            "/api/v1/auth/logout/",
        ]
        return subprocess.run(command, check=False).returncode


if __name__ == "__main__":
    raise SystemExit(main())
