"""``iotile-cloud stream ...``: streams and a quick look at their data."""

from __future__ import annotations

import click

from iotile_cloud.cli.common import (
    Group,
    change_one,
    domain_option,
    field_options,
    friendly_errors,
    json_option,
    list_rows,
    logged_in_client,
    missing_as,
    parse_fields,
    project_id,
    show_one,
    show_record,
    show_table,
)

COLUMNS = ("slug", "var_name", "device", "project", "enabled")
POINT_COLUMNS = ("timestamp", "int_value", "value", "streamer_local_id")


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


@stream.command("show")
@click.argument("slug")
@domain_option
@json_option
def stream_show(slug: str, domain: str | None, as_json: bool) -> None:
    """Show one stream (s--<project>--<device>--<variable>)."""
    show_one(domain, f"stream/{slug}/", "stream", slug, as_json)


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


@stream.command("update")
@click.argument("slug")
@field_options
@domain_option
@json_option
def stream_update(slug: str, raw: tuple[str, ...], typed: tuple[str, ...], domain: str | None, as_json: bool) -> None:
    """Change a stream's fields, e.g. -f data_label=Flow -F enabled=false (org members)."""
    body = parse_fields(raw, typed)
    if not body:
        raise click.UsageError("nothing to change: give -f key=value or -F key=value")
    show_record(change_one(domain, "PATCH", f"stream/{slug}/", "stream", slug, body), as_json)


@stream.command("delete")
@click.argument("slug")
@click.confirmation_option(prompt="Delete this stream and its data?")
@domain_option
def stream_delete(slug: str, domain: str | None) -> None:
    """Delete a stream and its data (org admins)."""
    change_one(domain, "DELETE", f"stream/{slug}/", "stream", slug, None)
    click.echo(f"Deleted stream {slug}")
