"""``iotile-cloud stream ...``: streams and a quick look at their data."""

from __future__ import annotations

import click

from iotile_cloud.cli.common import (
    Group,
    domain_option,
    friendly_errors,
    json_option,
    list_rows,
    logged_in_client,
    missing_as,
    project_id,
    show_table,
)
from iotile_cloud.cli.resources import Resource, delete_command, show_command, update_command

COLUMNS = ("slug", "var_name", "device", "project", "enabled")
POINT_COLUMNS = ("timestamp", "int_value", "value", "streamer_local_id")
STREAM = Resource("stream", "stream")


@click.group(cls=Group)
def stream() -> None:
    """Streams and a quick look at their data."""


@stream.command("list")
@click.option("--project", "project_ref", default=None, help="Only streams of this project (uuid, p-- slug or name)")
@click.option("--device", default=None, help="Only streams of this device (d-- slug)")
@domain_option
@json_option
def stream_list(project_ref: str | None, device: str | None, domain: str | None, as_json: bool) -> None:
    """List the streams of your projects."""
    project = project_id(logged_in_client(domain), project_ref) if project_ref else None
    list_rows(domain, "stream/", COLUMNS, as_json, project=project, device=device)


show_command(stream, STREAM, "Show one stream (s--<project>--<device>--<variable>).")


@stream.command("data")
@click.argument("slug")
@click.option("--lastn", type=click.IntRange(1, 10000), default=20, show_default=True, help="The last N points")
@click.option("--start", default=None, help="From this UTC time (inclusive)")
@click.option("--end", default=None, help="Until this UTC time (exclusive)")
@domain_option
@json_option
def stream_data(slug: str, lastn: int, start: str | None, end: str | None, domain: str | None, as_json: bool) -> None:
    """Print a stream's latest points as a table (use `data download` for whole files)."""
    client = logged_in_client(domain)
    with friendly_errors():
        with missing_as("stream", slug):
            client.get(f"stream/{slug}/")
        query = {"filter": slug, "lastn": lastn, "start": start, "end": end}
        answer = client.get("data/", **{k: v for k, v in query.items() if v is not None})
    show_table(answer.get("results", []), POINT_COLUMNS, as_json)


update_command(stream, STREAM, "Change a stream's fields, e.g. -f data_label=Flow -F enabled=false (org members).")
delete_command(stream, STREAM, "Delete a stream and its data (org admins).", "Delete this stream and its data?")
