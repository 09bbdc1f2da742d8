"""``iotile-cloud serve``: a local IOTile Cloud in the foreground."""

from __future__ import annotations

from pathlib import Path

import click

from iotile_cloud.cli.common import data_dir_option, database_location, database_option, needs_extra


@click.command()
@database_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@data_dir_option
@click.option(
    "--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"])
)
@click.option("--max-json-mb", default=4.0, show_default=True, type=click.FloatRange(0.01), help="JSON body cap")
@click.option(
    "--max-upload-mb", default=32.0, show_default=True, type=click.FloatRange(0.01), help="Report/event file body cap"
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes sharing the port and the database (use PostgreSQL beyond one machine)",
)
@click.option(
    "--trust-proxy",
    "trusted_proxies",
    metavar="ADDRESSES",
    default=None,
    help="Believe X-Forwarded-For/-Proto from these addresses (comma separated): the load balancer in front",
)
def serve(
    database: str | None,
    host: str,
    port: int,
    data_dir: Path | None,
    log_level: str,
    max_json_mb: float,
    max_upload_mb: float,
    workers: int,
    trusted_proxies: str | None,
) -> None:
    """Run a local IOTile Cloud (SQLite, or --database URL)."""
    with needs_extra("server"):
        from iotile_cloud.server.app import default_data_dir
        from iotile_cloud.server.limits import BodyLimits
        from iotile_cloud.server.run import serve as run

    url = database_location(database, data_dir)
    where = f" --data-dir {data_dir}" if data_dir else ""
    where += " --database URL" if database else ""
    hint = f"first account: iotile-cloud admin create-user EMAIL --owner{where}"
    click.echo(f"API: http://{host}:{port}/api/v1/ ({hint})")
    limits = BodyLimits(json=int(max_json_mb * 1024 * 1024), upload=int(max_upload_mb * 1024 * 1024))
    run(
        host=host,
        port=port,
        database_url=url,
        data_dir=data_dir or default_data_dir(),
        log_level=log_level,
        limits=limits,
        workers=workers,
        trusted_proxies=trusted_proxies,
    )
