"""The README's walkthrough, command for command: real ``iotile-cloud`` processes against ``serve``,
from an empty data directory, with nothing but the CLI."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from iotile_cloud.server.run import ServerProcess

PASSWORD = "walk-through-pw"


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "iotile_cloud.cli", *args], capture_output=True, text=True, timeout=120
    )
    if check:
        assert done.returncode == 0, f"{args}: {done.stdout} {done.stderr}"
    return done


def test_newcomer_walkthrough(tmp_path: Path) -> None:
    data_dir = tmp_path / "server"
    with ServerProcess(data_dir) as server:
        host = f"127.0.0.1:{server.port}"  # no scheme, as a newcomer types it

        made = cli(
            "admin", "create-user", "me@example.com", "--owner", "--password", PASSWORD, "--data-dir", str(data_dir)
        )
        assert "Created owner user me" in made.stdout and f"Data directory: {data_dir}" in made.stderr
        assert (
            f"http://{host}"
            in cli("login", "--domain", host, "--email", "me@example.com", "--password", PASSWORD).stdout
        )

        assert "Created organisation my-farm" in cli("org", "create", "My Farm").stdout
        created = cli("project", "create", "North Field", "--org", "my-farm").stdout
        assert "Created project p--" in created
        device = json.loads(
            cli(
                "device",
                "create",
                "--sg",
                "water-meter-v1-1-0",
                "--label",
                "Well pump",
                "--project",
                "North Field",
                "--json",
            ).stdout
        )
        assert device["label"] == "Well pump" and device["project"] is not None
        listed = cli("device", "list").stdout.splitlines()
        assert [line.split("\t")[0] for line in listed] == [device["slug"]]

        project_slug = created.split()[2]
        stream = f"s--{project_slug[3:]}--{device['slug'][3:]}--5001"
        assert stream in cli("stream", "list", "--device", device["slug"]).stdout

        # A report from the device, built and uploaded; the same report again stores nothing.
        readings = tmp_path / "readings.csv"
        readings.write_text(
            "stream,reading_id,timestamp,value\n"
            "5001,1,2026-11-25T10:00:00Z,10\n5001,2,2026-11-25T10:15:00Z,12\n5001,3,2026-11-25T10:30:00Z,7\n"
        )
        report = tmp_path / "r.bin"
        cli("report", "build", str(readings), "--device", device["slug"], "-o", str(report))
        assert "3 new readings stored, 0 already there" in cli("upload", "report", str(report)).stdout
        assert "0 new readings stored, 3 already there" in cli("upload", "report", str(report)).stdout

        # Points from a CSV, with microseconds.
        points = tmp_path / "points.csv"
        points.write_text("timestamp,int_value\n2026-11-25T10:42:04.099591Z,5\n")
        assert f"Stored 1 points on {stream}" in cli("data", "upload", str(points), "--stream", stream).stdout

        # See the data: a table in the terminal and a CSV file.
        table = [line.split("\t") for line in cli("stream", "data", stream).stdout.splitlines()]
        assert [(row[0], row[1]) for row in table] == [
            ("2026-11-25T10:00:00Z", "10"),
            ("2026-11-25T10:15:00Z", "12"),
            ("2026-11-25T10:30:00Z", "7"),
            ("2026-11-25T10:42:04.099591Z", "5"),
        ]
        out = tmp_path / "north-field.csv"
        assert f"Wrote 4 points to {out}" in cli("data", "download", stream, "-o", str(out)).stdout
        with out.open() as fp:
            rows = list(csv.DictReader(fp))
        assert [r["timestamp"] for r in rows] == [
            "2026-11-25T10:00:00.000000Z",
            "2026-11-25T10:15:00.000000Z",
            "2026-11-25T10:30:00.000000Z",
            "2026-11-25T10:42:04.099591Z",
        ]
        assert [r["int_value"] for r in rows] == ["10", "12", "7", "5"]

        # Invite a member: a colleague signs up, the owner adds them to the organisation.
        cli("signup", "--domain", host, "--email", "ana@example.com", "--username", "ana", "--password", PASSWORD)
        assert "Added ana to my-farm as m1" in cli("org", "invite", "my-farm", "ana", "--role", "m1").stdout
        members = json.loads(cli("org", "members", "my-farm", "--json").stdout)
        assert {(m["user"], m["role"]) for m in members} == {("me", "a0"), ("ana", "m1")}
