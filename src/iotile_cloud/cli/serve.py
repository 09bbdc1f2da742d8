"""``iotile-cloud serve``: a local IOTile Cloud in the foreground."""

from __future__ import annotations

from pathlib import Path

import click

from iotile_cloud.cli.common import data_dir_option, database_option, needs_extra


@click.command()
@database_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@data_dir_option
@click.option(
    "--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"])
)
def serve(database: str | None, host: str, port: int, data_dir: Path | None, log_level: str) -> None:
    """Run a local IOTile Cloud (SQLite by default, or --database postgresql://...)."""
    with needs_extra("server"):
        from iotile_cloud.server.run import serve as run

    run(host=host, port=port, database_url=database, data_dir=data_dir, log_level=log_level)
