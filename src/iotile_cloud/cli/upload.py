"""``iotile-cloud upload ...``: send streamer reports and events to a server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from iotile_cloud.cli.common import Group, friendly_errors, logged_in_client, received_time


@click.group(cls=Group)
def upload() -> None:
    """Upload streamer reports and events."""


@upload.command("report")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--received", default=None, help="When the gateway received them (UTC); default now")
@click.option("--domain", default=None, help="Server (default: last login)")
def upload_report(files: tuple[Path, ...], received: str | None, domain: str | None) -> None:
    """Upload report files (.bin, .json, .mp); prints what was new for each."""
    when = received_time(received)
    with friendly_errors():
        client = logged_in_client(domain)
        for path in files:
            answer = client.upload_report(path, received=when)
            click.echo(f"{path}: {describe_upload(answer)}")


def describe_upload(answer: dict[str, Any]) -> str:
    """What the server stored; servers that only answer ``count`` (the original) get the plain count."""
    count = answer.get("count")
    if "stored" not in answer:
        return f"{count} readings received by the server"
    text = f"{answer['stored']} new readings stored, {answer.get('duplicates', 0)} already there"
    return text + (f", {answer['events']} events" if answer.get("events") else "")


@upload.command("event")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--stream", required=True, help="Stream slug s--...")
@click.option("--timestamp", required=True, help="Event time (UTC ISO 8601)")
@click.option("--extra", default="{}", help="extra_data as a JSON object")
@click.option("--device-timestamp", type=int, default=None)
@click.option("--streamer-local-id", type=int, default=None)
@click.option("--domain", default=None, help="Server (default: last login)")
def upload_event(
    file: Path,
    stream: str,
    timestamp: str,
    extra: str,
    device_timestamp: int | None,
    streamer_local_id: int | None,
    domain: str | None,
) -> None:
    """Upload an event with its .json or .json.gz data file."""
    import orjson

    try:
        extra_data = orjson.loads(extra)
    except orjson.JSONDecodeError:
        extra_data = None
    if not isinstance(extra_data, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--extra")
    with friendly_errors():
        answer = logged_in_client(domain).upload_event(
            stream, timestamp, file, extra_data, device_timestamp, streamer_local_id
        )
    click.echo(f"Event {answer['id']} stored on {answer['stream']}")
