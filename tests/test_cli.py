"""The command line, against a live local server."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from iotile_cloud import __version__
from iotile_cloud.cli import main
from iotile_cloud.client.config import credentials_path
from iotile_cloud.testing.cloud import CloudHelper

from .conftest import TESTDATA, USER

REPORTS = TESTDATA / "reports"


def run(*args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)
    return result.exit_code, result.output


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [prefix]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            out += _commands(command, (*prefix, name))
        else:
            out.append((*prefix, name))
    return out


def test_version_and_help_everywhere() -> None:
    assert run("--version") == (0, f"iotile-cloud, version {__version__}\n")
    every = _commands(main)
    assert len(every) > 50 and ("device", "claim") in every and ("api",) in every
    for command in every:
        code, out = run(*command, "--help")
        assert code == 0 and "Usage:" in out, command
        # Summaries are whole sentences (wrapped), never cut short with "..." as click does by default.
        listing = out.split("Commands:")[1] if "Commands:" in out else ""
        assert "..." not in listing, (command, listing)
        assert "``" not in out, command  # no raw reStructuredText markup


def test_login_get_whoami_logout(cloud: CloudHelper) -> None:
    code, out = run("get", "org/")
    assert code == 1 and "Not logged in" in out
    code, out = run("login", "--domain", cloud.url, "--email", USER[0], "--password", "wrong")
    assert code == 1 and out.count("\n") == 1 and "Username/password combination invalid." in out
    code, out = run("login", "--domain", cloud.url, "--email", USER[0], input=f"{USER[1]}\n")
    assert code == 0, out
    mode = stat.S_IMODE(os.stat(credentials_path()).st_mode)
    assert mode == 0o600
    assert run("whoami")[1].startswith("test <test@arch-iot.com>")
    project_id, _ = cloud.quick_add_project("Alpha")
    code, out = run("get", "project/", "-p", "name=Alpha")
    assert code == 0 and json.loads(out)["results"][0]["id"] == project_id
    code, out = run("get", f"/api/v1/project/{project_id}")
    assert json.loads(out)["name"] == "Alpha"
    code, out = run("get", "org/", "--all")
    assert [o["slug"] for o in json.loads(out)] == ["quick-test-org"]
    code, out = run("get", "device/d--0000-0000-0000-0fff")
    assert code == 1 and "404" in out
    code, out = run("get", "org/", "-p", "oops")
    assert code == 2 and "key=value" in out
    assert run("logout")[0] == 0
    assert run("whoami")[0] == 1


def test_token_from_environment(cloud: CloudHelper, monkeypatch: pytest.MonkeyPatch) -> None:
    from iotile_cloud.api.connection import Api

    api = Api(cloud.url)
    assert api.login(email=USER[0], password=USER[1])
    monkeypatch.setenv("IOTILE_CLOUD_TOKEN", str(api.token))
    monkeypatch.setenv("IOTILE_CLOUD_DOMAIN", cloud.url)
    code, out = run("whoami")
    assert code == 0 and "test@arch-iot.com" in out


def test_admin_create_user_and_device_key(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "srv")
    code, out = run(
        "admin", "create-user", "boss@example.com", "--password", "pw-12345678", "--staff", "--data-dir", data_dir
    )
    assert code == 0 and "staff user boss" in out
    code, out = run("admin", "create-user", "boss@example.com", "--password", "x", "--data-dir", data_dir)
    assert code == 1 and "already exists" in out
    code, out = run("admin", "set-device-key", "d--0001", "00" * 32, "--data-dir", data_dir)
    assert code == 1 and "No device" in out
    code, out = run("admin", "set-device-key", "d--0001", "abc", "--data-dir", data_dir)
    assert code == 1 and "hex" in out


def test_report_inspect_json() -> None:
    code, out = run(
        "report", "inspect", str(REPORTS / "valid_16_readings.bin"), "--json", "--received", "2026-02-01T00:00:00Z"
    )
    assert code == 0
    summary = json.loads(out)
    assert set(summary) >= {
        "format",
        "device",
        "report_id",
        "sent_timestamp",
        "streamer_index",
        "streamer_selector",
        "signature_flags",
        "verified",
        "lowest_id",
        "highest_id",
        "readings",
        "events",
    }
    assert (summary["format"], summary["device"], summary["verified"]) == (1, 10, True)
    assert len(summary["readings"]) == 16
    assert set(summary["readings"][0]) >= {"stream", "reading_id", "raw_timestamp", "value"}
    code, out = run("report", "inspect", str(REPORTS / "invalid_footer_16_readings.bin"))
    assert code == 1 and "Invalid Hash" in out and out.count("\n") == 1
    code, out = run("report", "inspect", str(REPORTS / "v2_event_with_data.json"), "--json")
    assert json.loads(out)["format"] == "v100" and len(json.loads(out)["events"]) == 2


def test_report_build_then_inspect(tmp_path: Path) -> None:
    source = tmp_path / "readings.csv"
    source.write_text("stream,reading_id,raw_timestamp,value\n5001,1,10,100\n5001,2,20,200\n5c00,3,0x80000258,7\n")
    out_file = tmp_path / "r.bin"
    code, out = run(
        "report",
        "build",
        str(source),
        "--device",
        "0x1234",
        "-o",
        str(out_file),
        "--report-id",
        "4",
        "--sent-timestamp",
        "30",
    )
    assert code == 0, out
    assert out_file.read_bytes()[:20].hex() == "015c000034120000040000001e0000000000ffd7"
    signed = tmp_path / "s.bin"
    assert run("report", "build", str(source), "--device", "2", "-o", str(signed), "--key", "00" * 32)[0] == 0
    code, out = run("report", "inspect", str(signed), "--json")
    assert json.loads(out)["verified"] is None and json.loads(out)["readings"] == []
    code, out = run("report", "inspect", str(signed), "--json", "--key", "00" * 32)
    assert [r["value"] for r in json.loads(out)["readings"]] == [100, 200, 7]
    bad = tmp_path / "bad.csv"
    bad.write_text("stream,value\n5001,1\n")
    code, out = run("report", "build", str(bad), "--device", "2", "-o", str(tmp_path / "x.bin"))
    assert code == 1 and "needs columns" in out


def test_upload_report_and_event(cloud: CloudHelper, tmp_path: Path) -> None:
    project_id, project = cloud.quick_add_project()
    device = cloud.quick_add_device(project_id, device_id=10)
    assert run("login", "--domain", cloud.url, "--email", USER[0], "--password", USER[1])[0] == 0
    code, out = run("upload", "report", str(REPORTS / "valid_16_readings.bin"), str(REPORTS / "v2_report1.json"))
    assert code == 0 and "valid_16_readings.bin: 16 new readings stored" in out and "2 events" in out
    data = tmp_path / "e.json"
    data.write_text('{"wave": [1, 2]}')
    stream = f"s--{project[3:]}--{device[3:]}--5001"
    code, out = run(
        "upload",
        "event",
        str(data),
        "--stream",
        stream,
        "--timestamp",
        "2026-01-01T00:00:00Z",
        "--extra",
        '{"peak": 1}',
    )
    assert code == 0 and "stored on" in out
    code, out = run(
        "upload", "event", str(data), "--stream", stream, "--timestamp", "2026-01-01T00:00:00Z", "--extra", "[1]"
    )
    assert code == 2 and "JSON object" in out
    code, out = run("upload", "report", str(REPORTS / "invalid_footer_16_readings.bin"))
    assert code == 1 and "Invalid Hash" in out


def _seed_stream(cloud: CloudHelper, n: int = 30) -> str:
    from iotile_cloud.api.connection import Api

    project_id, project = cloud.quick_add_project()
    device = cloud.quick_add_device(project_id)
    stream = f"s--{project[3:]}--{device[3:]}--5001"
    api = Api(cloud.url)
    assert api.login(email=USER[0], password=USER[1])
    api.data.post([{"stream": stream, "timestamp": f"2026-01-01T00:{i:02d}:00Z", "int_value": i} for i in range(n)])
    return stream


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json"])
def test_data_download(cloud: CloudHelper, tmp_path: Path, suffix: str) -> None:
    import pandas as pd

    stream = _seed_stream(cloud)
    assert run("login", "--domain", cloud.url, "--email", USER[0], "--password", USER[1])[0] == 0
    target = tmp_path / f"out{suffix}"
    code, out = run(
        "data",
        "download",
        stream,
        "--start",
        "2026-01-01T00:10:00Z",
        "--end",
        "2026-01-01T00:20:00Z",
        "--unit",
        "L",
        "-o",
        str(target),
    )
    assert code == 0 and "Wrote 10 points" in out
    frame = {".csv": pd.read_csv, ".parquet": pd.read_parquet, ".json": pd.read_json}[suffix](target)
    assert frame["int_value"].tolist() == list(range(10, 20))
    assert frame["output_value"].tolist() == pytest.approx([i * 3.78541 for i in range(10, 20)])
    code, out = run("data", "download", stream, "-o", str(tmp_path / "x.xlsx"))
    assert code == 2 and ".csv, .parquet or .json" in out


def test_report_accumulate(cloud: CloudHelper) -> None:
    stream = _seed_stream(cloud, n=5)
    assert run("login", "--domain", cloud.url, "--email", USER[0], "--password", USER[1])[0] == 0
    code, out = run("report", "accumulate", "p--" + stream.split("--")[1], "--start", "2025-01-01T00:00:00Z", "--json")
    assert code == 0
    assert json.loads(out)["total"] == pytest.approx(10.0)
    code, out = run("report", "accumulate", stream, "--start", "2025-01-01T00:00:00Z")
    assert code == 0 and stream in out and "10.000" in out
    code, out = run("report", "accumulate", "p--0000-0fff", "--start", "2025-01-01T00:00:00Z")
    assert code == 1 and "No streams were found" in out


def test_demo_twice_in_one_data_directory(tmp_path: Path) -> None:
    for _ in range(2):  # the second run used to fail with "FOREIGN KEY constraint failed"
        code, out = run("demo", "--data-dir", str(tmp_path / "demo"))
        assert code == 0, out
        assert "Logged in as demo" in out and "Water used this week" in out
        assert "Greenhouse temperature" in out and "gallons per day" in out
        assert re.search(r"^Console: http://127\.0\.0\.1:\d+/ ", out, re.MULTILINE)


def test_demo_serves_on_request_and_leaves_no_temporary_folder(tmp_path: Path) -> None:
    import subprocess
    import sys

    import httpx

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    with subprocess.Popen(
        [sys.executable, "-m", "iotile_cloud.cli", "demo", "--serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    ) as process:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Console: "):
                break
        console = line.split()[1]
        assert [p.name.startswith("iotile-cloud-demo-") for p in scratch.iterdir()] == [True]
        answer = httpx.get(f"{console}api/v1/")
        assert answer.status_code == 200 and "org" in answer.json()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0, "".join(lines)
    assert list(scratch.iterdir()) == []


def _login(cloud: CloudHelper, email: str = USER[0], password: str = USER[1]) -> None:
    code, out = run("login", "--domain", cloud.url, "--email", email, "--password", password)
    assert code == 0, out


def test_login_without_scheme_assumes_http_on_loopback(cloud: CloudHelper) -> None:
    from iotile_cloud.cli.common import normalize_domain

    assert normalize_domain("127.0.0.1:8000") == "http://127.0.0.1:8000"
    assert normalize_domain("localhost:8000/") == "http://localhost:8000"
    assert normalize_domain("iotile.cloud") == "https://iotile.cloud"
    assert normalize_domain("https://127.0.0.1:9") == "https://127.0.0.1:9"
    bare = cloud.url.removeprefix("http://")
    code, out = run("login", "--domain", bare, "--email", USER[0], "--password", USER[1])
    assert code == 0 and f"Logged in to {cloud.url} as test" in out
    assert run("whoami", "--domain", bare)[0] == 0


def test_csv_download_has_iso_utc_timestamps(cloud: CloudHelper, tmp_path: Path) -> None:
    from iotile_cloud.api.connection import Api

    project_id, project = cloud.quick_add_project()
    device = cloud.quick_add_device(project_id)
    stream = f"s--{project[3:]}--{device[3:]}--5001"
    api = Api(cloud.url)
    assert api.login(email=USER[0], password=USER[1])
    stamps = ["2026-11-25T10:42:04.099591Z", "2026-11-25T10:42:05Z", "2026-11-25T23:59:59.5Z"]
    api.data.post([{"stream": stream, "timestamp": t, "int_value": i} for i, t in enumerate(stamps)])
    _login(cloud)
    target = tmp_path / "x.csv"
    assert run("data", "download", stream, "-o", str(target))[0] == 0
    lines = target.read_text().splitlines()
    assert lines[0].split(",")[0] == '"timestamp"'
    assert [line.split(",")[0] for line in lines[1:]] == [
        '"2026-11-25T10:42:04.099591Z"',
        '"2026-11-25T10:42:05.000000Z"',
        '"2026-11-25T23:59:59.500000Z"',
    ]
    as_json = tmp_path / "x.json"
    assert run("data", "download", stream, "-o", str(as_json))[0] == 0
    assert [p["timestamp"] for p in json.loads(as_json.read_text())] == [
        "2026-11-25T10:42:04.099591Z",
        "2026-11-25T10:42:05.000000Z",
        "2026-11-25T23:59:59.500000Z",
    ]


def test_download_of_something_missing_says_so(cloud: CloudHelper, tmp_path: Path) -> None:
    _login(cloud)
    target = tmp_path / "x.csv"
    for missing, kind in (
        ("s--0000-0fff--0000-0000-0000-0fff--5001", "stream"),
        ("d--0000-0000-0000-0fff", "device"),
        ("v--0000-0fff--5001", "variable"),
    ):
        code, out = run("data", "download", missing, "-o", str(target))
        assert code == 1 and out == f"Error: {kind} {missing} does not exist (or your account cannot see it)\n"
    assert not target.exists()
    stream = _seed_stream(cloud, n=3)
    code, out = run("data", "download", stream, "-o", str(tmp_path / "no" / "such" / "x.csv"))
    assert code == 1 and out.count("\n") == 1 and "does not exist: create it first" in out


def test_upload_report_says_what_was_new(cloud: CloudHelper) -> None:
    project_id, _ = cloud.quick_add_project()
    cloud.quick_add_device(project_id, device_id=10)
    _login(cloud)
    report = str(REPORTS / "valid_16_readings.bin")
    code, out = run("upload", "report", report)
    assert code == 0 and out == f"{report}: 16 new readings stored, 0 already there\n"
    code, out = run("upload", "report", report)
    assert code == 0 and out == f"{report}: 0 new readings stored, 16 already there\n"


def test_api_command(cloud: CloudHelper, tmp_path: Path) -> None:
    _login(cloud)
    code, out = run("api", "org/", "-X", "POST", "-f", "name=Acme", "-f", "about=Tools")
    assert code == 0 and json.loads(out)["slug"] == "acme"
    code, out = run("api", "org/acme/", "-X", "PATCH", "-f", "about=Anvils")
    assert json.loads(out)["about"] == "Anvils"
    code, out = run("api", "org/", "-X", "GET", "-f", "search=acm")  # with GET, fields are query parameters
    assert [o["slug"] for o in json.loads(out)["results"]] == ["acme"]
    body = tmp_path / "project.json"
    body.write_text(json.dumps({"name": "Site A", "org": "acme"}))
    code, out = run("api", "project/", "--input", str(body))
    assert code == 0 and json.loads(out)["name"] == "Site A"
    code, out = run("api", "project/", "-X", "POST", "--input", "-", input='{"name": "Site B", "org": "acme"}')
    assert code == 0 and json.loads(out)["name"] == "Site B"
    code, out = run("api", "org/", "--all")
    assert [o["slug"] for o in json.loads(out)] == ["acme", "quick-test-org"] or [
        o["slug"] for o in json.loads(out)
    ] == ["acme"]
    code, out = run("api", "org/nope/")
    assert code == 1 and out.count("\n") == 1 and "404" in out
    code, out = run("api", "project/", "--input", str(body), "-X", "GET", "--all", "-X", "POST")
    assert code == 2 and "--all" in out
    code, out = run("api", "/")  # the API root lists each resource's URL, as the original does
    roots = json.loads(out)
    assert roots["org"] == f"{cloud.url}/api/v1/org/" and roots["streamer/report"].endswith("/api/v1/streamer/report/")


def test_get_all_streams_pages_as_one_list(cloud: CloudHelper) -> None:
    stream = _seed_stream(cloud, n=30)
    _login(cloud)
    code, out = run("get", "data/", "-p", f"filter={stream}", "--all")
    assert code == 0 and [p["int_value"] for p in json.loads(out)] == list(range(30))
    code, out = run("get", "data/", "-p", "filter=s--0000-0fff--0000-0000-0000-0fff--5001", "--all")
    assert code == 0 and json.loads(out) == []


def test_resource_commands(cloud: CloudHelper) -> None:
    _login(cloud)
    code, out = run("org", "create", "Blue Sky", "--about", "Weather")
    assert code == 0 and out == "Created organisation blue-sky (Blue Sky)\n"
    assert json.loads(run("org", "show", "blue-sky", "--json")[1])["about"] == "Weather"
    assert "name:" in run("org", "show", "blue-sky")[1]
    assert json.loads(run("org", "update", "blue-sky", "--about", "Clouds", "--json")[1])["about"] == "Clouds"
    assert [o["slug"] for o in json.loads(run("org", "list", "--json")[1])] == ["blue-sky"]
    code, out = run("org", "show", "no-such-org")
    assert code == 1 and out == "Error: organisation no-such-org does not exist (or your account cannot see it)\n"

    code, out = run("project", "create", "Roof", "--org", "blue-sky", "--json")
    project = json.loads(out)
    for ref in (project["id"], project["slug"], "Roof"):
        assert json.loads(run("project", "show", ref, "--json")[1])["id"] == project["id"]
    assert run("project", "update", "Roof", "--name", "Roof top")[0] == 0
    assert [p["name"] for p in json.loads(run("project", "list", "--org", "blue-sky", "--json")[1])] == ["Roof top"]
    code, out = run("project", "show", "Cellar")
    assert code == 1 and "project Cellar does not exist" in out

    # The test user is neither staff nor the server's owner: the refusal explains what to do.
    code, out = run("device", "create", "--sg", "water-meter-v1-1-0")
    assert code == 1 and out.count("\n") == 1
    assert "Restricted Access" in out and "--staff" in out and "admin set-owner" in out
    with cloud.engine.begin() as conn:
        import sqlalchemy as sa

        from iotile_cloud.server import db

        conn.execute(sa.update(db.users).where(db.users.c.email == USER[0]).values(is_owner=True))
    code, out = run("device", "create", "--sg", "water-meter-v1-1-0", "--label", "Mast", "--json")
    device = json.loads(out)["slug"]
    assert json.loads(out)["project"] is None
    code, out = run("device", "claim", device, "--project", project["slug"])
    assert code == 0 and out == f"Claimed {device} into {project['slug']}\n"
    code, out = run("device", "list", "--project", "Roof top")
    assert [line.split("\t")[:2] for line in out.splitlines()] == [[device, "Mast"]]
    assert json.loads(run("device", "update", device, "--label", "Tall mast", "--json")[1])["label"] == "Tall mast"
    streams = json.loads(run("stream", "list", "--device", device, "--json")[1])
    assert f"s--{project['slug'][3:]}--{device[3:]}--5001" in [s["slug"] for s in streams]
    slug = streams[0]["slug"]
    assert json.loads(run("stream", "show", slug, "--json")[1])["slug"] == slug
    assert json.loads(run("stream", "update", slug, "-f", "data_label=Rain", "--json")[1])["data_label"] == "Rain"
    code, out = run("stream", "data", "s--0000-0fff--0000-0000-0000-0fff--5001")
    assert code == 1 and "stream s--0000-0fff--0000-0000-0000-0fff--5001 does not exist" in out
    assert run("stream", "delete", slug, "--yes")[0] == 0
    assert run("stream", "show", slug)[0] == 1

    code, out = run("fleet", "create", "Masts", "--org", "blue-sky", "--json")
    fleet = json.loads(out)["slug"]
    assert run("fleet", "add", fleet, device)[0] == 0
    assert [d["device"] for d in json.loads(run("fleet", "devices", fleet, "--json")[1])] == [device]
    assert [f["slug"] for f in json.loads(run("fleet", "list", "--device", device, "--json")[1])] == [fleet]
    assert json.loads(run("fleet", "update", fleet, "--description", "All", "--json")[1])["description"] == "All"
    assert run("fleet", "remove", fleet, device)[0] == 0
    assert run("fleet", "delete", fleet, "--yes")[0] == 0
    assert run("fleet", "show", fleet)[0] == 1

    code, out = run("device", "unclaim", device)
    assert code == 0 and out == f"Unclaimed {device}\n"
    code, out = run("device", "delete", device, "--yes")
    assert code == 1 and "Restricted Access" in out  # deleting devices stays a staff action, as on the original
    code, out = run("device", "show", "d--0000-0000-0000-0fff")
    assert code == 1 and out == "Error: device d--0000-0000-0000-0fff does not exist (or your account cannot see it)\n"
    assert run("project", "delete", "Roof top", "--yes")[0] == 0
    assert run("project", "list", "--json")[1].strip() == "[]"
    code, out = run("org", "update", "blue-sky")
    assert code == 2 and "nothing to change" in out


def test_admin_and_serve_share_the_default_data_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from iotile_cloud.api.connection import Api
    from iotile_cloud.server.app import default_data_dir
    from iotile_cloud.server.run import LiveServer

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    folder = default_data_dir()
    assert folder == tmp_path / "xdg" / "iotile-cloud"
    result = CliRunner().invoke(
        main, ["admin", "create-user", "boss@example.com", "--owner", "--password", "pw-123456"]
    )
    assert result.exit_code == 0 and f"Data directory: {folder}" in result.stderr
    assert result.stdout == "Created owner user boss <boss@example.com>\n"
    with LiveServer(folder) as server:  # what `serve` opens with no options
        api = Api(server.url)
        assert api.login(email="boss@example.com", password="pw-123456")
        assert api.device.post({"label": "x", "template": "1d1p2bt101es-v2-0-0", "sg": "water-meter-v1-1-0"})
    # --database reaches a server's database by URL (here a SQLite file elsewhere); the password is not echoed.
    url = f"sqlite:///{tmp_path / 'other.sqlite3'}"
    result = CliRunner().invoke(main, ["admin", "create-user", "a@example.com", "--password", "pw", "--database", url])
    assert result.exit_code == 0 and f"Database: {url}" in result.stderr
    code, out = run("admin", "set-owner", "a@example.com", "--database", url)
    assert code == 0 and "now an owner" in out
    code, out = run("admin", "set-owner", "nobody@example.com", "--database", url)
    assert code == 1 and "No account nobody@example.com" in out
    from iotile_cloud.cli.common import _hide_password

    assert _hide_password("postgresql://iotile:secret@127.0.0.1:5432/x") == "postgresql://iotile:***@127.0.0.1:5432/x"
