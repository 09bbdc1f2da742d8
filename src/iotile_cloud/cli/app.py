"""The root ``iotile-cloud`` group: it only assembles the command groups defined in sibling modules."""

from __future__ import annotations

import click

from iotile_cloud import __version__
from iotile_cloud.cli.admin import admin
from iotile_cloud.cli.api_cmd import get
from iotile_cloud.cli.auth import login, logout, whoami
from iotile_cloud.cli.data import data
from iotile_cloud.cli.demo import demo
from iotile_cloud.cli.reports import report
from iotile_cloud.cli.serve import serve
from iotile_cloud.cli.upload import upload


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="iotile-cloud")
def main() -> None:
    """Work with IOTile Cloud: log in, read data, handle streamer reports, run a local server."""


for command in (login, logout, whoami, get, serve, admin, demo, report, upload, data):
    main.add_command(command)
