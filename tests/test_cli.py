"""The command line, against a live local server."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

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


def test_version_and_help_everywhere() -> None:
    assert run("--version") == (0, f"iotile-cloud, version {__version__}\n")
    for command in (
        [],
        ["login"],
        ["logout"],
        ["whoami"],
        ["get"],
        ["serve"],
        ["demo"],
        ["admin"],
        ["admin", "create-user"],
        ["admin", "set-device-key"],
        ["report"],
        ["report", "inspect"],
        ["report", "build"],
        ["upload"],
        ["upload", "report"],
        ["upload", "event"],
    ):
        code, out = run(*command, "--help")
        assert code == 0 and "Usage:" in out, command


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
    assert code == 0 and "valid_16_readings.bin: 16 readings accepted" in out
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


def test_demo(tmp_path: Path) -> None:
    code, out = run("demo", "--data-dir", str(tmp_path / "demo"))
    assert code == 0, out
    assert "Logged in as demo" in out and "Water used this week" in out
    assert "Greenhouse temperature" in out and "gallons per day" in out
